/**
 * Small typed accessors for validating untrusted JSON (tokenizer.json, tokenizer_config.json). Every
 * failure is a FormatError naming the file and the JSON path of the offending field.
 */
import { FormatError } from '../../errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export class Fields {
  constructor(readonly source: string) {}
  fail(path: string, msg: string): never {
    throw new FormatError(`${this.source}: ${path}: ${msg}`);
  }
  obj(v: unknown, path: string): JsonObject {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `expected an object, got ${describe(v)}`);
    return v as JsonObject;
  }
  arr(v: unknown, path: string): Json[] {
    if (!Array.isArray(v)) this.fail(path, `expected an array, got ${describe(v)}`);
    return v as Json[];
  }
  str(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, `expected a string, got ${describe(v)}`);
    return v as string;
  }
  optStr(v: unknown, path: string): string | null {
    return v === undefined || v === null ? null : this.str(v, path);
  }
  bool(v: unknown, path: string, def: boolean): boolean {
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') this.fail(path, `expected a boolean, got ${describe(v)}`);
    return v as boolean;
  }
  int(v: unknown, path: string, min = 0): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(path, `expected an integer >= ${min}, got ${describe(v)}`);
    return v as number;
  }
  optInt(v: unknown, path: string, def: number, min = 0): number {
    return v === undefined || v === null ? def : this.int(v, path, min);
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
