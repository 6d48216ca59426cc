/** The BPE trainer: its tokenizer.json loads in @lenml/tokenizers and in ours, and both encode identically. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenizerLoader } from '@lenml/tokenizers';
import { Tokenizer, trainBpe } from '../../src/io/tokenizer/index.js';
import { chatTemplateFromConfig } from '../../src/io/chat-template.js';
import { ConfigError } from '../../src/errors.js';

function corpus(): string {
  const lines = [
    'The model thinks step by step before it answers the question.',
    'def add(a, b):\n    return a + b\n',
    '模型在回答问题之前会一步一步地思考。',
    '<think>\nFirst add the tens, then the units.\n</think>\n\nThe answer is 42.',
    'Numbers like 12345 and 3.14159 appear often; so do emoji 😀 and tabs\tand  spaces.',
    'Привет, мир! مرحبا بالعالم. 日本語のテキスト。',
  ];
  let s = '';
  for (let i = 0; i < 300; i++) s += lines[i % lines.length] + (i % 7 === 0 ? ` <｜end▁of▁sentence｜>${i}\n` : '\n');
  return s;
}

test('trainBpe: HF schema, loads in @lenml/tokenizers and in ours, identical ids', () => {
  const text = corpus();
  const t = trainBpe(text, 450);
  assert.equal(t.vocabSize, 450);
  const json = t.tokenizerJSON as { model: { vocab: Record<string, number>; merges: [string, string][] }; added_tokens: { content: string; special: boolean }[] };
  assert.equal(Object.keys(json.model.vocab).length, 450);
  assert.ok(json.model.merges.length >= 450 - 262);
  assert.deepEqual(json.added_tokens.map((a) => [a.content, a.special]), [
    ['<｜begin▁of▁sentence｜>', true], ['<｜end▁of▁sentence｜>', true], ['<｜User｜>', true], ['<｜Assistant｜>', true], ['<think>', false], ['</think>', false],
  ]);
  // Round-trip through JSON text, as a file would.
  const tjson = JSON.parse(JSON.stringify(t.tokenizerJSON));
  const tcfg = JSON.parse(JSON.stringify(t.tokenizerConfig));
  const ours = Tokenizer.fromJSON(tjson);
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: tjson, tokenizerConfig: tcfg }) as unknown as { encode(s: string, o?: { add_special_tokens?: boolean }): number[] };
  const heldOut = [
    'The answer thinks before the model.', '<think>\nadd 7 and 5\n</think>\n\n12', 'Unseen words: zebra, quixotic, 9876543210!',
    '一步一步地回答', '😀😀 \t\t  x', '<｜User｜>hi<｜Assistant｜>', text.slice(0, 2000),
  ];
  for (const s of heldOut) {
    const ids = ours.encode(s, { addSpecialTokens: false });
    assert.deepEqual(ids, ref.encode(s, { add_special_tokens: false }), JSON.stringify(s));
    assert.equal(ours.decode(ids), s);
  }
  // It learned something: far fewer tokens than bytes on text like the corpus.
  const sample = text.slice(0, 5000);
  assert.ok(ours.encode(sample).length < Buffer.byteLength(sample) * 0.4);
  // Special and added tokens are single ids; <think> survives skipSpecialTokens, BOS does not.
  const withCfg = Tokenizer.fromJSON(tjson, { config: tcfg });
  const ids = withCfg.encode('<think>x</think>');
  assert.equal(ids[0], 0);
  assert.equal(ids[1], withCfg.tokenToId('<think>'));
  assert.equal(withCfg.decode(ids, { skipSpecialTokens: true }), '<think>x</think>');
  // The chat template renders R1-style.
  const prompt = chatTemplateFromConfig(withCfg.config!).render([
    { role: 'user', content: 'q' }, { role: 'assistant', content: '<think>r</think>a' }, { role: 'user', content: 'q2' },
  ], { addGenerationPrompt: true });
  assert.equal(prompt, '<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜>a<｜end▁of▁sentence｜><｜User｜>q2<｜Assistant｜><think>\n');
});

test('trainBpe: merges the most frequent pair first, and validates its arguments', () => {
  // Pairs: "ab" once as a word, " ab" twice -> (a,b) 3 times, (Ġ,a) twice.
  const t = trainBpe('ab ab ab cd', 6 + 256 + 2, { minFrequency: 1 });
  const merges = (t.tokenizerJSON as { model: { merges: [string, string][] } }).model.merges;
  assert.deepEqual(merges[0], ['a', 'b']);
  assert.deepEqual(merges[1], ['Ġ', 'ab']);
  // minFrequency stops merging pairs seen once.
  assert.equal(trainBpe('ab ab ab cd', 400, { minFrequency: 2 }).merges, 2);
  assert.throws(() => trainBpe('x', 100), ConfigError);
  assert.throws(() => trainBpe('x', 300, { specialTokens: ['<a>', '<a>'] }), ConfigError);
  assert.throws(() => trainBpe('x', 300, { minFrequency: 0 }), ConfigError);
});

test('trainBpe splitDigits: numbers stay one digit per token, and the saved pre-tokenizer agrees', async () => {
  const { trainBpe } = await import('../../src/io/tokenizer/train.js');
  const { Tokenizer } = await import('../../src/io/tokenizer/tokenizer.js');
  const corpus = Array.from({ length: 300 }, (_, i) => `What is ${(i * 37) % 1000} + ${(i * 91) % 1000}? It is ${((i * 37) % 1000) + ((i * 91) % 1000)}.`);
  const t = trainBpe(corpus, 320, { splitDigits: true });
  const tok = Tokenizer.fromJSON(t.tokenizerJSON, { config: t.tokenizerConfig });
  const text = 'What is 123 + 4567? It is 4690.';
  const ids = tok.encode(text, { addSpecialTokens: false });
  const pieces = ids.map((i) => tok.decode([i]));
  for (const p of pieces) if (/\d/.test(p)) assert.match(p, /^\d$/, `piece ${JSON.stringify(p)}`);
  assert.equal(tok.decode(ids), text);
  // Without the option, BPE learns multi-digit tokens from the same corpus.
  const plain = trainBpe(corpus, 320);
  const tok2 = Tokenizer.fromJSON(plain.tokenizerJSON, { config: plain.tokenizerConfig });
  assert.ok(tok2.encode(text, { addSpecialTokens: false }).map((i) => tok2.decode([i])).some((p) => /\d\d/.test(p)));
});
