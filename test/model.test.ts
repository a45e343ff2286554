// The Model API: info, generation options, ordering, cancellation, disposal.
import test from 'ava';
import { Model } from '../lib';
import { maxAbsDiff, tinyGpt2 } from './helpers';

let dir: string;
let model: Model;
test.before(async () => {
  dir = await tinyGpt2();
  model = await Model.load(dir);
});
test.after.always(() => model?.dispose());

test('info describes the checkpoint', (t) => {
  t.like(model.info, { architecture: 'GPT2LMHeadModel', modelType: 'gpt2', nLayers: 2, dModel: 32, nHeads: 4, dMlp: 128, vocabSize: 257, dtype: 'float32', device: 'cpu' });
  t.deepEqual(model.info.sites, ['blocks.0.mlp.hook_post', 'blocks.1.mlp.hook_post']);
  // wte 257x32 + wpe 1024x32 + 2 blocks + ln_f
  const perBlock = 32 * 96 + 96 + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32 + 4 * 32;
  t.is(model.info.nParams, 257 * 32 + 1024 * 32 + 2 * perBlock + 64);
});

test('generate stops at end-of-sequence and honours maxNewTokens 0', async (t) => {
  const none = await model.generate('abc', { maxNewTokens: 0 });
  t.deepEqual(none.tokens, []);
  t.is(none.text, '');
  const g = await model.generate(['abc', 'xyz'], { maxNewTokens: 4 });
  t.is(g.length, 2);
  for (const row of g) t.false(row.tokens.includes(256));
});

test('calls on one model run one at a time and in order', async (t) => {
  const prompts = ['one', 'two words', 'three words here'];
  const results = await Promise.all(prompts.map((p) => model.logits(p, { lastOnly: true })));
  for (let i = 0; i < prompts.length; i++) {
    t.is(maxAbsDiff(results[i].data, (await model.logits(prompts[i], { lastOnly: true })).data), 0);
  }
});

test('an aborted generate rejects with E_ABORTED and leaves the model usable', async (t) => {
  const controller = new AbortController();
  controller.abort();
  const error = await t.throwsAsync(model.generate('abc', { maxNewTokens: 3, signal: controller.signal }));
  t.is((error as { code?: string }).code, 'E_ABORTED');
  t.is((await model.generate('abc', { maxNewTokens: 3, stopAtEos: false })).tokens.length, 3);
});

test('a disposed model rejects new calls with E_DISPOSED', async (t) => {
  const m = await Model.load(dir);
  const pending = m.logits('still runs');
  m.dispose();
  t.is((await pending).shape[0], 1);
  const error = await t.throwsAsync(m.logits('too late'));
  t.is((error as { code?: string }).code, 'E_DISPOSED');
});
