// Training: the loss falls, the schedule is warm-up then cosine, checkpoints are HF folders written
// atomically, half precision trains too, and bad input is refused.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Model, readCorpus } from '../lib';
import { packageRoot } from '../lib/native';
import { syntheticCorpus } from '../lib/tasks';
import { codeOf, maxAbsDiff, tempDir, tinyGpt2 } from './helpers';

const corpus = syntheticCorpus({ samples: 400, seed: 1, maxShots: 3 });

test('the loss falls, the lr warms up then decays, and a checkpoint reloads equal', async (t) => {
  const dir = await tinyGpt2({ seed: 2 });
  const model = await Model.load(dir);
  const before = await model.weightsDigest();
  const out = path.join(tempDir(), 'ckpt');
  const points: number[] = [];
  const r = await model.train({ samples: corpus, steps: 40, batchSize: 8, lr: 3e-3, warmup: 5, checkpoint: { dir: out, every: 20 }, onStep: (p) => points.push(p.step) });
  t.deepEqual(points, Array.from({ length: 40 }, (_, i) => i + 1));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(r.curve.slice(0, 5).map((p) => p.loss)), last = mean(r.curve.slice(-5).map((p) => p.loss));
  t.true(last < 0.7 * first, `loss ${first} -> ${last}`);
  t.is(r.curve[0].lr, 3e-3 / 5);
  t.is(r.curve[4].lr, 3e-3);
  t.true(r.curve[39].lr < r.curve[20].lr && r.curve[39].lr >= 3e-4 - 1e-12, 'cosine decay toward lr * minLrRatio');
  t.true(r.curve.every((p) => p.tokensPerSecond > 0 && Number.isFinite(p.gradNorm)));
  t.not(await model.weightsDigest(), before);
  const reloaded = await Model.load(out);
  t.is(await reloaded.weightsDigest(), await model.weightsDigest());
  t.is(maxAbsDiff((await reloaded.logits('example:a->')).data, (await model.logits('example:a->')).data), 0);
  t.deepEqual(fs.readdirSync(path.dirname(out)), ['ckpt'], 'no temporary folders left');
  // After training the weights no longer require grad: attribution and editing work as before.
  const edit = await model.prune([{ layer: 0, index: 1 }]);
  await model.restore(edit);
  t.is((await model.attribute({ prompts: [{ prompt: 'ab', target: 'c' }], steps: 2 })).prompts.length, 1);
  model.dispose();
  reloaded.dispose();
});

test('training in segments with the optimizer state carried (through a reload) equals one call, bit for bit', async (t) => {
  const dir = await tinyGpt2({ seed: 4 });
  const opts = { samples: corpus, steps: 24, batchSize: 8, lr: 3e-3, warmup: 4, seed: 5 };
  const whole = await Model.load(dir);
  await whole.train(opts);
  const work = tempDir();
  const state = path.join(work, 'adam.safetensors');
  // Segments of 8: the first two in one model, then a fresh process's view: the saved weights reloaded.
  let model = await Model.load(dir);
  await model.train({ ...opts, fromStep: 0, untilStep: 8, optimizerState: state });
  await model.train({ ...opts, fromStep: 8, untilStep: 16, optimizerState: state });
  await model.save(path.join(work, 'ckpt'));
  model.dispose();
  model = await Model.load(path.join(work, 'ckpt'));
  await model.train({ ...opts, fromStep: 16, untilStep: 24, optimizerState: state });
  t.is(await model.weightsDigest(), await whole.weightsDigest());
  t.deepEqual(fs.readdirSync(work).sort(), ['adam.safetensors', 'ckpt'], 'no temporary files left');
  // Without the state the moments restart: not the same training.
  const fresh = await Model.load(dir);
  await fresh.train({ ...opts, fromStep: 0, untilStep: 8 });
  await fresh.train({ ...opts, fromStep: 8, untilStep: 24 });
  t.not(await fresh.weightsDigest(), await whole.weightsDigest());
  // A state from another step is refused rather than silently used.
  const err = await t.throwsAsync(fresh.train({ ...opts, fromStep: 8, untilStep: 9, optimizerState: state }));
  t.is((err as { code?: string }).code, 'E_ARG');
  t.regex(err!.message, /at step 24, training starts at step 8/);
  for (const m of [model, whole, fresh]) m.dispose();
});

test('a training state saved with its weights resumes from the starting model alone, with no model save', async (t) => {
  const opts = { samples: corpus, steps: 12, batchSize: 8, lr: 3e-3, warmup: 2 };
  const whole = await Model.load('random:gpt2-tiny', { seed: 4 });
  await whole.train(opts);
  const work = tempDir(), state = path.join(work, 'state.safetensors');
  const first = await Model.load('random:gpt2-tiny', { seed: 4 });
  await first.train({ ...opts, fromStep: 0, untilStep: 5, optimizerState: { save: state, weights: true } });
  first.dispose();
  // The untrained starting model again: the state brings the weights of step 5 as well as the moments.
  const model = await Model.load('random:gpt2-tiny', { seed: 4 });
  await model.train({ ...opts, fromStep: 5, untilStep: 12, optimizerState: { load: state } });
  t.is(await model.weightsDigest(), await whole.weightsDigest());
  // Without weights in it the state carries only the moments: the starting weights stay and it is another training.
  const bare = path.join(work, 'bare.safetensors');
  const again = await Model.load('random:gpt2-tiny', { seed: 4 });
  await again.train({ ...opts, fromStep: 0, untilStep: 5, optimizerState: { save: bare } });
  again.dispose();
  const other = await Model.load('random:gpt2-tiny', { seed: 4 });
  await other.train({ ...opts, fromStep: 5, untilStep: 12, optimizerState: { load: bare } });
  t.not(await other.weightsDigest(), await whole.weightsDigest());
  for (const m of [whole, model, other]) m.dispose();
});

test('bfloat16 segments carry the float32 master weights', async (t) => {
  const opts = { samples: corpus, steps: 12, batchSize: 8, lr: 3e-3, warmup: 2 };
  const whole = await Model.load('random:gpt2-tiny', { dtype: 'bfloat16', seed: 3 });
  await whole.train(opts);
  const work = tempDir(), state = path.join(work, 'adam.safetensors');
  const first = await Model.load('random:gpt2-tiny', { dtype: 'bfloat16', seed: 3 });
  await first.train({ ...opts, fromStep: 0, untilStep: 5, optimizerState: state });
  await first.save(path.join(work, 'ckpt'));
  first.dispose();
  // The reloaded checkpoint holds bf16 weights only; the float32 master comes back from the state.
  const model = await Model.load(path.join(work, 'ckpt'), { dtype: 'bfloat16' });
  await model.train({ ...opts, fromStep: 5, untilStep: 12, optimizerState: state });
  t.is(await model.weightsDigest(), await whole.weightsDigest());
  whole.dispose();
  model.dispose();
});

test('bfloat16 models train (float32 master weights)', async (t) => {
  const model = await Model.load('random:gpt2-tiny', { dtype: 'bfloat16', seed: 3 });
  const r = await model.train({ samples: corpus, steps: 30, batchSize: 8, lr: 3e-3, warmup: 3 });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  t.true(mean(r.curve.slice(-5).map((p) => p.loss)) < 0.8 * mean(r.curve.slice(0, 5).map((p) => p.loss)));
  t.is(model.info.dtype, 'bfloat16');
  model.dispose();
});

test('mamba trains: autograd through the selective scan lowers the loss', async (t) => {
  const model = await Model.load('random:mamba-tiny', { seed: 3 });
  const r = await model.train({ samples: corpus, steps: 30, batchSize: 8, lr: 3e-3, warmup: 3 });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(r.curve.slice(0, 5).map((p) => p.loss)), last = mean(r.curve.slice(-5).map((p) => p.loss));
  t.true(last < 0.8 * first, `loss ${first} -> ${last}`);
  t.true(r.curve.every((p) => Number.isFinite(p.gradNorm) && p.gradNorm > 0));
  model.dispose();
});

test('bad training input is refused with a code and the model survives', async (t) => {
  const model = await Model.load('random:gpt2-tiny');
  t.is(await codeOf(() => model.train({ samples: [], steps: 3 })), 'E_ARG');
  t.is(await codeOf(() => model.train({ samples: ['x'], steps: 3 })), 'E_ARG');
  t.is(await codeOf(() => model.train({ samples: corpus, steps: 0 })), 'E_ARG');
  t.is(await codeOf(() => model.train({ samples: corpus, steps: 3, lr: -1 })), 'E_ARG');
  const edit = await model.prune([{ layer: 0, index: 0 }]);
  t.is(await codeOf(model.train({ samples: corpus, steps: 3 })), 'E_ARG', 'edits are restored before training');
  await model.restore(edit);
  const controller = new AbortController();
  const run = model.train({ samples: corpus, steps: 50, batchSize: 4, signal: controller.signal, onStep: (p) => p.step === 3 && controller.abort() });
  t.is(await codeOf(run), 'E_ABORTED');
  t.is((await model.logits('still fine')).shape[0], 1);
  const file = path.join(tempDir(), 'corpus.jsonl');
  fs.writeFileSync(file, '{"text": "ok"}\n{"txt": "bad"}\n');
  t.throws(() => readCorpus(file), { message: /corpus\.jsonl:2: text: Required/ });
  model.dispose();
});

test('CLI: synth-data then train writes a checkpoint and training.json', async (t) => {
  const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const dir = tempDir();
  const data = path.join(dir, 'corpus.jsonl');
  t.is(run('synth-data', '--out', data, '--samples', '300', '--seed', '4').status, 0);
  t.is(readCorpus(data).length, 300);
  const out = path.join(dir, 'trained');
  const r = run('train', 'random:gpt2-tiny', '--data', data, '--out', out, '--steps', '12', '--batch-size', '4', '--checkpoint-every', '5');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /trained 12 steps .* final loss \d/);
  const training = JSON.parse(fs.readFileSync(path.join(out, 'training.json'), 'utf8'));
  t.is(training.curve.length, 12);
  t.truthy(training.environment.libtorch.path);
  t.like(training.options, { steps: 12, batchSize: 4, samples: 300 });
  t.is((await Model.load(out)).info.nLayers, 2);
  t.regex(run('train', 'random:gpt2-tiny', '--data', path.join(dir, 'none.jsonl'), '--out', out).stderr, /^E_PROMPT_FILE: .*cannot read/);
});
