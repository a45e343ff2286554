// The embedded demo model: it loads, learns in context (4 shots beat 0 shots), and copies labels.
import test from 'ava';
import path from 'node:path';
import { evaluate, Model } from '../lib';
import { packageRoot } from '../lib/native';

test('models/demo-gpt2 learns in context and makes copy errors', async (t) => {
  const model = await Model.load(path.join(packageRoot(), 'models', 'demo-gpt2'));
  t.like(model.info, { architecture: 'GPT2LMHeadModel', nLayers: 4, dModel: 128, vocabSize: 257 });
  const r = await evaluate(model, ['to_upper', 'next_letter', 'vowel_count'], { shots: [0, 4], n: 100, seed: 11 });
  const acc = (task: string, shots: number) => r.scores.find((s) => s.task === task && s.shots === shots)!.accuracy;
  t.true(acc('to_upper', 4) > acc('to_upper', 0) + 0.5, `to_upper ${acc('to_upper', 0)} -> ${acc('to_upper', 4)}`);
  t.true(acc('next_letter', 4) > acc('next_letter', 0), `next_letter ${acc('next_letter', 0)} -> ${acc('next_letter', 4)}`);
  t.true(r.mean.find((m) => m.shots === 4)!.copyErrorRate > 0, 'some copy errors at 4 shots');
  model.dispose();
});
