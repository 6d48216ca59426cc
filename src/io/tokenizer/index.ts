/** Tokenizers: HF tokenizer.json byte-level BPE (load, encode, decode, stream) and a BPE trainer. */
export { Tokenizer, loadTokenizer, parseTokenizerConfig, type TokenizerConfig, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export { DecodeStream } from './stream.js';
export { BpeModel } from './bpe.js';
export { translateOnigRegex, compileOnigRegex } from './regex.js';
export { BYTE_TO_CHAR, toByteLevel } from './bytes.js';
export { trainBpe, defaultChatTemplate, DEFAULT_SPECIAL_TOKENS, DEFAULT_ADDED_TOKENS, type TrainOptions, type TrainedTokenizer } from './train.js';
