/**
 * Line charts with no dependencies, for training curves (loss, accuracy, reward, completion length).
 *
 * `renderChart` lays a chart out once as a small display list in pixel coordinates (rectangles, polylines,
 * text); `toSvg` writes that list as SVG elements and `toPng` rasterizes the same list into an RGBA buffer
 * (anti-aliased 2 px lines, a built-in 5x7 bitmap font) and encodes it as a PNG with node:zlib's deflate and
 * our own CRC-32. Both outputs therefore show the same ticks, labels and legend at the same places.
 * `stackCharts` puts several charts under each other in one image (the panels of `r1 plot`).
 */
import { deflateSync } from 'node:zlib';
import { R1Error } from '../errors.js';

export type RGB = readonly [number, number, number];
export type Point = [number, number];

export interface SeriesInput {
  name: string;
  points: Point[];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Pixels; default 640 x 400. */
  width?: number;
  height?: number;
  /** Logarithmic y axis; points with y <= 0 are left out. */
  logY?: boolean;
  /**
   * EMA weight in [0, 1) for noisy curves (TensorBoard's "smoothing"): each series of at least
   * MIN_POINTS_TO_SMOOTH points is drawn faint as measured and bold smoothed. 0 or undefined: as measured.
   */
  smooth?: number;
}

/** Matplotlib's "tab10" colours: distinct, and readable on white. */
export const PALETTE: readonly RGB[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

// ---------------------------------------------------------------------------------------------- ticks

/** The smallest 1, 2 or 5 x 10^k that is >= raw (raw > 0). */
export function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) throw new R1Error(`niceStep: step must be a positive finite number, got ${raw}`);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const m = raw / mag;
  // Tolerate float noise: raw = 0.30000000000000004 should give 0.5, raw = 2.0000000000000004 should give 2.
  const f = m <= 1 + 1e-9 ? 1 : m <= 2 + 1e-9 ? 2 : m <= 5 + 1e-9 ? 5 : 10;
  return f * mag;
}

/** Round away the float noise of k * step (0.1 * 3 = 0.30000000000000004). */
function snap(v: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return decimals > 15 ? v : Number(v.toFixed(Math.min(decimals, 15)));
}

/**
 * Tick values at a 1-2-5 step inside [min, max], about `target` of them (never fewer than 2 for a non-empty
 * range). Returns the ticks and the step.
 */
export function niceTicks(min: number, max: number, target = 5): { ticks: number[]; step: number } {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) throw new R1Error(`niceTicks: bad range [${min}, ${max}]`);
  if (max === min) return { ticks: [min], step: 0 };
  let step = niceStep((max - min) / Math.max(1, target));
  let ticks = ticksIn(min, max, step);
  // Too few ticks inside a narrow range: walk down the 1-2-5 ladder (each step at least halves the gap
  // between ticks, so this ends once the step is below (max - min) / 2).
  while (ticks.length < 2) {
    step = smallerNiceStep(step);
    ticks = ticksIn(min, max, step);
  }
  return { ticks, step };
}

/** The next 1-2-5 step below a nice step: 5 -> 2, 2 -> 1, 1 -> 0.5 (times the power of ten). */
function smallerNiceStep(step: number): number {
  const mag = 10 ** Math.floor(Math.log10(step) + 1e-9);
  const m = Math.round(step / mag);
  return m >= 5 ? 2 * mag : m >= 2 ? mag : mag / 2;
}

function ticksIn(min: number, max: number, step: number): number[] {
  const out: number[] = [];
  const eps = step * 1e-9;
  for (let k = Math.ceil((min - eps) / step); k * step <= max + eps; k++) out.push(snap(k * step, step));
  return out;
}

/** [min, max] widened outwards to multiples of the nice step (the y axis of a linear chart). */
export function niceRange(min: number, max: number, target = 5): [number, number] {
  if (max === min) {
    const d = min === 0 ? 1 : Math.abs(min) * 0.1;
    return niceRange(min - d, max + d, target);
  }
  const step = niceStep((max - min) / Math.max(1, target));
  return [snap(Math.floor(min / step + 1e-9) * step, step), snap(Math.ceil(max / step - 1e-9) * step, step)];
}

/**
 * Ticks for a log axis over [min, max] (both > 0): powers of ten when the range covers two or more of them
 * (every k-th one for wide ranges), else 1-2-5 mantissas, else linear nice ticks.
 */
export function logTicks(min: number, max: number, target = 5): number[] {
  if (!(min > 0) || !(max >= min)) throw new R1Error(`logTicks: range must be positive, got [${min}, ${max}]`);
  const lo = Math.floor(Math.log10(min) + 1e-9), hi = Math.ceil(Math.log10(max) - 1e-9);
  const inRange = (v: number) => v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9);
  const powers: number[] = [];
  const stride = Math.max(1, Math.ceil((hi - lo) / target));
  for (let e = lo; e <= hi; e++) if ((e - lo) % stride === 0 && inRange(10 ** e)) powers.push(Number(`1e${e}`));
  if (powers.length >= 2) return powers;
  const mant: number[] = [];
  for (let e = lo - 1; e <= hi; e++) for (const m of [1, 2, 5]) { const v = Number(`${m}e${e}`); if (inRange(v)) mant.push(v); }
  if (mant.length >= 3) return mant;
  return niceTicks(min, max, target).ticks;
}

/** A tick label: as few digits as the step needs; k/M/G for big values, exponent form for tiny ones. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (step === 0) return compactNumber(v);
  if (a >= 1e4 && step >= 1000) {
    for (const [unit, s] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) {
      if (a >= unit) {
        const decimals = Math.max(0, -Math.floor(Math.log10(step / unit) + 1e-9));
        return `${Number((v / unit).toFixed(decimals))}${s}`;
      }
    }
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (decimals > 4 || a >= 1e9) return compactNumber(v);
  return v.toFixed(decimals);
}

/** 3 significant digits; exponent form ("1e-5", "2.5e6") outside [1e-3, 1e6). */
export function compactNumber(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e6) return String(Number(v.toPrecision(3)));
  const [m, e] = v.toExponential(2).split('e') as [string, string];
  return `${Number(m)}e${Number(e)}`;
}

// ------------------------------------------------------------------------------------------- smoothing

/**
 * Exponential moving average with weight w (the fraction of the running value kept each step), debiased
 * like Adam's moments / TensorBoard so the first points are not pulled toward 0. Non-finite y are skipped.
 */
export function ema(points: readonly Point[], weight: number): Point[] {
  if (!(weight >= 0 && weight < 1)) throw new R1Error(`ema: weight must be in [0, 1), got ${weight}`);
  const out: Point[] = [];
  let acc = 0, n = 0;
  for (const [x, y] of points) {
    if (!Number.isFinite(y) || !Number.isFinite(x)) continue;
    acc = acc * weight + (1 - weight) * y;
    n++;
    out.push([x, weight === 0 ? y : acc / (1 - weight ** n)]);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ font

/**
 * 5x7 bitmap font for ASCII 32..126 (drawn for this file). Seven characters per glyph, one per row, top to
 * bottom; each is a base-32 digit whose 5 bits are the row's pixels, left pixel in the high bit.
 */
const FONT_DATA =
  '00000004444404aaa0000aavavaa4fke5u4op248j3cik8lid444000024888428422248' +
  '04lel40044v4400000c48000v00000000cc01248g0ehjlphe4c4444eeh1248vv2421he' +
  '26aiv22vgu11he68guhhev124888ehhehheehhf12c0cc0cc00cc0c48248g84200v0v00' +
  '8421248eh12404eh1dlleehhvhhhuhhuhhuehggghesihhhisvgguggvvggugggehgnhhf' +
  'hhhvhhhe44444e72222ichikokihggggggvhrllhhhhhpljhhehhhhheuhhugggehhhlid' +
  'uhhukihfgge11uv444444hhhhhhehhhhha4hhhlllahha4ahhhhha444v1248gve88888e' +
  '0g84210e22222e4ah0000000000v842000000e1fhfggmphhu00egghe11djhhf00ehvge' +
  '698s8880fhhf1eggmphhh40c444e20622icggikokic44444e00qllhh00mphhh00ehhhe' +
  '00uhugg00djf1100mpggg00ege1u88s889600hhhjd00hhha400hhlla00ha4ah00hhf1e' +
  '00v248v244844244444448442448008l200';
export const GLYPH_W = 5, GLYPH_H = 7, GLYPH_ADVANCE = 6;

/** The 7 row bitmasks of a character ('?' for anything outside ASCII 32..126). */
export function glyph(ch: string): number[] {
  let c = ch.charCodeAt(0);
  if (!(c >= 32 && c <= 126)) c = 63;
  const base = (c - 32) * GLYPH_H;
  const rows: number[] = [];
  for (let r = 0; r < GLYPH_H; r++) rows.push(parseInt(FONT_DATA[base + r]!, 32));
  return rows;
}

/** Width in pixels of a string drawn with the bitmap font at a scale. */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

// ---------------------------------------------------------------------------------------- display list

export interface ClipRect { x: number; y: number; w: number; h: number }
/** The display list a Chart is drawn from (pixel coordinates). */
export type ChartPrim =
  | { kind: 'rect'; x: number; y: number; w: number; h: number; color: RGB; alpha: number }
  | { kind: 'line'; points: Point[]; color: RGB; width: number; alpha: number; clip: ClipRect }
  /** (x, y): the anchor point of the top edge of the text box; vertical text reads bottom to top, centred on (x, y). */
  | { kind: 'text'; x: number; y: number; text: string; scale: number; color: RGB; anchor: 'start' | 'middle' | 'end'; vertical: boolean };

/** Where one chart panel's data lands in the image. */
export interface PanelGeometry {
  /** Plot area in image pixels. */
  x0: number; y0: number; x1: number; y1: number;
  xRange: [number, number];
  /** In data units (not log10), even for a log axis. */
  yRange: [number, number];
  logY: boolean;
}

/** One drawn series, as reported by `Chart.series`. */
export interface DrawnSeries {
  name: string;
  color: RGB;
  /** Finite points drawn (after dropping non-finite values, and y <= 0 on a log axis). */
  points: number;
  smoothed: boolean;
  panel: number;
}

export class Chart {
  constructor(
    readonly width: number,
    readonly height: number,
    /** @internal */ readonly prims: readonly ChartPrim[],
    readonly panels: readonly PanelGeometry[],
    readonly series: readonly DrawnSeries[],
  ) {}

  /** Image pixel of a data point in a panel (fractional; the line passes through it). */
  pixelOf(x: number, y: number, panel = 0): Point {
    const g = this.panels[panel];
    if (!g) throw new R1Error(`Chart.pixelOf: no panel ${panel} (chart has ${this.panels.length})`);
    return project(g, x, y);
  }

  toSvg(): string {
    const out: string[] = [
      `<?xml version="1.0" encoding="UTF-8"?>`,
      `<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}" viewBox="0 0 ${this.width} ${this.height}">`,
    ];
    const clips = new Map<string, string>();
    const defs: string[] = [];
    for (const p of this.prims) {
      if (p.kind !== 'line') continue;
      const key = `${p.clip.x},${p.clip.y},${p.clip.w},${p.clip.h}`;
      if (!clips.has(key)) {
        const id = `clip${clips.size}`;
        clips.set(key, id);
        defs.push(`<clipPath id="${id}"><rect x="${p.clip.x}" y="${p.clip.y}" width="${p.clip.w}" height="${p.clip.h}"/></clipPath>`);
      }
    }
    if (defs.length) out.push(`<defs>${defs.join('')}</defs>`);
    out.push(`<rect x="0" y="0" width="${this.width}" height="${this.height}" fill="#ffffff"/>`);
    for (const p of this.prims) {
      if (p.kind === 'rect') {
        out.push(`<rect x="${num(p.x)}" y="${num(p.y)}" width="${num(p.w)}" height="${num(p.h)}" fill="${hex(p.color)}"${p.alpha < 1 ? ` fill-opacity="${num(p.alpha)}"` : ''}/>`);
      } else if (p.kind === 'line') {
        const clip = clips.get(`${p.clip.x},${p.clip.y},${p.clip.w},${p.clip.h}`)!;
        const pts = p.points.map(([x, y]) => `${num(x)},${num(y)}`).join(' ');
        out.push(`<polyline fill="none" stroke="${hex(p.color)}" stroke-width="${num(p.width)}"${p.alpha < 1 ? ` stroke-opacity="${num(p.alpha)}"` : ''} stroke-linejoin="round" stroke-linecap="round" clip-path="url(#${clip})" points="${pts}"/>`);
      } else {
        // The bitmap glyphs are 7 px tall per scale unit; a 9 px monospace font has about that cap height.
        const size = 9 * p.scale;
        const anchor = p.vertical ? 'middle' : p.anchor;
        const attrs = `font-family="monospace" font-size="${size}" fill="${hex(p.color)}" text-anchor="${anchor}"`;
        if (p.vertical) {
          const bx = p.x + GLYPH_H * p.scale; // the baseline: rotated glyphs extend left of it
          out.push(`<text x="${num(bx)}" y="${num(p.y)}" ${attrs} transform="rotate(-90 ${num(bx)} ${num(p.y)})">${escapeXml(p.text)}</text>`);
        } else {
          out.push(`<text x="${num(p.x)}" y="${num(p.y + GLYPH_H * p.scale)}" ${attrs}>${escapeXml(p.text)}</text>`);
        }
      }
    }
    out.push('</svg>');
    return `${out.join('\n')}\n`;
  }

  /** Rasterize to RGBA (row-major, 4 bytes per pixel, white background). */
  toRgba(): Uint8Array {
    const r = new Raster(this.width, this.height);
    for (const p of this.prims) {
      if (p.kind === 'rect') r.fillRect(p.x, p.y, p.w, p.h, p.color, p.alpha);
      else if (p.kind === 'line') r.strokePolyline(p.points, p.color, p.width, p.alpha, p.clip);
      else r.drawText(p.text, p.x, p.y, p.scale, p.color, p.anchor, p.vertical);
    }
    return r.data;
  }

  toPng(): Buffer {
    return encodePng(this.width, this.height, this.toRgba());
  }
}

function num(v: number): string {
  return String(Math.round(v * 100) / 100);
}
function hex(c: RGB): string {
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}
function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function project(g: PanelGeometry, x: number, y: number): Point {
  const [xa, xb] = g.xRange;
  const t = (v: number) => (g.logY ? Math.log10(v) : v);
  const ya = t(g.yRange[0]), yb = t(g.yRange[1]);
  return [g.x0 + ((x - xa) / (xb - xa)) * (g.x1 - g.x0), g.y1 - ((t(y) - ya) / (yb - ya)) * (g.y1 - g.y0)];
}

// --------------------------------------------------------------------------------------------- layout

/** Series with fewer points than this are drawn as measured even when smoothing is on. */
export const MIN_POINTS_TO_SMOOTH = 20;
const BLACK: RGB = [0, 0, 0];
const AXIS: RGB = [60, 60, 60];
const GRID: RGB = [226, 226, 226];
const TEXT: RGB = [30, 30, 30];

/** Lay out a line chart of one or more series. Throws on bad sizes; an empty chart draws axes over [0, 1]. */
export function renderChart(series: readonly SeriesInput[], opts: ChartOptions): Chart {
  const W = Math.round(opts.width ?? 640), H = Math.round(opts.height ?? 400);
  if (!(W >= 120 && W <= 20000) || !(H >= 80 && H <= 20000)) throw new R1Error(`renderChart: width/height must be in [120, 20000] x [80, 20000], got ${W} x ${H}`);
  const smooth = opts.smooth ?? 0;
  if (!(smooth >= 0 && smooth < 1)) throw new R1Error(`renderChart: smooth must be in [0, 1), got ${smooth}`);
  const logY = opts.logY === true;

  // Finite points only; a log axis also drops y <= 0. Non-finite values break a line into runs.
  const keep = (p: Point) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logY || p[1] > 0);
  const cleaned = series.map((s) => ({ name: s.name, raw: s.points, pts: s.points.filter(keep) }));
  // A sparse series (an eval every N steps) is not smoothed: an EMA over a few points only adds lag.
  const smoothed = smooth > 0 ? cleaned.map((s) => (s.pts.length >= MIN_POINTS_TO_SMOOTH ? ema(s.pts, smooth) : null)) : null;

  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (const s of cleaned) for (const [x, y] of s.pts) {
    if (x < xmin) xmin = x; if (x > xmax) xmax = x;
    if (y < ymin) ymin = y; if (y > ymax) ymax = y;
  }
  if (xmin > xmax) { xmin = 0; xmax = 1; }
  if (ymin > ymax) { ymin = logY ? 1 : 0; ymax = logY ? 10 : 1; }
  if (xmin === xmax) { xmin -= 1; xmax += 1; }

  // y range and ticks.
  let yRange: [number, number];
  let yTicks: number[];
  let yStep: number;
  const plotHGuess = H - 70;
  const yTarget = Math.max(2, Math.min(8, Math.round(plotHGuess / 50)));
  if (logY) {
    if (ymin === ymax) { ymin /= 2; ymax *= 2; }
    const la = Math.log10(ymin), lb = Math.log10(ymax), pad = (lb - la) * 0.05;
    yRange = [10 ** (la - pad), 10 ** (lb + pad)];
    yTicks = logTicks(yRange[0], yRange[1], yTarget);
    yStep = 0;
  } else {
    yRange = niceRange(ymin, ymax, yTarget);
    const t = niceTicks(yRange[0], yRange[1], yTarget);
    yTicks = t.ticks;
    yStep = t.step;
  }
  const yLabels = yTicks.map((v) => (logY ? compactNumber(v) : formatTick(v, yStep)));

  const titleScale = 2;
  const top = 8 + GLYPH_H * titleScale + 10;
  const yLabelW = Math.max(...yLabels.map((s) => textWidth(s)), 6);
  const left = 8 + GLYPH_H + 8 + yLabelW + 8;
  const bottom = 4 + 4 + GLYPH_H + 8 + GLYPH_H + 8;
  const xTarget = Math.max(2, Math.min(10, Math.round((W - left - 20) / 90)));
  const xt = niceTicks(xmin, xmax, xTarget);
  const xLabels = xt.ticks.map((v) => formatTick(v, xt.step));
  const lastXLabel = xLabels.length ? textWidth(xLabels[xLabels.length - 1]!) : 0;
  const right = Math.max(16, Math.ceil(lastXLabel / 2) + 6);
  const x0 = left, y0 = top, x1 = W - right, y1 = H - bottom;
  if (x1 - x0 < 20 || y1 - y0 < 20) throw new R1Error(`renderChart: ${W} x ${H} leaves no room for the plot area`);
  const geo: PanelGeometry = { x0, y0, x1, y1, xRange: [xmin, xmax], yRange, logY };

  const prims: ChartPrim[] = [];
  const rect = (x: number, y: number, w: number, h: number, color: RGB, alpha = 1) => prims.push({ kind: 'rect', x, y, w, h, color, alpha });
  const text = (x: number, y: number, s: string, color: RGB, anchor: 'start' | 'middle' | 'end', scale = 1, vertical = false) =>
    prims.push({ kind: 'text', x, y, text: s, scale, color, anchor, vertical });

  // Grid and ticks (pixel-aligned 1 px rectangles so the raster is crisp).
  yTicks.forEach((v, i) => {
    const py = Math.round(project(geo, xmin, v)[1]);
    if (py < y0 - 0.5 || py > y1 + 0.5) return;
    rect(x0, py, x1 - x0, 1, GRID);
    rect(x0 - 4, py, 4, 1, AXIS);
    text(x0 - 7, py - 3, yLabels[i]!, TEXT, 'end');
  });
  xt.ticks.forEach((v, i) => {
    const px = Math.round(project(geo, v, yRange[0])[0]);
    if (px < x0 - 0.5 || px > x1 + 0.5) return;
    rect(px, y0, 1, y1 - y0, GRID);
    rect(px, y1, 1, 4, AXIS);
    text(px, y1 + 8, xLabels[i]!, TEXT, 'middle');
  });
  // Axes: left and bottom.
  rect(x0 - 1, y0, 1, y1 - y0 + 1, AXIS);
  rect(x0 - 1, y1, x1 - x0 + 1, 1, AXIS);

  // Series.
  const clip: ClipRect = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 + 1 };
  const drawn: DrawnSeries[] = [];
  const addLine = (pts: readonly Point[], color: RGB, width: number, alpha: number) => {
    let run: Point[] = [];
    const flush = () => {
      if (run.length) prims.push({ kind: 'line', points: run, color, width, alpha, clip });
      run = [];
    };
    for (const p of pts) {
      if (keep(p)) run.push(project(geo, p[0], p[1]));
      else flush();
    }
    flush();
  };
  cleaned.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const sm = smoothed?.[i];
    if (sm) {
      addLine(s.raw, color, 1, 0.3);
      addLine(sm, color, 2, 1);
      drawn.push({ name: s.name, color, points: s.pts.length, smoothed: false, panel: 0 });
      drawn.push({ name: `${s.name} (EMA ${smooth})`, color, points: sm.length, smoothed: true, panel: 0 });
    } else {
      addLine(s.raw, color, 2, 1);
      drawn.push({ name: s.name, color, points: s.pts.length, smoothed: false, panel: 0 });
    }
  });

  // Legend: top-right inside the plot area, on a white box, when there is more than one series or smoothing.
  if (cleaned.length > 1 || smoothed?.some((x) => x !== null)) {
    const names = cleaned.map((s, i) => (smoothed?.[i] ? `${s.name} (EMA ${smooth})` : s.name));
    const lw = 16 + 4 + Math.max(...names.map((n) => textWidth(n))) + 12;
    const lh = names.length * 12 + 8;
    const lx = x1 - lw - 6, ly = y0 + 6;
    if (lx > x0) {
      rect(lx, ly, lw, lh, [255, 255, 255], 0.85);
      rect(lx, ly, lw, 1, GRID); rect(lx, ly + lh - 1, lw, 1, GRID);
      rect(lx, ly, 1, lh, GRID); rect(lx + lw - 1, ly, 1, lh, GRID);
      names.forEach((n, i) => {
        const cy = ly + 4 + i * 12;
        rect(lx + 6, cy + 2, 16, 3, PALETTE[i % PALETTE.length]!);
        text(lx + 6 + 16 + 4, cy, n, TEXT, 'start');
      });
    }
  }

  // Title and axis labels.
  text((x0 + x1) / 2, 8, opts.title, BLACK, 'middle', titleScale);
  text((x0 + x1) / 2, H - 8 - GLYPH_H, opts.xLabel, TEXT, 'middle');
  text(8, (y0 + y1) / 2, opts.yLabel, TEXT, 'middle', 1, true);

  return new Chart(W, H, prims, [geo], drawn);
}

/** Stack charts vertically into one image (panels), left-aligned, width of the widest. */
export function stackCharts(charts: readonly Chart[]): Chart {
  if (charts.length === 0) throw new R1Error('stackCharts: no charts');
  if (charts.length === 1) return charts[0]!;
  const W = Math.max(...charts.map((c) => c.width));
  const prims: ChartPrim[] = [];
  const panels: PanelGeometry[] = [];
  const series: DrawnSeries[] = [];
  let dy = 0;
  for (const c of charts) {
    for (const p of c.prims) {
      if (p.kind === 'line') prims.push({ ...p, points: p.points.map(([x, y]) => [x, y + dy] as Point), clip: { ...p.clip, y: p.clip.y + dy } });
      else prims.push({ ...p, y: p.y + dy });
    }
    for (const g of c.panels) panels.push({ ...g, y0: g.y0 + dy, y1: g.y1 + dy });
    for (const s of c.series) series.push({ ...s, panel: s.panel + panels.length - c.panels.length });
    dy += c.height;
  }
  return new Chart(W, dy, prims, panels, series);
}

// --------------------------------------------------------------------------------------------- raster

/** An RGBA canvas (white, opaque) with the few drawing operations charts need. */
export class Raster {
  readonly data: Uint8Array;
  private cover: Float32Array | null = null;

  constructor(readonly width: number, readonly height: number) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new R1Error(`Raster: bad size ${width} x ${height}`);
    this.data = new Uint8Array(width * height * 4).fill(255);
  }

  /** Source-over blend of a colour at coverage/alpha a into one pixel. */
  blend(x: number, y: number, c: RGB, a: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || a <= 0) return;
    const i = (y * this.width + x) * 4, d = this.data;
    const k = Math.min(1, a);
    d[i] = Math.round(d[i]! + (c[0] - d[i]!) * k);
    d[i + 1] = Math.round(d[i + 1]! + (c[1] - d[i + 1]!) * k);
    d[i + 2] = Math.round(d[i + 2]! + (c[2] - d[i + 2]!) * k);
    d[i + 3] = 255;
  }

  /** Fill a rectangle; fractional edges are covered partially. */
  fillRect(x: number, y: number, w: number, h: number, c: RGB, alpha = 1): void {
    const xa = Math.max(0, Math.floor(x)), xb = Math.min(this.width, Math.ceil(x + w));
    const ya = Math.max(0, Math.floor(y)), yb = Math.min(this.height, Math.ceil(y + h));
    for (let py = ya; py < yb; py++) {
      const cy = Math.min(py + 1, y + h) - Math.max(py, y);
      for (let px = xa; px < xb; px++) {
        const cx = Math.min(px + 1, x + w) - Math.max(px, x);
        this.blend(px, py, c, cx * cy * alpha);
      }
    }
  }

  /**
   * An anti-aliased polyline: each pixel's coverage is 1 within width/2 of the path and falls off linearly over
   * the next pixel. Coverage is the maximum over the segments (not a sum), so joints are not darker, and it is
   * composited once per line.
   */
  strokePolyline(points: readonly Point[], c: RGB, width: number, alpha: number, clip?: ClipRect): void {
    if (points.length === 0) return;
    const W = this.width, H = this.height;
    if (!this.cover) this.cover = new Float32Array(W * H);
    const cov = this.cover;
    const cx0 = Math.max(0, Math.floor(clip ? clip.x : 0)), cx1 = Math.min(W, Math.ceil(clip ? clip.x + clip.w : W));
    const cy0 = Math.max(0, Math.floor(clip ? clip.y : 0)), cy1 = Math.min(H, Math.ceil(clip ? clip.y + clip.h : H));
    const hw = width / 2, reach = hw + 1;
    let bx0 = W, bx1 = -1, by0 = H, by1 = -1;
    const segs = points.length === 1 ? 1 : points.length - 1;
    for (let s = 0; s < segs; s++) {
      const [ax, ay] = points[s]!;
      const [qx, qy] = points[Math.min(s + 1, points.length - 1)]!;
      const xa = Math.max(cx0, Math.floor(Math.min(ax, qx) - reach)), xb = Math.min(cx1 - 1, Math.ceil(Math.max(ax, qx) + reach));
      const ya = Math.max(cy0, Math.floor(Math.min(ay, qy) - reach)), yb = Math.min(cy1 - 1, Math.ceil(Math.max(ay, qy) + reach));
      if (xa > xb || ya > yb) continue;
      const dx = qx - ax, dy = qy - ay, len2 = dx * dx + dy * dy;
      for (let py = ya; py <= yb; py++) {
        const pcy = py + 0.5;
        for (let px = xa; px <= xb; px++) {
          const pcx = px + 0.5;
          let t = len2 > 0 ? ((pcx - ax) * dx + (pcy - ay) * dy) / len2 : 0;
          t = t < 0 ? 0 : t > 1 ? 1 : t;
          const ex = ax + t * dx - pcx, ey = ay + t * dy - pcy;
          const d = Math.sqrt(ex * ex + ey * ey);
          const a = hw + 0.5 - d;
          if (a <= 0) continue;
          const i = py * W + px;
          const v = a > 1 ? 1 : a;
          if (v > cov[i]!) cov[i] = v;
        }
      }
      if (xa < bx0) bx0 = xa; if (xb > bx1) bx1 = xb;
      if (ya < by0) by0 = ya; if (yb > by1) by1 = yb;
    }
    for (let py = by0; py <= by1; py++) {
      for (let px = bx0; px <= bx1; px++) {
        const i = py * W + px;
        const v = cov[i]!;
        if (v > 0) {
          this.blend(px, py, c, v * alpha);
          cov[i] = 0;
        }
      }
    }
  }

  /** Bitmap text; (x, y) is the anchor on the top edge, or the centre for vertical (bottom-to-top) text. */
  drawText(text: string, x: number, y: number, scale: number, c: RGB, anchor: 'start' | 'middle' | 'end' = 'start', vertical = false): void {
    const len = textWidth(text, scale);
    const s = scale;
    if (vertical) {
      // Rotated 90 degrees counter-clockwise: glyph rows run left to right, the advance goes up.
      const left = Math.round(x), bottom = Math.round(y + len / 2);
      for (let k = 0; k < text.length; k++) {
        const rows = glyph(text[k]!);
        for (let gy = 0; gy < GLYPH_H; gy++) for (let gx = 0; gx < GLYPH_W; gx++) {
          if ((rows[gy]! >> (GLYPH_W - 1 - gx)) & 1) this.fillRect(left + gy * s, bottom - (k * GLYPH_ADVANCE + gx + 1) * s, s, s, c);
        }
      }
      return;
    }
    const start = Math.round(anchor === 'start' ? x : anchor === 'middle' ? x - len / 2 : x - len);
    const top = Math.round(y);
    for (let k = 0; k < text.length; k++) {
      const rows = glyph(text[k]!);
      for (let gy = 0; gy < GLYPH_H; gy++) for (let gx = 0; gx < GLYPH_W; gx++) {
        if ((rows[gy]! >> (GLYPH_W - 1 - gx)) & 1) this.fillRect(start + (k * GLYPH_ADVANCE + gx) * s, top + gy * s, s, s, c);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------- PNG

let crcTable: Uint32Array | null = null;

/** CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320) as PNG chunks use it. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  out.set(body, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}

/** Encode 8-bit RGBA pixels as a PNG (colour type 6, filter 0 "None" on every row, one IDAT). */
export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  if (rgba.length !== width * height * 4) throw new R1Error(`encodePng: expected ${width * height * 4} bytes for ${width} x ${height} RGBA, got ${rgba.length}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0; // deflate, adaptive filtering, no interlace
  const stride = width * 4;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}
