/**
 * Locating the llama.cpp peer: the npm package node-llama-cpp (prebuilt CPU binaries), which is NOT a
 * dependency of r1ts. It is looked up at $R1_NODE_LLAMA_CPP (the package folder), else at
 * /work/peers/node_modules/node-llama-cpp; when neither exists, callers skip the peer and say why.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const DEFAULT_NODE_LLAMA_CPP = '/work/peers/node_modules/node-llama-cpp';

/** The package folder, or null. */
export function nodeLlamaCppDir(): string | null {
  const env = process.env['R1_NODE_LLAMA_CPP'];
  for (const d of env ? [env, DEFAULT_NODE_LLAMA_CPP] : [DEFAULT_NODE_LLAMA_CPP]) {
    if (existsSync(join(d, 'dist', 'index.js'))) return d;
  }
  return null;
}

/** Why the peer is unavailable (null when it is available). */
export function nodeLlamaCppMissing(): string | null {
  if (nodeLlamaCppDir()) return null;
  const env = process.env['R1_NODE_LLAMA_CPP'];
  return `node-llama-cpp not found (${env ? `R1_NODE_LLAMA_CPP=${env}, ` : 'R1_NODE_LLAMA_CPP unset, '}${DEFAULT_NODE_LLAMA_CPP} absent)`;
}

// The package's types are not available at compile time (it is not a dependency): the few members used
// are declared here.
export interface LlamaToken { readonly __brand?: 'token' }
export interface LlamaSequence {
  controlledEvaluate(input: (number | [number, { generateNext?: { logits?: boolean; token?: boolean } }])[]): Promise<({ next?: { token?: number | null; logits?: Map<number, number> } } | undefined)[]>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  clearHistory(): Promise<void>;
  dispose(): void;
  readonly nextTokenIndex: number;
}
export interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
export interface LlamaModel {
  createContext(o: { contextSize?: number; sequences?: number; threads?: number; batchSize?: number; flashAttention?: boolean; experimentalKvCacheKeyType?: string; experimentalKvCacheValueType?: string }): Promise<LlamaContext>;
  dispose(): Promise<void>;
  readonly trainContextSize: number;
}
export interface Llama {
  loadModel(o: { modelPath: string; gpuLayers?: number; useMmap?: boolean }): Promise<LlamaModel>;
  dispose(): Promise<void>;
  readonly cpuMathCores?: number;
}

/** getLlama({ gpu: false, build: 'never' }) from the located package (offline, prebuilt binaries only). */
export async function loadNodeLlamaCpp(): Promise<{ llama: Llama; version: string; dir: string }> {
  const dir = nodeLlamaCppDir();
  if (!dir) throw new Error(nodeLlamaCppMissing()!);
  const mod = (await import(pathToFileURL(join(dir, 'dist', 'index.js')).href)) as { getLlama: (o: object) => Promise<Llama> };
  const llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  let version = 'unknown';
  try {
    const { readFileSync } = await import('node:fs');
    version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch { /* version is informational */ }
  return { llama, version, dir };
}
