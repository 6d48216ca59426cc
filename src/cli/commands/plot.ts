import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import type { Command } from '../command.js';
import { numberFlag, parseFlags } from '../args.js';
import { UsageError } from '../../errors.js';
import { readMetrics } from '../../train/metrics.js';
import { renderChart, stackCharts, type Chart, type Point, type SeriesInput } from '../../report/plot.js';

const usage = `r1 plot <metrics.jsonl> [-o chart.png|chart.svg] [--x step] [--y loss,reward,...] [--smooth 0.9]
        [--log-y] [--width 720] [--height 320] [--json]

Draw training curves from a metrics JSONL file (one JSON object per line, as MetricsWriter writes them).

By default one panel is drawn per known metric present, in this order (all aliases found go on one panel):
  loss               loss, train_loss, train/loss, eval_loss, eval/loss, val_loss
  eval accuracy      eval_accuracy, eval/accuracy, eval_acc, accuracy, val_accuracy
  reward             reward, reward_mean, rewards/mean, train/reward, eval_reward
  completion length  completion_length, completion_len, mean_completion_length, completions/mean_length
If none of these is present, every numeric key (other than the x key) gets a panel.
All panels are stacked top to bottom in the ONE output file (the format follows its extension).

  -o, --output F   output file, .png or .svg (default: the metrics file with .png instead of .jsonl)
  --x KEY          x axis key (default: step if present, else the record number)
  --y SPEC         panels to draw: comma-separated; '+' overlays keys in one panel (--y loss+eval_loss,reward)
  --smooth W       EMA weight in [0, 1): draw each series (of >= 20 points) faint, and its EMA bold
  --log-y          logarithmic y axes (points <= 0 are left out)
  --width/--height size of each panel in pixels (default 720 x 320)
  --json           print {"files": [...], "series": [{panel, name, x, points, first, last, min, max}, ...]}

A last line cut short by a crash is ignored; any other malformed line is an error naming the line.`;

interface Panel {
  title: string;
  keys: string[];
}

/** The metrics `r1 plot` looks for by default, in panel order; each panel overlays whichever aliases exist. */
export const KNOWN_PANELS: readonly Panel[] = [
  { title: 'loss', keys: ['loss', 'train_loss', 'train/loss', 'eval_loss', 'eval/loss', 'val_loss'] },
  { title: 'eval accuracy', keys: ['eval_accuracy', 'eval/accuracy', 'eval_acc', 'accuracy', 'val_accuracy'] },
  { title: 'reward', keys: ['reward', 'reward_mean', 'rewards/mean', 'train/reward', 'eval_reward'] },
  { title: 'completion length', keys: ['completion_length', 'completion_len', 'mean_completion_length', 'completions/mean_length'] },
];

/** Keys holding a finite number in at least one record, in first-seen order. */
export function numericKeys(records: readonly Record<string, unknown>[]): string[] {
  const seen = new Set<string>();
  for (const r of records) for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && Number.isFinite(v)) seen.add(k);
  return [...seen];
}

/** The panels to draw: from a --y spec, or the known metrics present, or every numeric key but x. */
export function choosePanels(keys: readonly string[], xKey: string | null, ySpec: string | undefined): Panel[] {
  const available = new Set(keys);
  if (ySpec !== undefined) {
    const panels = ySpec.split(',').map((p) => p.trim()).filter((p) => p !== '').map((p) => ({ title: p.split('+').map((k) => k.trim()).join(' / '), keys: p.split('+').map((k) => k.trim()).filter((k) => k !== '') }));
    if (panels.length === 0) throw new UsageError(`r1 plot: --y names no metric. Numeric keys: ${keys.join(', ')}`);
    for (const p of panels) for (const k of p.keys) {
      if (!available.has(k)) throw new UsageError(`r1 plot: --y: no numeric metric '${k}' in the file. Numeric keys: ${keys.join(', ')}`);
    }
    return panels;
  }
  const known = KNOWN_PANELS.map((p) => ({ title: p.title, keys: p.keys.filter((k) => available.has(k)) })).filter((p) => p.keys.length > 0);
  if (known.length > 0) return known;
  return keys.filter((k) => k !== xKey).map((k) => ({ title: k, keys: [k] }));
}

const cmd: Command = {
  name: 'plot',
  summary: 'draw training curves (loss, accuracy, reward, length) from a metrics JSONL as PNG or SVG',
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags('plot', argv, {
      output: { type: 'string', short: 'o' },
      x: { type: 'string' },
      y: { type: 'string' },
      smooth: { type: 'string' },
      'log-y': { type: 'boolean' },
      width: { type: 'string' },
      height: { type: 'string' },
    });
    if (values['help']) { console.log(usage); return 0; }
    if (positionals.length !== 1) throw new UsageError(`r1 plot: expected one metrics.jsonl path, got ${positionals.length}. See 'r1 plot --help'.`);
    const input = positionals[0]!;
    const output = typeof values['output'] === 'string' ? values['output'] : join(dirname(input), `${basename(input, extname(input))}.png`);
    const ext = extname(output).toLowerCase();
    if (ext !== '.png' && ext !== '.svg') throw new UsageError(`r1 plot: -o ${output}: the output must end in .png or .svg, got '${ext || '(no extension)'}'`);
    const smooth = numberFlag('plot', 'smooth', values['smooth'], { min: 0, max: 0.999, def: 0 });
    const width = numberFlag('plot', 'width', values['width'], { int: true, min: 200, max: 8000, def: 720 });
    const height = numberFlag('plot', 'height', values['height'], { int: true, min: 120, max: 8000, def: 320 });
    if (!existsSync(input)) throw new UsageError(`r1 plot: ${input}: no such file`);
    if (statSync(input).isDirectory()) throw new UsageError(`r1 plot: ${input} is a folder; give the metrics .jsonl file`);

    const records = readMetrics(input, { allowTruncatedTail: true });
    const keys = numericKeys(records);
    if (keys.length === 0) throw new UsageError(`r1 plot: ${input}: no numeric metric in ${records.length} record(s)`);
    let xKey: string | null;
    if (typeof values['x'] === 'string') {
      if (!keys.includes(values['x'])) throw new UsageError(`r1 plot: --x: no numeric key '${values['x']}' in ${input}. Numeric keys: ${keys.join(', ')}`);
      xKey = values['x'];
    } else xKey = keys.includes('step') ? 'step' : null;
    const xName = xKey ?? 'record';
    const panels = choosePanels(keys, xKey, typeof values['y'] === 'string' ? values['y'] : undefined);
    if (panels.length === 0) throw new UsageError(`r1 plot: ${input}: no numeric metric besides the x key '${xName}'`);

    const xOf = (r: Record<string, unknown>, i: number): number => {
      if (xKey === null) return i + 1;
      const v = r[xKey];
      return typeof v === 'number' ? v : Number.NaN;
    };
    const summary: { panel: string; name: string; x: string; points: number; first: number | null; last: number | null; min: number | null; max: number | null; smoothed: boolean }[] = [];
    const charts: Chart[] = panels.map((p) => {
      const series: SeriesInput[] = p.keys.map((k) => {
        // Only records that carry this key are points: eval metrics appear every N steps, not on every line.
        const points: Point[] = [];
        records.forEach((r, i) => {
          const v = r[k];
          if (typeof v === 'number') points.push([xOf(r, i), v]);
        });
        return { name: k, points };
      });
      const chart = renderChart(series, { title: p.title, xLabel: xName, yLabel: p.title, width, height, logY: values['log-y'] === true, smooth });
      for (const s of series) {
        const ys = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([, y]) => y);
        let min = Infinity, max = -Infinity; // a loop, not Math.min(...ys): long runs have 1e5+ points
        for (const y of ys) { if (y < min) min = y; if (y > max) max = y; }
        const drawn = chart.series.filter((d) => d.name === s.name || d.name === `${s.name} (EMA ${smooth})`);
        summary.push({
          panel: p.title, name: s.name, x: xName, points: ys.length,
          first: ys.length ? ys[0]! : null, last: ys.length ? ys[ys.length - 1]! : null,
          min: ys.length ? min : null, max: ys.length ? max : null,
          smoothed: drawn.some((d) => d.smoothed),
        });
      }
      return chart;
    });
    if (summary.every((s) => s.points === 0)) throw new UsageError(`r1 plot: ${input}: no record has both '${xName}' and ${summary.map((s) => `'${s.name}'`).join(', ')} as numbers`);

    const figure = stackCharts(charts);
    const dir = dirname(output);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
    writeFileSync(output, ext === '.png' ? figure.toPng() : figure.toSvg());

    if (values['json']) {
      console.log(JSON.stringify({ files: [output], series: summary }));
    } else {
      console.log(`wrote ${output}: ${figure.width} x ${figure.height}, ${panels.length} panel(s) (${panels.map((p) => p.title).join(', ')}) over ${xName}, ${records.length} records`);
      const f = (v: number | null) => (v === null ? '-' : String(Number(v.toPrecision(4))));
      for (const s of summary) console.log(`  ${s.name.padEnd(24)} ${String(s.points).padStart(7)} points  last ${f(s.last)}  min ${f(s.min)}  max ${f(s.max)}`);
    }
    return 0;
  },
};
export default cmd;
