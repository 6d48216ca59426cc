/**
 * Deterministic memory: tensors' buffers come from a size-keyed pool and go back to it on dispose(),
 * so a training loop reuses the same buffers step after step instead of waiting for the garbage collector.
 * tidy(fn) disposes every tensor created inside fn except those it returns (or keep()s).
 */
import type { DType } from './dtype.js';
import { ITEM_SIZE, viewArray } from './dtype.js';
import type { AnyArray } from './backend.js';

/** Buffers kept for reuse, by byte length. */
const pool = new Map<number, ArrayBuffer[]>();
let pooledBytes = 0;
/** Cap on idle pooled bytes; beyond it released buffers are left to the GC. */
let poolLimitBytes = 1 << 30;

export const memoryStats = { allocated: 0, reused: 0, released: 0, liveBytes: 0 };

export function setPoolLimit(bytes: number): void {
  poolLimitBytes = bytes;
  trimPool();
}

function trimPool(): void {
  if (pooledBytes <= poolLimitBytes) return;
  for (const [size, list] of pool) {
    while (list.length && pooledBytes > poolLimitBytes) { list.pop(); pooledBytes -= size; }
    if (!list.length) pool.delete(size);
  }
}

/** Drop idle buffers of other sizes, largest first, until `bytes` more fit under the cap (or none are left). */
function evictFor(bytes: number): void {
  while (pooledBytes + bytes > poolLimitBytes) {
    let largest = -1;
    for (const [size, list] of pool) if (size !== bytes && list.length && size > largest) largest = size;
    if (largest < 0) return;
    const list = pool.get(largest)!;
    list.pop();
    pooledBytes -= largest;
    if (!list.length) pool.delete(largest);
  }
}

/** Drop every idle buffer (they become garbage). */
export function clearPool(): void {
  pool.clear();
  pooledBytes = 0;
}

/**
 * Round sizes up so near sizes share buffers: powers of two up to 64 KiB, then eight steps per power of two
 * (at most 12.5% slack). Coarse buckets matter for tensors that grow a little every step — a decode's KV cache
 * gains one token per step, so with page-sized buckets every step needed a fresh (zero-filled, GC-tracked) buffer;
 * with these the buffer the previous step released is reused. Untouched slack pages are never made resident.
 */
function bucket(bytes: number): number {
  if (bytes <= 64) return 64;
  if (bytes <= 1 << 16) return 1 << Math.ceil(Math.log2(bytes));
  const step = 2 ** (Math.floor(Math.log2(bytes)) - 3);
  return Math.ceil(bytes / step) * step;
}

/** An array of n elements of dtype; zeroed if `zero` (fresh buffers always are). */
export function allocArray(dtype: DType, n: number, zero = false): AnyArray {
  const bytes = bucket(Math.max(1, n) * ITEM_SIZE[dtype]);
  const list = pool.get(bytes);
  let buf = list?.pop();
  if (buf) {
    pooledBytes -= bytes;
    memoryStats.reused++;
    const arr = viewArray(dtype, buf, n);
    if (zero) arr.fill(dtype === 'i64' ? (0n as never) : (0 as never));
    memoryStats.liveBytes += bytes;
    return arr;
  }
  buf = new ArrayBuffer(bytes);
  memoryStats.allocated++;
  memoryStats.liveBytes += bytes;
  return viewArray(dtype, buf, n);
}

/** Return an array's buffer to the pool. Only for arrays from allocArray that nothing else references. */
export function releaseArray(a: AnyArray): void {
  const buf = a.buffer as ArrayBuffer;
  const bytes = buf.byteLength;
  memoryStats.released++;
  memoryStats.liveBytes -= bytes;
  // Over the cap, make room by dropping the largest idle buffers of other sizes rather than this one: the buffer
  // just released is the kind the running loop reuses, while the largest idle ones are typically left over from an
  // earlier phase (a batched prefill's activations). Dropping the newcomer instead left a decode loop with a pool
  // full of stale prefill buffers and a fresh (zero-filled, GC-tracked) allocation for every tensor (~1200 per S1
  // batch-16 step).
  if (pooledBytes + bytes > poolLimitBytes) evictFor(bytes);
  if (pooledBytes + bytes > poolLimitBytes) return;
  let list = pool.get(bytes);
  if (!list) { list = []; pool.set(bytes, list); }
  list.push(buf);
  pooledBytes += bytes;
}

/** Anything with a dispose() that scopes track. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Disposable>[] = [];

/** Called by every tensor constructor: the innermost tidy() scope owns it. */
export function track(t: Disposable): void {
  const s = scopes[scopes.length - 1];
  if (s) s.add(t);
}

/** Remove t from every open scope so no tidy() disposes it (parameters, gradients, caches). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** Collect the tensors in a tidy result (a tensor, or arrays/objects of them, one level of nesting per level). */
function collect(x: unknown, out: Set<Disposable>, depth = 0): void {
  if (x === null || x === undefined || depth > 4) return;
  if (typeof x === 'object') {
    if ('dispose' in x && 'isDisposed' in x) { out.add(x as Disposable); return; }
    if (Array.isArray(x)) { for (const v of x) collect(v, out, depth + 1); return; }
    if (x instanceof Map) { for (const v of x.values()) collect(v, out, depth + 1); return; }
    if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out, depth + 1);
  }
}

/**
 * Run fn; afterwards dispose every tensor created inside it except those reachable from its result
 * (a tensor, or an array/plain object/Map of them), which move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const kept = new Set<Disposable>();
  collect(result, kept);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  for (const t of kept) if (scope.has(t)) track(t);
  return result;
}

/** Number of open tidy scopes (for tests). */
export function scopeDepth(): number {
  return scopes.length;
}
