/** Per-rank timeline of a simulated schedule as SVG, drawn like the DualPipe README figure (one row per rank). */
import type { SimResult } from './simulator.js';

const COLORS: Record<string, string> = { F: '#f4c542', Fr: '#f9e3a0', B: '#6fbf73', Br: '#b9e0bb', W: '#7fa7e0', FB: '#e08a7f' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&#39;');
}

export function timelineSvg(r: SimResult, opts: { unit?: number; title?: string } = {}): string {
  const unit = opts.unit ?? Math.max(4, Math.min(40, 1400 / r.makespan));
  const rowH = 26, left = 70, top = 30;
  const width = left + r.makespan * unit + 20;
  const height = top + r.timeline.length * rowH + 30;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width.toFixed(0)}" height="${height}" font-family="monospace" font-size="10">`,
    `<text x="4" y="16" font-size="12">${esc(opts.title ?? `${r.schedule}: ${r.ranks} ranks, makespan ${r.makespan}, bubble ${r.bubble}`)}</text>`,
  ];
  r.timeline.forEach((ops, rank) => {
    const y = top + rank * rowH;
    out.push(`<text x="4" y="${y + 16}">rank ${rank}</text>`);
    for (const t of ops) {
      const x = left + t.start * unit, w = (t.end - t.start) * unit;
      const op = t.op;
      const dir1 = op.kind === 'FB' ? op.f.dir === 1 : op.dir === 1;
      const color = op.kind === 'FB' ? COLORS['FB']! : op.kind === 'W' ? COLORS['W']! : COLORS[`${op.kind}${dir1 ? 'r' : ''}`]!;
      out.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 4}" fill="${color}" stroke="#333" stroke-width="0.6"><title>${esc(t.label)} [${t.start}, ${t.end})</title></rect>`);
      if (w >= 18) out.push(`<text x="${(x + 2).toFixed(1)}" y="${y + 15}">${esc(t.label)}</text>`);
    }
  });
  out.push(`<text x="4" y="${height - 8}">F forward, B backward (b: input-grad only), W weight-grad, F|B overlapped; ' = reverse direction</text>`);
  out.push('</svg>');
  return out.join('\n');
}
