/**
 * Seeded randomness: a small, fast generator (xoshiro128**, seeded through splitmix32) whose whole state
 * is four 32-bit words, so checkpoints can save and restore it exactly.
 */
import type { DType } from './dtype.js';
import type { FArray } from './backend.js';
import { Tensor, empty } from './tensor.js';
import { DTypeError } from '../errors.js';

export class Rng {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed = 0) {
    this.seed(seed);
  }

  seed(seed: number): void {
    // splitmix32 expands the seed into the state (never all zero).
    let x = (seed >>> 0) ^ Math.floor(seed / 4294967296);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
    this.spare = null;
  }

  /** Next 32 random bits. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!; s[3]! ^= s[1]!; s[1]! ^= s[2]!; s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== null) { const v = this.spare; this.spare = null; return v; }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!; a[i] = a[j]!; a[j] = t;
    }
    return a;
  }

  getState(): number[] {
    return [...this.s, this.spare === null ? NaN : this.spare];
  }
  setState(st: readonly number[]): void {
    for (let i = 0; i < 4; i++) this.s[i] = st[i]! >>> 0;
    this.spare = st.length > 4 && !Number.isNaN(st[4]) ? st[4]! : null;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let global = new Rng(0);
export function globalRng(): Rng {
  return global;
}
/** Reseed the global generator (like torch.manual_seed). */
export function manualSeed(seed: number): void {
  global = new Rng(seed);
}

function floatDType(op: string, dtype: DType): 'f32' | 'f64' {
  if (dtype !== 'f32' && dtype !== 'f64') throw new DTypeError(`${op}: dtype must be f32 or f64, got ${dtype}`);
  return dtype;
}

/** Normal(mean, std) samples. */
export function randn(shape: readonly number[], opts: { dtype?: DType; rng?: Rng; mean?: number; std?: number } = {}): Tensor {
  const dt = floatDType('randn', opts.dtype ?? 'f32');
  const rng = opts.rng ?? global;
  const t = empty(shape, dt);
  const a = t.raw as FArray;
  const m = opts.mean ?? 0;
  const s = opts.std ?? 1;
  for (let i = 0; i < t.size; i++) a[i] = m + s * rng.normal();
  return t;
}

/** Uniform [lo, hi) samples. */
export function rand(shape: readonly number[], opts: { dtype?: DType; rng?: Rng; lo?: number; hi?: number } = {}): Tensor {
  const dt = floatDType('rand', opts.dtype ?? 'f32');
  const rng = opts.rng ?? global;
  const t = empty(shape, dt);
  const a = t.raw as FArray;
  const lo = opts.lo ?? 0;
  const hi = opts.hi ?? 1;
  for (let i = 0; i < t.size; i++) a[i] = lo + (hi - lo) * rng.next();
  return t;
}
