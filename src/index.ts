/** r1ts: the DeepSeek-R1 system in TypeScript. */
export * from './tensor/index.js';
export * from './errors.js';
