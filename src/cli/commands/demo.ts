import type { Command } from '../command.js';
import { parseFlags, numberFlag } from '../args.js';
import { runCharDemo } from '../../demo/char-model.js';

const usage = `r1 demo [--steps N] [--batch N] [--seed N] [--json]

Trains a tiny character-level transformer (RMSNorm, rotary causal attention, SwiGLU) on a small
embedded text with the r1ts tensor engine, printing the loss as it falls and the tokens/s, then
greedily continues a prompt.

  --steps N   training steps (default 300)
  --batch N   sequences per step, 64 characters each (default 16)
  --seed N    random seed (default 0)
  --json      print one JSON line at the end instead of progress`;

const demo: Command = {
  name: 'demo',
  summary: 'train a tiny transformer with the tensor engine and show it learning',
  usage,
  async run(argv) {
    const { values } = parseFlags('demo', argv, { steps: { type: 'string' }, batch: { type: 'string' }, seed: { type: 'string' } }, false);
    if (values['help']) { console.log(usage); return 0; }
    const steps = numberFlag('demo', 'steps', values['steps'], { int: true, min: 1, def: 300 });
    const batch = numberFlag('demo', 'batch', values['batch'], { int: true, min: 1, def: 16 });
    const seed = numberFlag('demo', 'seed', values['seed'], { int: true, min: 0, def: 0 });
    const json = values['json'] === true;
    const t0 = Date.now();
    const res = runCharDemo({
      steps, batch, seed,
      onStep: (step, loss, tps) => {
        if (json) return;
        if (step === 1 || step % 25 === 0 || step === steps) {
          const el = (Date.now() - t0) / 1000;
          const eta = (el / step) * (steps - step);
          process.stdout.write(`step ${String(step).padStart(5)}/${steps}  loss ${loss.toFixed(4)}  ${tps.toFixed(0)} tok/s  eta ${eta.toFixed(0)}s\n`);
        }
      },
    });
    if (json) console.log(JSON.stringify(res));
    else {
      console.log(`\n${res.params.toLocaleString()} parameters, backend ${res.backend}: loss ${res.firstLoss.toFixed(3)} -> ${res.finalLoss.toFixed(3)} in ${res.seconds.toFixed(1)} s (${res.tokensPerSecond.toFixed(0)} tokens/s)`);
      console.log(`sample: "To add two numbers${res.sample}"`);
    }
    return 0;
  },
};
export default demo;
