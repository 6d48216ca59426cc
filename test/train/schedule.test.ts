import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  constantSchedule, linearSchedule, cosineSchedule, wsdSchedule, parseSchedule, parseScheduleSpec, scheduleFlags,
} from '../../src/train/schedule.js';
import { UsageError } from '../../src/errors.js';

function close(a: number, b: number, msg?: string): void {
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${msg ?? ''} got ${a}, expected ${b}`);
}

test('constant: HF get_constant_schedule_with_warmup (step 0 has lr 0, peak at step W)', () => {
  const s = constantSchedule(3, { warmupSteps: 4 });
  close(s(0), 0); close(s(1), 0.75); close(s(3), 2.25); close(s(4), 3); close(s(1000), 3);
  const c = constantSchedule(3);
  close(c(0), 3); close(c(7), 3);
});

test('linear: HF get_linear_schedule_with_warmup', () => {
  const s = linearSchedule({ lr: 2, warmupSteps: 4, totalSteps: 14 });
  close(s(0), 0); close(s(2), 1); close(s(4), 2);
  close(s(9), 1);              // (14 - 9) / (14 - 4) = 0.5
  close(s(13), 0.2);           // 1/10
  close(s(14), 0); close(s(20), 0);
  const m = linearSchedule({ lr: 1, totalSteps: 10, minLr: 0.2 });
  close(m(0), 1); close(m(5), 0.2 + 0.8 * 0.5); close(m(10), 0.2); close(m(11), 0.2);
});

test('cosine: HF get_cosine_schedule_with_warmup and the min-lr variant', () => {
  // W = 10, N = 110, decay over 100 steps.
  const h = cosineSchedule({ lr: 1e-3, warmupSteps: 10, totalSteps: 110 });
  close(h(0), 0); close(h(5), 5e-4); close(h(10), 1e-3);
  close(h(35), 1e-3 * 0.5 * (1 + Math.SQRT1_2));    // progress 0.25: 0.5 * (1 + cos(pi/4)) = 0.8535533905932737
  close(h(35), 8.535533905932737e-4);
  close(h(60), 5e-4);                                 // progress 0.5
  close(h(110), 0);
  // min lr 1e-4: min_lr_rate 0.1, factor * 0.9 + 0.1
  const m = cosineSchedule({ lr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-4 });
  close(m(0), 0); close(m(10), 1e-3);
  close(m(35), 1e-3 * (0.1 + 0.9 * 0.8535533905932737));
  close(m(60), 5.5e-4);
  close(m(110), 1e-4);
  // Past N we hold minLr (HF would rise again along the cosine).
  close(m(160), 1e-4); close(m(10_000), 1e-4);
  // No warmup: step 0 is the peak.
  const n = cosineSchedule({ lr: 1, totalSteps: 4 });
  close(n(0), 1); close(n(2), 0.5); close(n(1), 0.5 * (1 + Math.cos(Math.PI / 4)));
  // Monotone non-increasing after warmup.
  for (let s = 10; s < 120; s++) assert.ok(m(s + 1) <= m(s) + 1e-18, `step ${s}`);
});

test('wsd: HF get_wsd_schedule (warmup from minLr, stable, decay over the last fraction)', () => {
  // N = 100, W = 10, decay D = 20 (last 20%), stable S = 70; r = 0.1.
  const lin = wsdSchedule({ lr: 1, totalSteps: 100, warmupSteps: 10, minLr: 0.1, decayFraction: 0.2, decay: 'linear' });
  close(lin(0), 0.1); close(lin(5), 0.55); close(lin(10), 1); close(lin(50), 1); close(lin(79), 1);
  close(lin(80), 1);               // decay progress 0
  close(lin(85), 0.1 + 0.9 * 0.75);
  close(lin(90), 0.55);
  close(lin(99), 0.1 + 0.9 * 0.05);
  close(lin(100), 0.1); close(lin(150), 0.1);
  const cos = wsdSchedule({ lr: 1, totalSteps: 100, warmupSteps: 10, minLr: 0.1, decayFraction: 0.2, decay: 'cosine' });
  close(cos(79), 1); close(cos(80), 1);
  close(cos(85), 0.1 + 0.9 * 0.8535533905932737);
  close(cos(90), 0.55);
  close(cos(100), 0.1);
  // decayFraction 0.1 of 30 steps is 3 steps, despite 0.1 * 30 = 3.0000000000000004.
  const d = wsdSchedule({ lr: 1, totalSteps: 30, decayFraction: 0.1 });
  close(d(26), 1); close(d(27), 1); close(d(28), 2 / 3); close(d(29), 1 / 3); close(d(30), 0);
});

test('schedules reject bad arguments and steps', () => {
  assert.throws(() => cosineSchedule({ lr: 1, totalSteps: 10, warmupSteps: 11 }), /warmupSteps \(11\) exceeds totalSteps \(10\)/);
  assert.throws(() => cosineSchedule({ lr: 1, totalSteps: 10, minLr: 2 }), /minLr \(2\) exceeds lr \(1\)/);
  assert.throws(() => wsdSchedule({ lr: 1, totalSteps: 10, warmupSteps: 5, decayFraction: 0.6 }), /exceed totalSteps/);
  assert.throws(() => constantSchedule(-1), UsageError);
  assert.throws(() => constantSchedule(1)(-1), /non-negative integer/);
  assert.throws(() => constantSchedule(1)(1.5), /non-negative integer/);
});

test('parseSchedule: flags to schedule', () => {
  const s = parseSchedule({ 'lr': '1e-3', 'lr-schedule': 'cosine', 'warmup-steps': '10', 'min-lr': '1e-4' }, 'r1 sft', 110);
  close(s(60), 5.5e-4);
  // default schedule is cosine; warmup ratio -> ceil(ratio * steps) as HF's get_warmup_steps.
  const spec = parseScheduleSpec({ 'lr': '1', 'warmup-ratio': '0.05' }, 'r1 sft', 110);
  assert.equal(spec.name, 'cosine');
  assert.equal(spec.warmupSteps, 6);
  const w = parseSchedule({ 'lr': '2', 'lr-schedule': 'wsd', 'decay-fraction': '0.5', 'decay-type': 'linear' }, 'r1 sft', 10);
  close(w(4), 2); close(w(5), 2); close(w(6), 1.6); close(w(10), 0);
  const c = parseSchedule({ 'lr': '0.5', 'lr-schedule': 'constant' }, 'r1 sft', 3);
  close(c(0), 0.5); close(c(99), 0.5);
  assert.deepEqual(Object.keys(scheduleFlags).sort(), ['decay-fraction', 'decay-type', 'lr', 'lr-schedule', 'min-lr', 'warmup-ratio', 'warmup-steps']);
});

test('parseSchedule: clear UsageErrors naming the flag', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /^r1 sft: --lr is required$/],
    [{ 'lr': 'fast' }, /r1 sft: --lr must be a number, got 'fast'/],
    [{ 'lr': '1', 'lr-schedule': 'exp' }, /--lr-schedule must be one of constant, linear, cosine, wsd, got 'exp'/],
    [{ 'lr': '1', 'warmup-steps': '2.5' }, /--warmup-steps must be an integer/],
    [{ 'lr': '1', 'warmup-steps': '200' }, /--warmup-steps \(200\) exceeds the total steps \(100\)/],
    [{ 'lr': '1', 'warmup-steps': '2', 'warmup-ratio': '0.1' }, /--warmup-steps or --warmup-ratio, not both/],
    [{ 'lr': '1', 'warmup-ratio': '1.5' }, /--warmup-ratio must be <= 1/],
    [{ 'lr': '1', 'min-lr': '2' }, /--min-lr \(2\) exceeds --lr \(1\)/],
    [{ 'lr': '1', 'lr-schedule': 'constant', 'min-lr': '0.1' }, /--min-lr has no effect/],
    [{ 'lr': '1', 'decay-fraction': '0.2' }, /--decay-fraction only applies to --lr-schedule wsd/],
    [{ 'lr': '1', 'lr-schedule': 'wsd', 'decay-type': 'exp' }, /--decay-type must be linear or cosine, got 'exp'/],
    [{ 'lr': '1', 'lr-schedule': 'wsd', 'warmup-steps': '60', 'decay-fraction': '0.5' }, /warmup \(60\) \+ decay \(50/],
  ];
  for (const [flags, re] of bad) {
    assert.throws(() => parseSchedule(flags, 'r1 sft', 100), (e: unknown) => e instanceof UsageError && re.test((e as Error).message), JSON.stringify(flags));
  }
});
