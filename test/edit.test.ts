// Pruning, activation scaling, exact restore and pruned checkpoints, for every architecture.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint, Model, neuronSet, NeuronRef, readNeuronSet, readSafetensors, writeNeuronSet, writeSafetensors } from '../lib';
import { packageRoot } from '../lib/native';
import { codeOf, maxAbs, maxAbsDiff, tempDir } from './helpers';

const prompt = 'Pruning neurons, one at a time.';
const neurons: NeuronRef[] = [
  { layer: 0, index: 3 },
  { layer: 1, index: 7 },
  { layer: 1, index: 0 },
];

for (const arch of ['gpt2', 'llama', 'qwen2', 'gpt_neox', 'mamba']) {
  let dir: string;
  test.before(async () => {
    dir = path.join(tempDir(), arch);
    await initCheckpoint(arch, dir, { seed: 11 });
  });

  test(`${arch}: pruning equals scaling by 0, full pruning too, and restore is bit-identical`, async (t) => {
    const model = await Model.load(dir);
    const clean = await model.logits(prompt);
    const digest = await model.weightsDigest();

    const scaled = await model.scale(neurons, 0);
    const suppressed = await model.logits(prompt);
    await model.restore(scaled);
    t.is(await model.weightsDigest(), digest, 'scaling never touches weights');
    t.is(maxAbsDiff((await model.logits(prompt)).data, clean.data), 0, 'removing the scale brings the logits back');

    const pruned = await model.prune(neurons);
    t.not(await model.weightsDigest(), digest);
    const prunedLogits = await model.logits(prompt);
    t.true(maxAbsDiff(prunedLogits.data, clean.data) > 1e-4, 'pruning changed the output');
    t.true(maxAbsDiff(prunedLogits.data, suppressed.data) < 1e-5 * maxAbs(clean.data), `prune vs scale 0: ${maxAbsDiff(prunedLogits.data, suppressed.data)}`);
    await model.restore(pruned);
    t.is(await model.weightsDigest(), digest, 'restore is bit-identical');

    await model.prune(neurons, { full: true });
    if (model.info.neuronSite === 'mlp.hook_post') {
      t.true(maxAbsDiff((await model.logits(prompt)).data, suppressed.data) < 1e-5 * maxAbs(clean.data), 'full pruning: same function');
    } else {
      // Mamba: a fully pruned unit is zero, and its input no longer feeds the others' dt, B and C
      // through x_proj, so the function differs from scaling by 0.
      const acts = await model.activations(prompt);
      const [, T, N] = acts.shape;
      for (const n of neurons) for (let p = 0; p < T; p++) t.is(Math.abs(acts.layers.get(n.layer)![p * N + n.index]), 0);
      t.true(maxAbsDiff((await model.logits(prompt)).data, clean.data) > 1e-4, 'full pruning changed the output');
    }
    await model.restore();
    t.is(await model.weightsDigest(), digest);
    model.dispose();
  });

  test(`${arch}: restoring one of overlapping edits keeps the others`, async (t) => {
    const model = await Model.load(dir);
    const a = await model.prune([neurons[0], neurons[1]]);
    await model.prune([neurons[1], neurons[2]]); // neurons[1] overlaps
    await model.restore(a);
    const reference = await Model.load(dir);
    await reference.prune([neurons[1], neurons[2]]);
    t.is(await model.weightsDigest(), await reference.weightsDigest());
    model.dispose();
    reference.dispose();
  });

  test(`${arch}: a pruned neuron changes nothing below its layer; scaling multiplies its activation`, async (t) => {
    const model = await Model.load(dir);
    const before = await model.activations(prompt);
    await model.prune([{ layer: 1, index: 5 }]);
    const after = await model.activations(prompt);
    t.is(maxAbsDiff(before.layers.get(0)!, after.layers.get(0)!), 0, 'layer 0 cannot see a layer-1 edit');
    t.is(maxAbsDiff(before.layers.get(1)!, after.layers.get(1)!), 0, 'its own activation is computed before the zeroed down projection');
    await model.restore();
    await model.prune([{ layer: 0, index: 5 }]);
    t.true(maxAbsDiff(before.layers.get(1)!, (await model.activations(prompt)).layers.get(1)!) > 0, 'a layer-0 prune reaches layer 1');
    await model.restore();

    await model.scale([{ layer: 1, index: 5 }], 2);
    const doubled = (await model.activations(prompt, { layers: [1] })).layers.get(1)!;
    const dMlp = model.info.dMlp;
    const base = before.layers.get(1)!;
    for (let p = 0; p < before.shape[1]; p++) {
      t.true(Math.abs(doubled[p * dMlp + 5] - 2 * base[p * dMlp + 5]) <= 1e-6 * Math.max(1, Math.abs(base[p * dMlp + 5])));
      t.is(doubled[p * dMlp + 6], base[p * dMlp + 6]);
    }
    model.dispose();
  });

  test(`${arch}: a saved pruned model reloads with equal logits`, async (t) => {
    const model = await Model.load(dir);
    await model.prune(neurons);
    const expected = await model.logits(prompt);
    const out = await model.save(path.join(tempDir(), 'pruned'));
    t.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const reloaded = await Model.load(out);
    t.is(maxAbsDiff((await reloaded.logits(prompt)).data, expected.data), 0);
    t.is(await reloaded.weightsDigest(), await model.weightsDigest());
    model.dispose();
    reloaded.dispose();
  });
}

test('a sharded source is saved sharded the same way', async (t) => {
  const dir = path.join(tempDir(), 'src');
  await initCheckpoint('llama', dir, { seed: 2 });
  const all = await readSafetensors(path.join(dir, 'model.safetensors'));
  const names = Object.keys(all.tensors);
  const weightMap: Record<string, string> = {};
  for (const [i, part] of [names.slice(0, 5), names.slice(5)].entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(path.join(dir, file), part.map((name) => ({ name, ...all.tensors[name] })));
    for (const name of part) weightMap[name] = file;
  }
  fs.rmSync(path.join(dir, 'model.safetensors'));
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  const model = await Model.load(dir);
  await model.prune(neurons);
  const out = await model.save(path.join(tempDir(), 'pruned'));
  const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
  t.deepEqual(index.weight_map, weightMap);
  t.true(index.metadata.total_size > 0);
  const reloaded = await Model.load(out);
  t.is(await reloaded.weightsDigest(), await model.weightsDigest());
});

test('bad neuron lists and files get E_RANGE or E_NEURON_FILE naming the entry', async (t) => {
  const model = await Model.load('random:gpt2-tiny');
  const e1 = await t.throwsAsync(model.prune([{ layer: 0, index: 1 }, { layer: 0, index: 256 }]));
  t.is((e1 as { code?: string }).code, 'E_RANGE');
  t.regex(e1!.message, /neurons\[1\] = \{layer: 0, index: 256\}: index out of range \[0, 256\)/);
  const e2 = await t.throwsAsync(model.prune([{ layer: 2, index: 0 }]));
  t.regex(e2!.message, /neurons\[0\] = \{layer: 2, index: 0\}: layer out of range \[0, 2\)/);
  const e3 = await t.throwsAsync(model.scale([{ layer: 1, index: 4 }, { layer: 0, index: 4 }, { layer: 1, index: 4 }], 0));
  t.regex(e3!.message, /neurons\[2\] .*duplicate of neurons\[0\]/);
  t.is(await codeOf(model.prune([{ layer: 0.5, index: 1 }])), 'E_RANGE');
  t.is(await codeOf(model.scale([{ layer: 0, index: 1 }], NaN)), 'E_ARG');
  t.is(await codeOf(model.restore({ id: 999, kind: 'prune', neurons: 1 })), 'E_ARG');
  t.is((await model.weightsDigest()).length, 16, 'the model is untouched and usable');

  const dir = tempDir();
  const write = (name: string, text: string) => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));
  const good = neuronSet('random:gpt2-tiny', [{ layer: 1, index: 2, score: 0.5 }], { name: 'test' });
  await writeNeuronSet(path.join(dir, 'good.json'), good);
  t.deepEqual(await readNeuronSet(path.join(dir, 'good.json')), good);
  const cases: Array<[string, string, RegExp]> = [
    ['missing.json', '', /cannot read/],
    ['not-json.json', '{"neurons": [', /not JSON/],
    ['format.json', JSON.stringify({ ...good, format: 'other/1' }), /format: Invalid literal value/],
    ['site.json', JSON.stringify({ ...good, site: 'attn.hook_z' }), /site: Invalid enum value/],
    ['layer.json', JSON.stringify({ ...good, neurons: [{ layer: -1, index: 0 }] }), /neurons\.0\.layer: Number must be greater than or equal to 0/],
    ['index.json', JSON.stringify({ ...good, neurons: [{ layer: 0 }] }), /neurons\.0\.index: Required/],
  ];
  for (const [name, text, message] of cases) {
    const file = name === 'missing.json' ? path.join(dir, name) : write(name, text);
    const e = await t.throwsAsync(readNeuronSet(file));
    t.is((e as { code?: string }).code, 'E_NEURON_FILE', name);
    t.regex(e!.message, message, name);
  }
  model.dispose();
});

test('CLI: prune writes a checkpoint; generate --neurons --scale 0 equals generating from it', async (t) => {
  const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const dir = path.join(tempDir(), 'm');
  await initCheckpoint('gpt2', dir, { seed: 9 });
  const set = path.join(tempDir(), 'neurons.json');
  const top = Array.from({ length: 40 }, (_, i) => ({ layer: i % 2, index: i * 3 }));
  await writeNeuronSet(set, neuronSet(dir, top, { name: 'test' }));
  const out = path.join(tempDir(), 'pruned');
  const r = run('prune', dir, '--neurons', set, '--out', out);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /pruned 40 neurons/);
  const fromPruned = JSON.parse(run('generate', out, '--prompt', 'abc', '--max-new-tokens', '8', '--json').stdout);
  const scaled = JSON.parse(run('generate', dir, '--prompt', 'abc', '--max-new-tokens', '8', '--json', '--neurons', set, '--scale', '0').stdout);
  t.deepEqual(scaled.tokens, fromPruned.tokens);
  const bad = run('prune', dir, '--neurons', path.join(tempDir(), 'none.json'), '--out', path.join(tempDir(), 'x'));
  t.regex(bad.stderr, /^E_NEURON_FILE: /);
  t.regex(run('generate', dir, '--prompt', 'a', '--scale', '0').stderr, /^E_ARG: --neurons and --scale go together/);
});
