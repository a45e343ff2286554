// The embedded demo model: it loads, learns in context (4 shots beat 0 shots), and has the copy bias
// the copy-bias pipeline targets: at 4 shots most of its errors on the ICL suite are copies.
import test from 'ava';
import path from 'node:path';
import { evaluate, Model } from '../lib';
import { GENERATED_SUITE } from '../lib/pipelines/copybias-config';
import { packageRoot } from '../lib/native';

test('models/demo-gpt2 learns in context, and at 4 shots most of its errors are copies of an example label', async (t) => {
  const model = await Model.load(path.join(packageRoot(), 'models', 'demo-gpt2'));
  t.like(model.info, { architecture: 'GPT2LMHeadModel', nLayers: 4, dModel: 128, vocabSize: 257 });
  const r = await evaluate(model, [...GENERATED_SUITE, 'vowel_count'], { shots: [0, 4], n: 100, seed: 11 });
  const score = (task: string, shots: number) => r.scores.find((s) => s.task === task && s.shots === shots)!;
  t.true(score('to_upper', 4).accuracy > score('to_upper', 0).accuracy + 0.3, `to_upper ${score('to_upper', 0).accuracy} -> ${score('to_upper', 4).accuracy}`);
  const four = r.mean.find((m) => m.shots === 4)!;
  t.is(four.tasks, GENERATED_SUITE.length, 'the headline is the six tasks, without the proxy');
  const errors = 1 - four.accuracy;
  t.log(`4-shot: accuracy ${four.accuracy.toFixed(3)}, copy errors ${four.copyErrorRate.toFixed(3)} (${((100 * four.copyErrorRate) / errors).toFixed(0)}% of errors)`);
  t.true(four.copyErrorRate >= 0.5 * errors, `copy errors ${four.copyErrorRate} of ${errors} errors`);
  t.is(r.mean.find((m) => m.shots === 0)!.copyErrorRate, 0, 'no examples, no copies');
  t.true(score('vowel_count', 4).copyErrorRate > 0.5, 'the proxy task: copies dominate');
  model.dispose();
});
