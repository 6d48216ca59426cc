/** Flag parsing shared by every command: node:util parseArgs with clear UsageErrors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/** Parse argv against the command's flags; `--help`/`-h` and `--json` are always accepted. */
export function parseFlags(command: string, argv: string[], options: FlagSpec, allowPositionals = true): Parsed {
  const all: FlagSpec = { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' }, ...options };
  try {
    const r = parseArgs({ args: argv, options: all, allowPositionals, strict: true });
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`r1 ${command}: ${(e as Error).message}. See 'r1 ${command} --help'.`);
  }
}

/** A numeric flag: validates it parses as a finite number (optionally an integer within bounds). */
export function numberFlag(command: string, name: string, raw: unknown, opts: { int?: boolean; min?: number; max?: number; def?: number } = {}): number {
  if (raw === undefined) {
    if (opts.def === undefined) throw new UsageError(`r1 ${command}: --${name} is required`);
    return opts.def;
  }
  const v = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`r1 ${command}: --${name} must be a number, got '${String(raw)}'`);
  if (opts.int && !Number.isInteger(v)) throw new UsageError(`r1 ${command}: --${name} must be an integer, got '${raw}'`);
  if (opts.min !== undefined && v < opts.min) throw new UsageError(`r1 ${command}: --${name} must be >= ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw new UsageError(`r1 ${command}: --${name} must be <= ${opts.max}, got ${v}`);
  return v;
}
