/**
 * Element types. f32 is the compute type; f64 is for the reference backend and gradient checks;
 * bf16/f16 are storage types (Uint16Array bit patterns, converted on load and in kernels);
 * fp8e4m3/fp8e5m2 are storage slots for FP8 weights (Uint8Array codes, see src/quant/fp8.ts);
 * i32/i64/u8/bool hold indices and masks.
 */
import type { AnyArray } from './backend.js';
import { DTypeError } from '../errors.js';

export type DType = 'f32' | 'f64' | 'bf16' | 'f16' | 'fp8e4m3' | 'fp8e5m2' | 'i32' | 'i64' | 'u8' | 'bool';

export const DTYPES: readonly DType[] = ['f32', 'f64', 'bf16', 'f16', 'fp8e4m3', 'fp8e5m2', 'i32', 'i64', 'u8', 'bool'];

/** Bytes per element. */
export const ITEM_SIZE: Readonly<Record<DType, number>> = {
  f32: 4, f64: 8, bf16: 2, f16: 2, fp8e4m3: 1, fp8e5m2: 1, i32: 4, i64: 8, u8: 1, bool: 1,
};

/** Float types ops compute in. */
export function isComputeFloat(d: DType): d is 'f32' | 'f64' {
  return d === 'f32' || d === 'f64';
}
export function isIntegral(d: DType): boolean {
  return d === 'i32' || d === 'i64' || d === 'u8' || d === 'bool';
}

/** A typed array of the dtype's storage kind, viewing `buffer` (byteOffset 0) with n elements. */
export function viewArray(dtype: DType, buffer: ArrayBuffer, n: number): AnyArray {
  switch (dtype) {
    case 'f32': return new Float32Array(buffer, 0, n);
    case 'f64': return new Float64Array(buffer, 0, n);
    case 'bf16': case 'f16': return new Uint16Array(buffer, 0, n);
    case 'fp8e4m3': case 'fp8e5m2': case 'u8': case 'bool': return new Uint8Array(buffer, 0, n);
    case 'i32': return new Int32Array(buffer, 0, n);
    case 'i64': return new BigInt64Array(buffer, 0, n);
  }
}

/** Checks an array's kind matches a dtype's storage kind. */
export function arrayMatches(dtype: DType, a: AnyArray): boolean {
  switch (dtype) {
    case 'f32': return a instanceof Float32Array;
    case 'f64': return a instanceof Float64Array;
    case 'bf16': case 'f16': return a instanceof Uint16Array;
    case 'fp8e4m3': case 'fp8e5m2': case 'u8': case 'bool': return a instanceof Uint8Array;
    case 'i32': return a instanceof Int32Array;
    case 'i64': return a instanceof BigInt64Array;
  }
}

/** The natural dtype of a typed array (Uint16Array and Uint8Array are ambiguous: bf16 and u8). */
export function dtypeOfArray(a: AnyArray): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof BigInt64Array) return 'i64';
  if (a instanceof Uint16Array) return 'bf16';
  if (a instanceof Uint8Array) return 'u8';
  throw new DTypeError('unsupported typed array');
}

export function parseDType(s: string): DType {
  if ((DTYPES as readonly string[]).includes(s)) return s as DType;
  const alias: Record<string, DType> = { float32: 'f32', float64: 'f64', bfloat16: 'bf16', float16: 'f16', int32: 'i32', int64: 'i64', uint8: 'u8' };
  if (s in alias) return alias[s]!;
  throw new DTypeError(`unknown dtype '${s}' (expected one of ${DTYPES.join(', ')})`);
}
