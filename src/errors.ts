/**
 * Typed errors: part of the API. Each message names the op, file, tensor or field and what was expected.
 */
export class R1Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** A shape mismatch in an op: the message names the op, the shapes and the dtypes. */
export class ShapeError extends R1Error {}
/** A dtype an op cannot take. */
export class DTypeError extends R1Error {}
/** A malformed or untrusted file (safetensors, tokenizer.json, checkpoint, JSONL): names the file and the rule broken. */
export class FormatError extends R1Error {}
/** An invalid model or run configuration: names the field and the file. */
export class ConfigError extends R1Error {}
/** A bad command-line flag or argument. */
export class UsageError extends R1Error {}
/** Use of a tensor after dispose(). */
export class DisposedError extends R1Error {}
