/** The tensor engine's public API. */
export { Tensor, Storage, empty, fromArray, sizeOf, contiguousStrides } from './tensor.js';
export type { DType } from './dtype.js';
export { DTYPES, ITEM_SIZE, parseDType, isComputeFloat } from './dtype.js';
export { tidy, keep, memoryStats, setPoolLimit, clearPool } from './memory.js';
export { noGrad, isGradEnabled, setGradEnabled } from './autograd.js';
export { Rng, manualSeed, globalRng, randn, rand } from './random.js';
export * from './ops/index.js';
export type { Backend, FArray, AnyArray, UnaryOp, BinaryOp, RopeLayout } from './backend.js';
