/**
 * Learning-rate schedules as pure functions of the optimizer step.
 *
 * Step indexing follows PyTorch's LambdaLR as Hugging Face `transformers.optimization` uses it: the value at
 * step `s` (0-based) is the learning rate of the (s+1)-th optimizer step. So with warmup, step 0 has lr 0
 * (HF's `current_step / max(1, num_warmup_steps)`), and the peak is first reached at step `warmupSteps`.
 * `Trainer` (loop.ts) calls `lr(this.step)` with the same 0-based step.
 *
 * Formulas (transformers/optimization.py):
 *   constant:  s < W ? s / max(1, W) : 1                                (get_constant_schedule_with_warmup)
 *   linear:    s < W ? s / max(1, W) : max(0, (N - s) / max(1, N - W)) (get_linear_schedule_with_warmup)
 *   cosine:    s < W ? s / max(1, W)
 *              : r + (1 - r) * 0.5 * (1 + cos(pi * 2c * (s - W) / max(1, N - W)))
 *                                                                      (get_cosine_with_min_lr_schedule_with_warmup,
 *                                                                       r = minLr / lr, c = numCycles = 0.5)
 *   wsd:       warmup s < W: r + (1 - r) * s / max(1, W); stable: 1; decay over D steps:
 *              r + (1 - r) * f(p), p = (s - W - S) / max(1, D), f = 1 - p (linear) or 0.5 * (1 + cos(pi p)) (cosine);
 *              after W + S + D: r                                      (get_wsd_schedule)
 * One deliberate difference: HF's cosine keeps evaluating cos past N (the lr rises again); here the cosine and
 * linear schedules hold their final value (minLr) for every step >= N, so an over-long run never re-warms.
 */
import { UsageError } from '../errors.js';

/** The learning rate at a 0-based optimizer step. */
export type Schedule = (step: number) => number;

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new UsageError(`lr schedule: step must be a non-negative integer, got ${step}`);
}

function checkArgs(name: string, args: Record<string, number | undefined>, ints: readonly string[]): void {
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < 0) throw new UsageError(`${name} schedule: ${k} must be a finite number >= 0, got ${v}`);
    if (ints.includes(k) && !Number.isInteger(v)) throw new UsageError(`${name} schedule: ${k} must be an integer, got ${v}`);
  }
}

/** Linear warmup factor s / max(1, W) (HF), 1 after warmup. */
function warmupFactor(step: number, warmupSteps: number): number {
  return step < warmupSteps ? step / Math.max(1, warmupSteps) : 1;
}

export interface ConstantOptions {
  /** Linear warmup from 0 over this many steps (default 0: constant from step 0). */
  warmupSteps?: number;
}

/** Constant learning rate, optionally after a linear warmup (HF get_constant_schedule[_with_warmup]). */
export function constantSchedule(lr: number, opts: ConstantOptions = {}): Schedule {
  const warmupSteps = opts.warmupSteps ?? 0;
  checkArgs('constant', { lr, warmupSteps }, ['warmupSteps']);
  return (step) => {
    checkStep(step);
    return lr * warmupFactor(step, warmupSteps);
  };
}

export interface DecayOptions {
  /** Peak learning rate (the optimizer's initial lr in HF). */
  lr: number;
  /** Total optimizer steps N (HF num_training_steps). */
  totalSteps: number;
  /** Linear warmup steps W (default 0). */
  warmupSteps?: number;
  /** Final learning rate (default 0). */
  minLr?: number;
}

function checkDecay(name: string, o: DecayOptions): { W: number; N: number; minLr: number } {
  const W = o.warmupSteps ?? 0;
  const minLr = o.minLr ?? 0;
  checkArgs(name, { lr: o.lr, totalSteps: o.totalSteps, warmupSteps: W, minLr }, ['totalSteps', 'warmupSteps']);
  if (o.totalSteps < 1) throw new UsageError(`${name} schedule: totalSteps must be >= 1, got ${o.totalSteps}`);
  if (W > o.totalSteps) throw new UsageError(`${name} schedule: warmupSteps (${W}) exceeds totalSteps (${o.totalSteps})`);
  if (minLr > o.lr) throw new UsageError(`${name} schedule: minLr (${minLr}) exceeds lr (${o.lr})`);
  return { W, N: o.totalSteps, minLr };
}

/**
 * Linear warmup then linear decay to minLr at step N (HF get_linear_schedule_with_warmup, which decays to 0;
 * minLr > 0 rescales the decay factor to [minLr/lr, 1] the same way HF's min-lr cosine does).
 */
export function linearSchedule(o: DecayOptions): Schedule {
  const { W, N, minLr } = checkDecay('linear', o);
  const r = o.lr > 0 ? minLr / o.lr : 0;
  return (step) => {
    checkStep(step);
    if (step < W) return o.lr * step / Math.max(1, W);
    const f = Math.max(0, (N - step) / Math.max(1, N - W));
    return o.lr * (r + (1 - r) * f);
  };
}

export interface CosineOptions extends DecayOptions {
  /** Number of cosine waves over the decay (HF num_cycles, default 0.5: one half-cosine from peak to minLr). */
  numCycles?: number;
}

/** Linear warmup then cosine decay to minLr (HF get_cosine_with_min_lr_schedule_with_warmup; minLr=0 is get_cosine_schedule_with_warmup). */
export function cosineSchedule(o: CosineOptions): Schedule {
  const { W, N, minLr } = checkDecay('cosine', o);
  const c = o.numCycles ?? 0.5;
  checkArgs('cosine', { numCycles: c }, []);
  const r = o.lr > 0 ? minLr / o.lr : 0;
  return (step) => {
    checkStep(step);
    if (step < W) return o.lr * step / Math.max(1, W);
    const progress = Math.min(1, (step - W) / Math.max(1, N - W));
    const f = 0.5 * (1 + Math.cos(Math.PI * c * 2 * progress));
    return o.lr * Math.max(0, f * (1 - r) + r);
  };
}

export type DecayShape = 'linear' | 'cosine';

export interface WsdOptions extends DecayOptions {
  /** Fraction of totalSteps spent decaying, at the end (D = ceil(decayFraction * N)). Default 0.1. */
  decayFraction?: number;
  /** Decay shape (default 'linear', the MiniCPM / DeepSeek-style cooldown). */
  decay?: DecayShape;
}

/**
 * Warmup-stable-decay (HF get_wsd_schedule, linear warmup): warmup from minLr to lr over W steps, hold lr, then
 * decay to minLr over the last D = ceil(decayFraction * N) steps; minLr from step N on.
 */
export function wsdSchedule(o: WsdOptions): Schedule {
  const { W, N, minLr } = checkDecay('wsd', o);
  const frac = o.decayFraction ?? 0.1;
  if (!Number.isFinite(frac) || frac < 0 || frac > 1) throw new UsageError(`wsd schedule: decayFraction must be in [0, 1], got ${frac}`);
  const shape = o.decay ?? 'linear';
  if (shape !== 'linear' && shape !== 'cosine') throw new UsageError(`wsd schedule: decay must be 'linear' or 'cosine', got '${String(shape)}'`);
  const D = Math.ceil(frac * N - 1e-9);
  if (W + D > N) throw new UsageError(`wsd schedule: warmupSteps (${W}) + decay steps (${D} = ceil(${frac} * ${N})) exceed totalSteps (${N})`);
  const S = N - W - D;
  const r = o.lr > 0 ? minLr / o.lr : 0;
  return (step) => {
    checkStep(step);
    let f: number;
    if (step < W) f = r + (1 - r) * (step / Math.max(1, W));
    else if (step < W + S) f = 1;
    else if (step < N) {
      const p = (step - W - S) / Math.max(1, D);
      const g = shape === 'linear' ? 1 - p : 0.5 * (1 + Math.cos(Math.PI * p));
      f = r + (1 - r) * g;
    } else f = r;
    return o.lr * Math.max(0, f);
  };
}

// ---------------------------------------------------------------------------------------------------------------
// CLI flags. The train layer does not import cli/, so the spec is the plain node:util parseArgs option shape.

/** Flags every training command accepts for its schedule; spread into the command's flag spec. */
export const scheduleFlags = {
  'lr': { type: 'string' },
  'lr-schedule': { type: 'string' },
  'warmup-steps': { type: 'string' },
  'warmup-ratio': { type: 'string' },
  'min-lr': { type: 'string' },
  'decay-fraction': { type: 'string' },
  'decay-type': { type: 'string' },
} as const;

export const scheduleUsage = `  --lr X                peak learning rate (required)
  --lr-schedule NAME    constant | linear | cosine | wsd (default cosine)
  --warmup-steps N      linear warmup steps (default 0)
  --warmup-ratio F      warmup as a fraction of the total steps, ceil(F * steps) (instead of --warmup-steps)
  --min-lr X            final learning rate of linear/cosine/wsd (default 0)
  --decay-fraction F    wsd: fraction of the steps spent decaying at the end (default 0.1)
  --decay-type T        wsd: linear | cosine (default linear)`;

export const LR_SCHEDULES = ['constant', 'linear', 'cosine', 'wsd'] as const;
export type LrScheduleName = (typeof LR_SCHEDULES)[number];

export interface LrScheduleSpec {
  name: LrScheduleName;
  lr: number;
  warmupSteps: number;
  minLr: number;
  totalSteps: number;
  decayFraction: number;
  decay: DecayShape;
}

function num(where: string, flag: string, raw: unknown, opts: { int?: boolean; min?: number; max?: number }): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' && typeof raw !== 'number') throw new UsageError(`${where}: --${flag} must be a number, got '${String(raw)}'`);
  const v = Number(raw);
  if ((typeof raw === 'string' && raw.trim() === '') || !Number.isFinite(v)) throw new UsageError(`${where}: --${flag} must be a number, got '${String(raw)}'`);
  if (opts.int && !Number.isInteger(v)) throw new UsageError(`${where}: --${flag} must be an integer, got '${String(raw)}'`);
  if (opts.min !== undefined && v < opts.min) throw new UsageError(`${where}: --${flag} must be >= ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw new UsageError(`${where}: --${flag} must be <= ${opts.max}, got ${v}`);
  return v;
}

/**
 * Read the schedule flags (as parsed by node:util parseArgs: strings or undefined) into a validated spec.
 * `where` prefixes every message (e.g. 'r1 sft'); `totalSteps` is the run's optimizer step count.
 */
export function parseScheduleSpec(values: Readonly<Record<string, unknown>>, where: string, totalSteps: number): LrScheduleSpec {
  const nameRaw = values['lr-schedule'] ?? 'cosine';
  if (typeof nameRaw !== 'string' || !(LR_SCHEDULES as readonly string[]).includes(nameRaw)) {
    throw new UsageError(`${where}: --lr-schedule must be one of ${LR_SCHEDULES.join(', ')}, got '${String(nameRaw)}'`);
  }
  const name = nameRaw as LrScheduleName;
  const lr = num(where, 'lr', values['lr'], { min: 0 });
  if (lr === undefined) throw new UsageError(`${where}: --lr is required`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new UsageError(`${where}: the total step count must be a positive integer, got ${totalSteps}`);
  const ws = num(where, 'warmup-steps', values['warmup-steps'], { int: true, min: 0 });
  const wr = num(where, 'warmup-ratio', values['warmup-ratio'], { min: 0, max: 1 });
  if (ws !== undefined && wr !== undefined) throw new UsageError(`${where}: give --warmup-steps or --warmup-ratio, not both`);
  // HF TrainingArguments.get_warmup_steps: ceil(num_training_steps * warmup_ratio).
  const warmupSteps = ws ?? (wr !== undefined ? Math.ceil(totalSteps * wr - 1e-9) : 0);
  if (warmupSteps > totalSteps) throw new UsageError(`${where}: --warmup-steps (${warmupSteps}) exceeds the total steps (${totalSteps})`);
  const minLr = num(where, 'min-lr', values['min-lr'], { min: 0 }) ?? 0;
  if (name === 'constant' && values['min-lr'] !== undefined) throw new UsageError(`${where}: --min-lr has no effect with --lr-schedule constant`);
  if (minLr > lr) throw new UsageError(`${where}: --min-lr (${minLr}) exceeds --lr (${lr})`);
  const decayFraction = num(where, 'decay-fraction', values['decay-fraction'], { min: 0, max: 1 }) ?? 0.1;
  const decayRaw = values['decay-type'] ?? 'linear';
  if (decayRaw !== 'linear' && decayRaw !== 'cosine') throw new UsageError(`${where}: --decay-type must be linear or cosine, got '${String(decayRaw)}'`);
  if (name !== 'wsd') {
    for (const f of ['decay-fraction', 'decay-type']) {
      if (values[f] !== undefined) throw new UsageError(`${where}: --${f} only applies to --lr-schedule wsd (got --lr-schedule ${name})`);
    }
  } else {
    const D = Math.ceil(decayFraction * totalSteps - 1e-9);
    if (warmupSteps + D > totalSteps) {
      throw new UsageError(`${where}: warmup (${warmupSteps}) + decay (${D} = ceil(${decayFraction} * ${totalSteps})) steps exceed the total steps (${totalSteps})`);
    }
  }
  return { name, lr, warmupSteps, minLr, totalSteps, decayFraction, decay: decayRaw };
}

/** Build the schedule a spec describes. */
export function makeLrSchedule(s: LrScheduleSpec): Schedule {
  switch (s.name) {
    case 'constant': return constantSchedule(s.lr, { warmupSteps: s.warmupSteps });
    case 'linear': return linearSchedule(s);
    case 'cosine': return cosineSchedule(s);
    case 'wsd': return wsdSchedule({ ...s, decay: s.decay });
  }
}

/** Flags -> schedule in one call: `parseSchedule(values, 'r1 sft', steps)`. Throws UsageError naming the flag. */
export function parseSchedule(values: Readonly<Record<string, unknown>>, where: string, totalSteps: number): Schedule {
  return makeLrSchedule(parseScheduleSpec(values, where, totalSteps));
}
