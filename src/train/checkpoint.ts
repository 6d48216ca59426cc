/**
 * Resumable training checkpoints. A checkpoint is a Hugging Face model folder (config.json +
 * model.safetensors, loadable by `r1 run` and transformers) plus optimizer.safetensors (AdamW moments by
 * parameter name) and trainer_state.json (step, RNG states, data position, run settings). It is staged
 * and renamed into place (saveHfFolder), so a crash never leaves a half-written checkpoint behind.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../errors.js';
import { saveHfFolder } from '../io/hf-folder.js';
import { serializeSafetensors, openSafetensors, type WriteTensor } from '../io/safetensors.js';
import type { CausalLM } from '../models/load.js';
import type { AdamW } from './optim.js';
import { tidy, fromArray, type Tensor } from '../tensor/index.js';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

export interface TrainerState {
  /** Optimizer steps done. */
  step: number;
  /** Anything else the run needs to continue exactly (RNG states, data position, settings). */
  [key: string]: unknown;
}

function f32(t: Tensor): Float32Array {
  return t.dtype === 'f32' ? (t.toArray() as Float32Array) : Float32Array.from(t.toArray() as ArrayLike<number>);
}

export function checkpointName(step: number): string {
  return `checkpoint-${String(step).padStart(6, '0')}`;
}

/** Write a checkpoint folder `dir/checkpoint-<step>`; keeps the newest `keep` checkpoints (0 = all). */
export function saveCheckpoint(dir: string, model: CausalLM, optimizer: AdamW, state: TrainerState, opts: { keep?: number; extraFiles?: Record<string, string> } = {}): string {
  const names = new Map(model.namedParameters().map(([n, t]) => [t, n]));
  const tensors: WriteTensor[] = model.namedParameters().map(([name, t]) => ({ name, dtype: 'F32', shape: [...t.shape], data: () => f32(t) }));
  const opt: WriteTensor[] = [];
  optimizer.params.forEach((p, i) => {
    const n = names.get(p);
    if (!n) throw new FormatError('checkpoint: an optimizer parameter is not a model parameter');
    opt.push({ name: `exp_avg.${n}`, dtype: 'F32', shape: [...p.shape], data: f32(optimizer.m[i]!) });
    opt.push({ name: `exp_avg_sq.${n}`, dtype: 'F32', shape: [...p.shape], data: f32(optimizer.v[i]!) });
  });
  mkdirSync(dir, { recursive: true });
  const path = join(dir, checkpointName(state.step));
  saveHfFolder(path, {
    config: model.config,
    tensors,
    keepExisting: false,
    extraFiles: {
      ...(opts.extraFiles ?? {}),
      [OPTIMIZER_FILE]: serializeSafetensors(opt, { optimizer: 'adamw', step: String(optimizer.step) }),
      [TRAINER_STATE_FILE]: JSON.stringify({ ...state, optimizerStep: optimizer.step }, null, 2) + '\n',
    },
  });
  if (opts.keep && opts.keep > 0) {
    const all = listCheckpoints(dir);
    for (const old of all.slice(0, Math.max(0, all.length - opts.keep))) rmSync(old.path, { recursive: true, force: true });
  }
  return path;
}

/** Complete checkpoints under `dir`, oldest first. */
export function listCheckpoints(dir: string): { step: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => /^checkpoint-(\d+)$/.exec(f))
    .filter((m): m is RegExpExecArray => !!m && existsSync(join(dir, m[0], TRAINER_STATE_FILE)))
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(dir: string): string | null {
  const all = listCheckpoints(dir);
  return all.length ? all[all.length - 1]!.path : null;
}

/** Restore model weights and optimizer moments in place; returns the trainer state. */
export function loadCheckpoint(path: string, model: CausalLM, optimizer: AdamW): TrainerState {
  const statePath = join(path, TRAINER_STATE_FILE);
  if (!existsSync(statePath)) throw new FormatError(`${path}: not a checkpoint (no ${TRAINER_STATE_FILE})`);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  } catch (e) {
    throw new FormatError(`${statePath}: not valid JSON (${(e as Error).message})`);
  }
  if (!Number.isInteger(state.step) || state.step < 0) throw new FormatError(`${statePath}: "step" must be a non-negative integer`);
  const params = model.namedParameters();
  const w = openSafetensors(join(path, 'model.safetensors'));
  try {
    const missing = params.filter(([n]) => !w.has(n)).map(([n]) => n);
    if (missing.length) throw new FormatError(`${path}/model.safetensors: missing ${missing.join(', ')}`);
    for (const [n, t] of params) {
      const info = w.info(n);
      if (info.shape.join(',') !== t.shape.join(',')) throw new FormatError(`${path}/model.safetensors: '${n}' has shape [${info.shape}], the model [${t.shape}]`);
      tidy(() => model.setParameter(n, w.read(n)));
    }
  } finally {
    w.close();
  }
  const o = openSafetensors(join(path, OPTIMIZER_FILE));
  try {
    const names = new Map(params.map(([n, t]) => [t, n]));
    optimizer.params.forEach((p, i) => {
      const n = names.get(p)!;
      for (const [key, dst] of [[`exp_avg.${n}`, optimizer.m[i]!], [`exp_avg_sq.${n}`, optimizer.v[i]!]] as const) {
        if (!o.has(key)) throw new FormatError(`${path}/${OPTIMIZER_FILE}: missing '${key}'`);
        const raw = o.readRaw(key);
        if (raw.data.length !== dst.size) throw new FormatError(`${path}/${OPTIMIZER_FILE}: '${key}' has ${raw.data.length} values, expected ${dst.size}`);
        tidy(() => {
          const src = fromArray(raw.data as Float32Array, raw.shape);
          const v = src.to(dst.dtype);
          (dst.raw as Float32Array).set(v.raw.subarray(v.offset, v.offset + v.size) as Float32Array, dst.offset);
        });
      }
    });
  } finally {
    o.close();
  }
  optimizer.step = typeof state['optimizerStep'] === 'number' ? (state['optimizerStep'] as number) : state.step;
  return state;
}
