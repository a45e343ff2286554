// The same invariants for every architecture: numerics against a plain-loop reference written from
// the HF modeling files, KV cache (Mamba: its conv and SSM states), batching, left padding, bfloat16,
// float16.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint, Model, readSafetensors, runtime } from '../lib';
import { codeOf, float32, maxAbs, maxAbsDiff, tempDir } from './helpers';
import { neoxLogits } from './reference/gpt_neox';
import { gpt2Logits } from './reference/gpt2';
import { llamaLogits } from './reference/llama';
import { mambaLogits } from './reference/mamba';
import { Weight } from './reference/ops';

type Reference = (weight: Weight, config: Record<string, any>, ids: number[], has: (name: string) => boolean) => Float32Array;
const architectures: Array<{ arch: string; reference: Reference; options?: object }> = [
  { arch: 'gpt2', reference: (w, c, ids) => gpt2Logits(w, c, ids), options: { hidden: 32 } },
  { arch: 'llama', reference: llamaLogits },
  { arch: 'mistral', reference: llamaLogits },
  { arch: 'qwen2', reference: llamaLogits },
  { arch: 'gpt_neox', reference: (w, c, ids) => neoxLogits(w, c, ids) },
  { arch: 'mamba', reference: mambaLogits },
];

const prompts = ['The cat sat on the mat', 'a', 'Hello, world! How are you?'];
const cpuHalf = Number(runtime().torchVersion.split('.')[0]) >= 2;

for (const { arch, reference, options } of architectures) {
  let dir: string;
  let model: Model;
  test.before(async () => {
    dir = path.join(tempDir(), arch);
    await initCheckpoint(arch, dir, { seed: 3, ...options });
    model = await Model.load(dir);
  });

  test(`${arch}: logits match a plain-loop reference of the HF math`, async (t) => {
    const file = await readSafetensors(path.join(dir, 'model.safetensors'));
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const ids = model.tokenizer.encode('Hi there, transformer!');
    const expected = reference((name) => float32(file.tensors[name].data), config, ids, (name) => name in file.tensors);
    const got = await model.logits(ids);
    const diff = maxAbsDiff(got.data, expected);
    t.true(diff < 1e-4 * maxAbs(expected), `max diff ${diff} vs scale ${maxAbs(expected)}`);
  });

  test(`${arch}: KV-cache decoding equals a full forward`, async (t) => {
    const ids = model.tokenizer.encode(prompts[2]);
    const full = await model.logits(ids);
    for (const chunkSize of [1, 3]) {
      const cached = await model.logits(ids, { chunkSize });
      t.true(maxAbsDiff(full.data, cached.data) < 1e-5, `chunk ${chunkSize}: ${maxAbsDiff(full.data, cached.data)}`);
    }
  });

  test(`${arch}: generation with the cache equals greedy argmax of full forwards`, async (t) => {
    const g = await model.generate(prompts[0], { maxNewTokens: 6, stopAtEos: false });
    t.is(g.tokens.length, 6);
    const seq = model.tokenizer.encode(prompts[0]);
    for (const token of g.tokens) {
      const last = (await model.logits(seq, { lastOnly: true })).at(0, 0);
      t.is(token, last.indexOf(Math.max(...last)));
      seq.push(token);
    }
  });

  test(`${arch}: a batch equals its rows run alone, left padding included`, async (t) => {
    const batch = await model.logits(prompts);
    const { seqLen, lengths } = batch.tokens;
    t.true(lengths.some((n) => n < seqLen), 'some rows are padded');
    for (let b = 0; b < prompts.length; b++) {
      const alone = await model.logits(prompts[b]);
      const pad = seqLen - lengths[b];
      for (let p = 0; p < lengths[b]; p++) {
        t.true(maxAbsDiff(batch.at(b, pad + p), alone.at(0, p)) < 1e-5, `row ${b} position ${p}`);
      }
    }
  });

  test(`${arch}: batched generation equals one prompt at a time`, async (t) => {
    const batched = await model.generate(prompts, { maxNewTokens: 5, stopAtEos: false });
    for (let b = 0; b < prompts.length; b++) {
      t.deepEqual(batched[b].tokens, (await model.generate(prompts[b], { maxNewTokens: 5, stopAtEos: false })).tokens);
    }
  });

  for (const dtype of ['bfloat16', 'float16'] as const) {
    test(`${arch}: ${dtype} logits are close to float32`, async (t) => {
      if (dtype === 'float16' && !cpuHalf) {
        // LibTorch 1.x has no CPU half matmul: refused up front, not a crash mid-forward.
        t.is(await codeOf(Model.load(dir, { dtype })), 'E_ARG');
        return;
      }
      const half = await Model.load(dir, { dtype });
      t.is(half.info.dtype, dtype);
      const a = await model.logits(prompts[2]);
      const b = await half.logits(prompts[2]);
      const tol = dtype === 'bfloat16' ? 0.05 : 0.01;
      t.true(maxAbsDiff(a.data, b.data) < tol * maxAbs(a.data), `max diff ${maxAbsDiff(a.data, b.data)} vs scale ${maxAbs(a.data)}`);
      t.true(maxAbsDiff(a.data, b.data) > 0, 'the half-precision path really ran in half precision');
      half.dispose();
    });
  }

  test(`${arch}: random:${arch === 'gpt_neox' ? 'pythia' : arch}-tiny loads and is reproducible`, async (t) => {
    const preset = `random:${arch === 'gpt_neox' ? 'pythia' : arch}-tiny`;
    const [a, b] = await Promise.all([Model.load(preset, { seed: 4 }), Model.load(preset, { seed: 4 })]);
    t.is(a.info.modelType, arch);
    t.is(maxAbsDiff((await a.logits('same seed')).data, (await b.logits('same seed')).data), 0);
    a.dispose();
    b.dispose();
  });
}

// Rotary scaling: the same weights under linear and llama3 rope_scaling (Llama 3.1's long context).
for (const scaling of [
  { rope_type: 'linear', factor: 4 },
  { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 },
]) {
  test(`llama: rope_scaling ${scaling.rope_type} matches the reference`, async (t) => {
    const dir = path.join(tempDir(), 'llama-scaled');
    await initCheckpoint('llama', dir, { seed: 5, hidden: 64, heads: 2, kvHeads: 1 }); // head size 32: 16 frequencies
    const configFile = path.join(dir, 'config.json');
    const config = { ...JSON.parse(fs.readFileSync(configFile, 'utf8')), rope_scaling: scaling };
    fs.writeFileSync(configFile, JSON.stringify(config));
    const model = await Model.load(dir);
    const file = await readSafetensors(path.join(dir, 'model.safetensors'));
    const ids = model.tokenizer.encode('positions far enough apart to feel the scaling');
    const expected = llamaLogits((name) => float32(file.tensors[name].data), config, ids, (name) => name in file.tensors);
    const unscaled = llamaLogits((name) => float32(file.tensors[name].data), { ...config, rope_scaling: undefined }, ids, (name) => name in file.tensors);
    const got = (await model.logits(ids)).data;
    t.true(maxAbsDiff(got, expected) < 1e-4 * maxAbs(expected), `max diff ${maxAbsDiff(got, expected)}`);
    t.true(maxAbsDiff(got, unscaled) > 1e-3, 'the scaling changed the logits');
    model.dispose();
  });
}

test('llama: an unsupported rope_scaling type gives E_CONFIG naming it', async (t) => {
  const dir = path.join(tempDir(), 'llama-yarn');
  await initCheckpoint('llama', dir);
  const configFile = path.join(dir, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), rope_scaling: { rope_type: 'yarn', factor: 4 } }));
  const error = await t.throwsAsync(Model.load(dir));
  t.is((error as { code?: string }).code, 'E_CONFIG');
  t.regex(error!.message, /"rope_scaling.rope_type" is "yarn"/);
});

test('llama: key/value heads that do not divide the heads give E_CONFIG', async (t) => {
  const dir = path.join(tempDir(), 'llama-gqa');
  await initCheckpoint('llama', dir);
  const configFile = path.join(dir, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), num_key_value_heads: 3 }));
  t.is(await codeOf(Model.load(dir)), 'E_CONFIG');
});

test('mamba: random:mamba-130m has the real model size and runs', async (t) => {
  const model = await Model.load('random:mamba-130m', { seed: 1 });
  t.like(model.info, { modelType: 'mamba', nLayers: 24, dModel: 768, dMlp: 1536, vocabSize: 50280, maxPositions: 0, nParams: 129135360 });
  t.is(model.info.neuronSite, 'mixer.hook_post');
  t.is(model.info.sites[23], 'blocks.23.mixer.hook_post');
  const logits = await model.logits('state space');
  t.true(logits.data.every(Number.isFinite) && maxAbs(logits.data) < 100, `max |logit| ${maxAbs(logits.data)}`);
  model.dispose();
});

for (const [field, value, message] of [
  ['time_step_rank', 'big', /"time_step_rank" must be "auto" or a positive integer/],
  ['intermediate_size', 100, /"intermediate_size" \(100\) must be expand \* hidden_size \(128\)/],
  ['state_size', 0, /"state_size" must be a positive integer/],
  ['hidden_act', 'swiglu', /"hidden_act" is unknown/],
] as const) {
  test(`mamba: a bad ${field} gives E_CONFIG naming it`, async (t) => {
    const dir = path.join(tempDir(), 'mamba-bad');
    await initCheckpoint('mamba', dir);
    const configFile = path.join(dir, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), [field]: value }));
    const error = await t.throwsAsync(Model.load(dir));
    t.is((error as { code?: string }).code, 'E_CONFIG');
    t.regex(error!.message, message);
  });
}
