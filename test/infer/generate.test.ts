/** The generation engine: cache == recompute, continuous batching, sampling settings, stops, thinking budget, chat. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { loadModel, buildModel, type CausalLM } from '../../src/models/load.js';
import { parseConfig } from '../../src/models/config.js';
import { DeepseekV3ForCausalLM } from '../../src/models/deepseek-v3.js';
import { ModelRunner } from '../../src/infer/kv-cache.js';
import { GenerationEngine } from '../../src/infer/generate.js';
import { ChatModel } from '../../src/infer/chat.js';
import { splitReasoning, ReasoningSplitter } from '../../src/infer/reasoning.js';
import { StopMatcher } from '../../src/infer/stop.js';
import { trainBpe } from '../../src/io/tokenizer/train.js';
import { Tokenizer } from '../../src/io/tokenizer/tokenizer.js';
import { repoPath } from '../util.js';

/** Greedy decoding by recomputing the whole sequence every step (no cache). */
function greedyNoCache(m: CausalLM, prompt: number[], n: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const next = T.noGrad(() => T.tidy(() => {
      const x = T.tensor([seq], { dtype: 'i32' });
      const lg = m instanceof DeepseekV3ForCausalLM ? m.forward(x, { mtp: false }).logits : m.forward(x).logits;
      const V = m.config.vocabSize;
      const a = lg.toArray() as Float32Array;
      let best = 0;
      for (let j = 1; j < V; j++) if (a[(seq.length - 1) * V + j]! > a[(seq.length - 1) * V + best]!) best = j;
      return best;
    }));
    seq.push(next);
  }
  return seq.slice(prompt.length);
}

for (const fam of ['qwen2-tiny', 'deepseek-v3-tiny']) {
  test(`${fam}: greedy generation with the KV cache equals recomputation without it, batched and alone`, async () => {
    const { model } = loadModel(repoPath('test/fixtures/models', fam), { maxPositions: 64 });
    const prompts = [[1, 2, 3], [7, 8, 9, 10, 11, 12, 13], [40], [5, 5, 5, 5]];
    const want = prompts.map((p) => greedyNoCache(model, p, 12));
    const engine = new GenerationEngine(new ModelRunner(model), null, { maxBatch: 2, prefillChunk: 3 });
    const live = T.memoryStats.liveBytes;
    const got = await engine.generate(prompts.map((p) => ({ prompt: p, maxTokens: 12, sampling: { temperature: 0 } })));
    got.forEach((r, i) => {
      assert.deepEqual(r.tokens, want[i], `sequence ${i}`);
      assert.equal(r.finishReason, 'length');
      assert.equal(r.promptTokens, prompts[i]!.length);
      assert.equal(r.logprobs.length, 12);
      for (const lp of r.logprobs) assert.ok(lp <= 1e-6);
    });
    assert.equal(T.memoryStats.liveBytes, live, 'finished sequences release their caches');
    model.dispose();
  });
}

test('a batched greedy decode on a real-sized vocabulary (rows picked together in one native pass) equals decoding alone', async () => {
  const config = parseConfig({ model_type: 'qwen2', vocab_size: 6000, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, initializer_range: 0.5 }, 'vocab-6000');
  const model = buildModel(config, { seed: 9, maxPositions: 64 });
  const prompts = [[1, 2, 3], [4000, 17, 5999, 3, 3], [42], [7, 7]];
  const reqs = prompts.map((p, i) => ({ prompt: p, maxTokens: 10, sampling: i === 3 ? { temperature: 0.8, seed: 4 } : { temperature: 0 } }));
  const alone: Awaited<ReturnType<GenerationEngine['generate']>> = [];
  for (const r of reqs) alone.push((await new GenerationEngine(new ModelRunner(model), null, { maxBatch: 1 }).generate([r]))[0]!);
  const together = await new GenerationEngine(new ModelRunner(model), null, { maxBatch: 4 }).generate(reqs);
  together.forEach((r, i) => {
    assert.deepEqual(r.tokens, alone[i]!.tokens, `sequence ${i}`);
    r.logprobs.forEach((lp, j) => assert.ok(Math.abs(lp - alone[i]!.logprobs[j]!) < 1e-4, `sequence ${i} token ${j}: ${lp} vs ${alone[i]!.logprobs[j]}`));
  });
  model.dispose();
});

function tinyChatModel(): { tok: Tokenizer; model: CausalLM; chat: ChatModel } {
  const corpus = Array.from({ length: 200 }, (_, i) => `What is ${i} + ${i * 3}? <think>\nadd</think>\n<answer>${i * 4}</answer>`);
  const t = trainBpe(corpus, 300);
  const tok = Tokenizer.fromJSON(t.tokenizerJSON, { config: t.tokenizerConfig });
  const config = parseConfig({ model_type: 'qwen2', vocab_size: t.vocabSize, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, initializer_range: 0.5 }, 'chat-test');
  const model = buildModel(config, { seed: 5, maxPositions: 256 });
  const chat = new ChatModel({ config, model, tokenizer: tok, generationConfig: { temperature: 0.7 }, dir: '<memory>' });
  return { tok, model, chat };
}

test('sampling: a seed reproduces a sequence; sequences in one batch keep their own settings', async () => {
  const { chat, model } = tinyChatModel();
  const e = chat.engine;
  const prompt = chat.encode(chat.render([{ role: 'user', content: 'What is 2 + 2?' }]));
  const a = await e.generate([{ prompt, maxTokens: 20, sampling: { temperature: 1, seed: 11 } }]);
  // The same request again, now batched with others (greedy and another seed): identical tokens.
  const b = await e.generate([
    { prompt: prompt.slice(0, 3), maxTokens: 7, sampling: { temperature: 0 } },
    { prompt, maxTokens: 20, sampling: { temperature: 1, seed: 11 } },
    { prompt, maxTokens: 20, sampling: { temperature: 1, seed: 12 } },
  ]);
  assert.deepEqual(b[1]!.tokens, a[0]!.tokens);
  assert.notDeepEqual(b[2]!.tokens, a[0]!.tokens);
  assert.equal(b[0]!.tokens.length, 7);
  assert.equal(chat.defaults.temperature, 0.7, 'generation_config.json temperature wins over the R1 default');
  assert.equal(chat.defaults.topP, 0.95);
  model.dispose();
});

test('stops: stop token ids, stop strings (text cut before them), max tokens, context', async () => {
  const { chat, tok, model } = tinyChatModel();
  const e = chat.engine;
  const prompt = chat.encode(chat.render([{ role: 'user', content: 'What is 1 + 1?' }]));
  const free = (await e.generate([{ prompt, maxTokens: 30, sampling: { temperature: 0 }, stopTokenIds: [] }]))[0]!;
  assert.equal(free.tokens.length, 30);
  // Stop at the 5th generated token's id: the output ends right before its first occurrence.
  const stopId = free.tokens[4]!;
  const first = free.tokens.indexOf(stopId);
  const s1 = (await e.generate([{ prompt, maxTokens: 30, sampling: { temperature: 0 }, stopTokenIds: [stopId] }]))[0]!;
  assert.deepEqual(s1.tokens, free.tokens.slice(0, first));
  assert.equal(s1.finishReason, 'stop');
  assert.equal(s1.stoppedBy, stopId);
  // A stop string taken from the middle of the free text.
  const text = free.text;
  const mid = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
  const s2 = (await e.generate([{ prompt, maxTokens: 30, sampling: { temperature: 0 }, stopTokenIds: [], stop: [mid] }]))[0]!;
  assert.equal(s2.finishReason, 'stop');
  assert.equal(s2.text, text.slice(0, text.indexOf(mid)));
  assert.throws(() => e.submit({ prompt: Array(300).fill(5) }), /300 tokens but the context holds 256/);
  assert.throws(() => e.submit({ prompt: [1, 2], sampling: { temperature: -1 } }), /temperature/);
  assert.throws(() => e.submit({ prompt: [1, 100000] }), /outside the vocabulary/);
  void tok;
  model.dispose();
});

test('reasoning mode: forced <think>, thinking budget inserts "\\n</think>\\n\\n", output split into reasoning and content', async () => {
  const { chat, model } = tinyChatModel();
  const prompt = chat.render([{ role: 'user', content: 'What is 3 + 4?' }]);
  assert.ok(prompt.endsWith('<｜Assistant｜><think>\n'));
  const deltas = { reasoning: '', content: '' };
  const r = await chat.chat([{ role: 'user', content: 'What is 3 + 4?' }], {
    sampling: { temperature: 0 }, maxTokens: 25, thinkingBudget: 6,
    onReasoning: (t) => { deltas.reasoning += t; }, onContent: (t) => { deltas.content += t; },
  });
  // The first 6 generated tokens are thinking, then the inserted close tag.
  assert.ok(r.text.includes('</think>'), r.text);
  const closeAt = r.text.indexOf('\n</think>\n\n');
  assert.ok(closeAt >= 0);
  assert.equal(r.reasoning, r.text.slice(0, closeAt + 1));
  assert.equal(r.content, r.text.slice(closeAt + '\n</think>\n\n'.length).replace(/^\n+/, ''));
  assert.equal(chat.tokenizer.decode(r.tokens.slice(0, 6)), r.text.slice(0, closeAt), 'the close tag comes right after the 6-token budget');
  assert.equal(deltas.reasoning, r.reasoning);
  assert.equal(deltas.content, r.content);
  assert.deepEqual(splitReasoning(r.text, true), { reasoning: r.reasoning, content: r.content });
  model.dispose();
});

test('ReasoningSplitter and StopMatcher give the same result for every chunking', () => {
  const rng = new T.Rng(1);
  const texts = ['abc</think>\n\nanswer', 'x</thi', '<think>\nhi</think>yo', '</think>', 'no tags at all <', 'a</think>b</think>c', '  <think>q</think>\n\nr'];
  for (const text of texts) for (const start of [true, false]) {
    const whole = splitReasoning(text, start);
    for (let trial = 0; trial < 50; trial++) {
      const s = new ReasoningSplitter({ startInThinking: start });
      let i = 0;
      let r = '', c = '';
      while (i < text.length) { const n = 1 + rng.int(4); const d = s.push(text.slice(i, i + n)); r += d.reasoning; c += d.content; i += n; }
      const d = s.flush();
      assert.deepEqual({ reasoning: r + d.reasoning, content: c + d.content }, whole, `${JSON.stringify(text)} start=${start}`);
    }
  }
  assert.deepEqual(splitReasoning('thought</think>\n\nThe answer', true), { reasoning: 'thought', content: 'The answer' });
  for (const text of ['hello world STOP more', 'no stop here', 'ST', 'aSTOSTOPb']) {
    const idx = text.indexOf('STOP');
    for (let trial = 0; trial < 50; trial++) {
      const m = new StopMatcher(['STOP', 'xyz']);
      let out = '';
      let stopped = false;
      let i = 0;
      while (i < text.length && !stopped) { const n = 1 + rng.int(3); const r = m.push(text.slice(i, i + n)); out += r.emit; stopped = r.stopped; i += n; }
      if (!stopped) out += m.flush();
      assert.equal(out, idx >= 0 ? text.slice(0, idx) : text);
      assert.equal(stopped, idx >= 0);
    }
  }
});
