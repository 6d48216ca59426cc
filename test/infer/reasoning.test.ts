/** The reasoning/content splitter: hand cases, then every random chunking of random tagged text equals the whole-text split. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReasoningSplitter, splitReasoning } from '../../src/infer/reasoning.js';
import { R1Error } from '../../src/errors.js';
import { Rng } from '../../src/tensor/random.js';

function streamed(chunks: string[], startInThinking: boolean): { reasoning: string; content: string; deltas: Array<{ reasoning: string; content: string }> } {
  const s = new ReasoningSplitter({ startInThinking });
  const deltas = chunks.map((c) => s.push(c));
  deltas.push(s.flush());
  const r = deltas.map((d) => d.reasoning).join('');
  const c = deltas.map((d) => d.content).join('');
  assert.equal(r, s.reasoning);
  assert.equal(c, s.content);
  return { reasoning: r, content: c, deltas };
}

test('splitReasoning: R1 conventions by hand', () => {
  // Forced "<think>\n" in the prompt: the text starts inside the block.
  assert.deepEqual(splitReasoning('Let me add 2 and 3.\n</think>\n\nThe answer is 5.', true), { reasoning: 'Let me add 2 and 3.\n', content: 'The answer is 5.' });
  // The model opens the block itself (leading whitespace and newlines after the tag dropped).
  assert.deepEqual(splitReasoning(' \n<think>\n\nhmm</think>\n\n\nok\n', false), { reasoning: 'hmm', content: 'ok\n' });
  // No block at all: everything is content, whitespace included.
  assert.deepEqual(splitReasoning('  Hello <think> there', false), { reasoning: '', content: '  Hello <think> there' });
  assert.deepEqual(splitReasoning('x</think>y', false), { reasoning: '', content: 'x</think>y' });
  // Never closed: all reasoning.
  assert.deepEqual(splitReasoning('still thinking <thi', true), { reasoning: 'still thinking <thi', content: '' });
  // A redundant opening tag after the forced one is dropped; tags in the answer are literal.
  assert.deepEqual(splitReasoning('<think>\nA</think>B</think><think>C', true), { reasoning: 'A', content: 'B</think><think>C' });
  // Only newlines are stripped after </think>, not spaces.
  assert.deepEqual(splitReasoning('r</think>\r\n  c', true), { reasoning: 'r', content: '  c' });
  // Empty reasoning and empty content.
  assert.deepEqual(splitReasoning('</think>', true), { reasoning: '', content: '' });
  assert.deepEqual(splitReasoning('', true), { reasoning: '', content: '' });
  assert.deepEqual(splitReasoning('', false), { reasoning: '', content: '' });
  // A "<" that is not a tag stays text.
  assert.deepEqual(splitReasoning('a < b </thinking> c</think>d', true), { reasoning: 'a < b </thinking> c', content: 'd' });
});

test('streaming: tags split across chunks, partial tags held back, inThinking follows the text', () => {
  const s = new ReasoningSplitter({ startInThinking: true });
  assert.equal(s.inThinking, true);
  assert.deepEqual(s.push('Think'), { reasoning: 'Think', content: '' });
  assert.deepEqual(s.push('ing.</th'), { reasoning: 'ing.', content: '' }); // "</th" held back
  assert.deepEqual(s.push('in'), { reasoning: '', content: '' });
  assert.equal(s.inThinking, true);
  assert.deepEqual(s.push('k>\n'), { reasoning: '', content: '' });
  assert.equal(s.inThinking, false);
  assert.deepEqual(s.push('\nAns'), { reasoning: '', content: 'Ans' });
  assert.deepEqual(s.push('wer</think>'), { reasoning: '', content: 'wer</think>' }); // literal in the answer
  assert.deepEqual(s.flush(), { reasoning: '', content: '' });
  assert.equal(s.reasoning, 'Thinking.');
  assert.equal(s.content, 'Answer</think>');
  assert.throws(() => s.push('x'), R1Error);

  // A held-back "<" that turns out not to be a tag is released as reasoning with the next chunk.
  const t = new ReasoningSplitter({ startInThinking: true });
  assert.deepEqual(t.push('a<'), { reasoning: 'a', content: '' });
  assert.deepEqual(t.push('b'), { reasoning: '<b', content: '' });
  // flush releases a partial tag as text of the current part.
  assert.deepEqual(t.push('</thin'), { reasoning: '', content: '' });
  assert.deepEqual(t.flush(), { reasoning: '</thin', content: '' });

  // Content mode: a generated "<think>" split over chunks opens the block.
  const u = new ReasoningSplitter({ startInThinking: false });
  assert.equal(u.inThinking, false);
  assert.deepEqual(u.push('\n<th'), { reasoning: '', content: '' });
  assert.deepEqual(u.push('ink>\nstep'), { reasoning: 'step', content: '' });
  assert.equal(u.inThinking, true);
  // Content mode without a tag: text flows out at once once it cannot be a tag.
  const v = new ReasoningSplitter({ startInThinking: false });
  assert.deepEqual(v.push('  '), { reasoning: '', content: '' }); // might precede "<think>"
  assert.deepEqual(v.push('Hi'), { reasoning: '', content: '  Hi' });
  assert.deepEqual(v.push(' <think>'), { reasoning: '', content: ' <think>' });
});

const PIECES = ['<think>', '</think>', '<', '</', '>', '/', 'think', '<th', '</th', 'ink>', '\n', '\n\n', '\r', ' ', 'a', 'bc', 'é', '😀', '<thinking>', 'x</think', 'k'];

test('random texts: every random chunking gives the whole-text split', () => {
  const rng = new Rng(7);
  let chunkings = 0;
  for (let c = 0; c < 1500; c++) {
    const n = rng.int(14);
    let text = '';
    for (let i = 0; i < n; i++) text += PIECES[rng.int(PIECES.length)]!;
    for (const start of [true, false]) {
      const want = splitReasoning(text, start);
      // Always at least: whole, one char at a time, and three random chunkings.
      const ways: string[][] = [[text], [...text].length ? Array.from({ length: text.length }, (_, i) => text[i]!) : []];
      for (let w = 0; w < 3; w++) {
        const chunks: string[] = [];
        let i = 0;
        while (i < text.length) { const len = rng.int(5); chunks.push(text.slice(i, i + len)); i += len; } // includes empty chunks
        ways.push(chunks);
      }
      for (const chunks of ways) {
        const got = streamed(chunks, start);
        chunkings++;
        assert.deepEqual({ reasoning: got.reasoning, content: got.content }, want, `text ${JSON.stringify(text)} start ${start} chunks ${JSON.stringify(chunks)}`);
        // A delta never carries the closing tag (or a piece of one) into the reasoning.
        for (const d of got.deltas) assert.ok(!d.reasoning.includes('</think>'));
      }
    }
  }
  assert.ok(chunkings > 10000);
});

test('random R1-shaped outputs: reasoning and content recovered exactly', () => {
  const rng = new Rng(11);
  const words = ['so', ' ', 'x', '<', '>', '2+2', '\n', 'think', '/'];
  const gen = (k: number, first: string[]): string => {
    let s = first[rng.int(first.length)]!;
    for (let i = 0; i < k; i++) s += words[rng.int(words.length)]!;
    return s;
  };
  for (let c = 0; c < 300; c++) {
    const reasoning = gen(rng.int(30), ['Okay', 'Hmm', 'First']); // starts with non-whitespace
    const content = gen(rng.int(30), ['The', 'So', '4']);
    if (reasoning.includes('</think>')) continue;
    const forced = `${reasoning}</think>\n\n${content}`;
    const opened = `<think>\n${forced}`;
    for (const [text, start] of [[forced, true], [opened, false]] as const) {
      const chunks: string[] = [];
      for (let i = 0; i < text.length;) { const len = 1 + rng.int(6); chunks.push(text.slice(i, i + len)); i += len; }
      const got = streamed(chunks, start);
      assert.equal(got.reasoning, reasoning);
      assert.equal(got.content, content);
    }
  }
});
