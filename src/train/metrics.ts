/**
 * Training metrics as JSONL: one JSON object per line, one line per record (a step, an eval, a rollout batch).
 *
 * Each record is written with a single synchronous write(2) on an open file descriptor, so a crash (or a kill)
 * loses at most the line being written, and a reader running alongside the trainer (`r1 plot`) sees every
 * completed step. JSON cannot hold NaN or ±Infinity; a diverged loss is exactly the value one wants to see, so
 * non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity" and `readMetrics` turns them
 * back into numbers.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { FormatError, R1Error } from '../errors.js';

export type MetricValue = number | string | boolean | null;
export type MetricRecord = Record<string, MetricValue>;

const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY };

function encodeValue(path: string, key: string, v: unknown): MetricValue {
  if (v === null) return null;
  switch (typeof v) {
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    case 'string':
    case 'boolean':
      return v;
    default:
      throw new FormatError(`${path}: metric '${key}' must be a number, string, boolean or null, got ${typeof v}`);
  }
}

/** Appends metric records to a JSONL file. Parent folders are created; by default an existing file is truncated. */
export class MetricsWriter {
  readonly path: string;
  private fd: number | null;

  /** `append: true` continues an existing file (a resumed run); otherwise the file starts empty. */
  constructor(path: string, opts: { append?: boolean } = {}) {
    this.path = path;
    const dir = dirname(path);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
    try {
      this.fd = openSync(path, opts.append ? 'a' : 'w');
    } catch (e) {
      throw new R1Error(`${path}: cannot open metrics file for writing: ${(e as Error).message}`);
    }
  }

  /** Write one record as one line, synchronously. Keys keep their insertion order. */
  write(record: Record<string, MetricValue>): void {
    if (this.fd === null) throw new R1Error(`${this.path}: MetricsWriter.write after close()`);
    if (record === null || typeof record !== 'object' || Array.isArray(record)) throw new FormatError(`${this.path}: a metrics record must be a plain object`);
    const out: MetricRecord = {};
    for (const [k, v] of Object.entries(record)) out[k] = encodeValue(this.path, k, v);
    const buf = Buffer.from(`${JSON.stringify(out)}\n`, 'utf8');
    // One write call per line; loop only for the (rare) short write.
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
  }

  /** Close the file; further writes throw. Safe to call twice. */
  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Read a metrics JSONL file. Blank lines are skipped; any other line that is not a JSON object is a FormatError
 * naming the file and the 1-based line number. With `allowTruncatedTail`, an unparsable last line that has no
 * trailing newline (the line a crash was writing) is dropped instead.
 */
export function readMetrics(path: string, opts: { allowTruncatedTail?: boolean } = {}): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(`${path}: cannot read metrics file: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const lines = text.split('\n');
  const records: Record<string, unknown>[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const isUnterminatedLast = i === lines.length - 1;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      if (isUnterminatedLast && opts.allowTruncatedTail) break;
      throw new FormatError(`${path}:${i + 1}: not valid JSON (${(e as Error).message}): ${line.length > 60 ? `${line.slice(0, 60)}…` : line}`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new FormatError(`${path}:${i + 1}: expected a JSON object per line, got ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`);
    }
    const rec = v as Record<string, unknown>;
    for (const k of Object.keys(rec)) {
      const x = rec[k];
      if (typeof x === 'string' && Object.hasOwn(NON_FINITE, x)) rec[k] = NON_FINITE[x];
    }
    records.push(rec);
  }
  return records;
}
