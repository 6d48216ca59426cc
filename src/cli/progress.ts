/**
 * A progress line for long work (training steps, rollouts, downloads of a corpus):
 *
 *   sft [=====>      ] 120/400 30% loss 1.234 tok/s 5230 ETA 1m12s
 *
 * On a terminal the line is redrawn in place with \r, at most ~10 times a second. Elsewhere (CI logs, pipes,
 * files) a redraw would leave hundreds of lines, so a plain line is printed only when another ~10% is done or
 * 5 s have passed. With `stream: null` nothing is ever written (the command's --json mode owns stdout/stderr).
 * The ETA divides the work left by the rate observed since the first update.
 */
import { R1Error } from '../errors.js';

/** What Progress needs from a stream; process.stderr / process.stdout satisfy it. */
export interface ProgressStream {
  write(chunk: string): boolean | void;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  total: number;
  label?: string;
  /** Default process.stderr; null writes nothing. */
  stream?: NodeJS.WriteStream | ProgressStream | null;
  /** Shown after the count: "120/400 steps". */
  unit?: string;
  /** Bar width in characters (default 20; shrunk to fit a narrow terminal). */
  barWidth?: number;
  /** Clock in milliseconds (tests pass a fake one). Default performance.now. */
  now?: () => number;
}

const TTY_INTERVAL_MS = 100;
const PLAIN_INTERVAL_MS = 5000;
const PLAIN_BUCKETS = 10; // a plain line per 10% of the total

/** "0.4s", "42s", "1m12s", "2h03m", "3d04h"; "?" for a non-finite or negative value. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 1) return `${seconds.toFixed(1)}s`;
  let s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  s = Math.round(seconds / 60); // minutes
  if (s < 24 * 60) return `${Math.floor(s / 60)}h${String(s % 60).padStart(2, '0')}m`;
  s = Math.round(seconds / 3600); // hours
  return `${Math.floor(s / 24)}d${String(s % 24).padStart(2, '0')}h`;
}

/** Field values: integers as is, others to ~4 significant digits, tiny ones in exponent form. */
export function formatField(v: string | number): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a !== 0 && a < 1e-3) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

export class Progress {
  readonly total: number;
  private readonly label: string;
  private readonly unit: string;
  private readonly stream: ProgressStream | null;
  private readonly tty: boolean;
  private readonly barWidth: number;
  private readonly now: () => number;
  private done = 0;
  private fields: Record<string, string | number> = {};
  private startTime: number | null = null;
  private startDone = 0;
  private lastDraw = -Infinity;
  private lastPlainDone = -1;
  private nextPlainBucket = 1;
  private lastLineLength = 0;
  private finished = false;

  constructor(opts: ProgressOptions) {
    if (!Number.isFinite(opts.total) || opts.total < 0) throw new R1Error(`Progress: total must be a finite number >= 0, got ${opts.total}`);
    this.total = opts.total;
    this.label = opts.label ?? '';
    this.unit = opts.unit ?? '';
    this.stream = opts.stream === undefined ? process.stderr : opts.stream;
    this.tty = this.stream?.isTTY === true;
    this.barWidth = opts.barWidth ?? 20;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Report `done` units finished (absolute, not a delta) and the fields to show (loss, tok/s, ...). */
  update(done: number, fields?: Record<string, string | number>): void {
    if (this.finished) return;
    if (!Number.isFinite(done)) throw new R1Error(`Progress.update: done must be a finite number, got ${done}`);
    const t = this.now();
    if (this.startTime === null) {
      // The rate is measured from the first update, so set-up time before the loop does not skew the ETA.
      this.startTime = t;
      this.startDone = done;
      // Plain output starts its 5 s clock here rather than printing an empty "0/N ETA ?" line.
      if (!this.tty) this.lastDraw = t;
    }
    this.done = done;
    if (fields) this.fields = fields;
    if (!this.stream) return;
    if (this.tty) {
      if (t - this.lastDraw >= TTY_INTERVAL_MS || done >= this.total) this.drawTty(t);
      return;
    }
    // Integer comparison: done/total >= k/10 without float error (120/400 is not >= 0.30000000000000004).
    if (done * PLAIN_BUCKETS >= this.nextPlainBucket * this.total || t - this.lastDraw >= PLAIN_INTERVAL_MS) this.printPlain(t);
  }

  /** Draw the final state (elapsed time instead of ETA) and end the line. Later calls do nothing. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.stream) return;
    const t = this.now();
    if (this.tty) {
      this.drawTty(t, true);
      this.stream.write('\n');
    } else if (this.lastPlainDone !== this.done) {
      this.stream.write(`${this.render(t, true)}\n`);
    }
  }

  /** The line as it would be drawn now (without \r or newline). */
  render(t = this.now(), final = false): string {
    const total = this.total;
    const frac = total > 0 ? Math.min(1, Math.max(0, this.done / total)) : 1;
    const parts: string[] = [];
    if (this.label) parts.push(this.label);
    let width = this.barWidth;
    if (this.tty && this.stream?.columns) width = Math.max(5, Math.min(width, this.stream.columns - 60));
    const filled = Math.round(frac * width);
    const bar = filled >= width ? '='.repeat(width) : filled === 0 ? ' '.repeat(width) : `${'='.repeat(filled - 1)}>${' '.repeat(width - filled)}`;
    parts.push(`[${bar}]`);
    parts.push(`${this.done}/${total}${this.unit ? ` ${this.unit}` : ''}`);
    parts.push(`${Math.floor(frac * 100)}%`);
    for (const [k, v] of Object.entries(this.fields)) parts.push(`${k} ${formatField(v)}`);
    const elapsedS = this.startTime === null ? 0 : (t - this.startTime) / 1000;
    if (final) parts.push(`in ${formatDuration(elapsedS)}`);
    else {
      const rate = elapsedS > 0 ? (this.done - this.startDone) / elapsedS : 0;
      parts.push(`ETA ${rate > 0 ? formatDuration(Math.max(0, total - this.done) / rate) : '?'}`);
    }
    return parts.join(' ');
  }

  private drawTty(t: number, final = false): void {
    let line = this.render(t, final);
    const cols = this.stream!.columns;
    if (cols && line.length > cols - 1) line = line.slice(0, cols - 1);
    // Pad over the previous, possibly longer, line instead of relying on terminal escape codes.
    const pad = this.lastLineLength > line.length ? ' '.repeat(this.lastLineLength - line.length) : '';
    this.stream!.write(`\r${line}${pad}`);
    this.lastLineLength = line.length;
    this.lastDraw = t;
  }

  private printPlain(t: number): void {
    this.stream!.write(`${this.render(t)}\n`);
    this.lastDraw = t;
    this.lastPlainDone = this.done;
    // Next print at the next 10% boundary above the current count.
    this.nextPlainBucket = this.total > 0 ? Math.floor((this.done * PLAIN_BUCKETS) / this.total) + 1 : Infinity;
  }
}
