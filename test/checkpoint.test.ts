import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Model, readSafetensors, writeSafetensors } from '../lib';
import { codeOf, copyDir, maxAbsDiff, rawSafetensors, tempDir, tinyGpt2 } from './helpers';

let dir: string;
test.before(async () => {
  dir = await tinyGpt2();
});

/** Writes `bytes` as the model.safetensors of a copy of the tiny model and loads it. */
async function loadWithWeights(bytes: Buffer): Promise<{ code: string; message: string }> {
  const copy = copyDir(dir);
  fs.writeFileSync(path.join(copy, 'model.safetensors'), bytes);
  try {
    await Model.load(copy);
  } catch (error) {
    const e = error as { code: string; message: string };
    return { code: e.code, message: e.message };
  }
  throw new Error('expected the load to fail');
}

const f32 = (n: number) => Buffer.alloc(4 * n);

test('a written checkpoint reads back bit-identical', async (t) => {
  const original = await readSafetensors(path.join(dir, 'model.safetensors'));
  const out = path.join(tempDir(), 'copy.safetensors');
  const bf16 = Buffer.from([0x80, 0x3f, 0x00, 0x40, 0x40, 0xc0]); // 1, 2, -3
  const i64 = Buffer.alloc(16);
  i64.writeBigInt64LE(-5n, 0);
  i64.writeBigInt64LE(1n << 40n, 8);
  const tensors = [
    ...Object.entries(original.tensors).map(([name, raw]) => ({ name, ...raw })),
    { name: 'extra.bf16', dtype: 'BF16', shape: [3], data: bf16 },
    { name: 'extra.f16', dtype: 'F16', shape: [1, 2], data: Buffer.from([0x00, 0x3c, 0x00, 0xc0]) },
    { name: 'extra.i64', dtype: 'I64', shape: [2], data: i64 },
    { name: 'extra.i32', dtype: 'I32', shape: [0], data: Buffer.alloc(0) },
  ];
  await writeSafetensors(out, tensors, { format: 'pt', note: 'round trip' });
  const back = await readSafetensors(out);
  t.deepEqual(back.metadata, { format: 'pt', note: 'round trip' });
  t.is(Object.keys(back.tensors).length, tensors.length);
  for (const { name, dtype, shape, data } of tensors) {
    t.is(back.tensors[name].dtype, dtype, name);
    t.deepEqual(back.tensors[name].shape, shape, name);
    t.true(back.tensors[name].data.equals(data), `${name} bytes differ`);
  }
  t.deepEqual(fs.readdirSync(path.dirname(out)), ['copy.safetensors'], 'no temporary file left behind');
});

test('writing into a missing folder fails with E_IO and leaves nothing', async (t) => {
  const missing = path.join(tempDir(), 'no', 'such', 'x.safetensors');
  t.is(await codeOf(writeSafetensors(missing, [{ name: 'a', dtype: 'F32', shape: [1], data: f32(1) }])), 'E_IO');
  t.false(fs.existsSync(path.dirname(missing)));
});

test('a sharded checkpoint (index.json over several files) loads with the same logits', async (t) => {
  const copy = copyDir(dir);
  const all = await readSafetensors(path.join(copy, 'model.safetensors'));
  const names = Object.keys(all.tensors);
  const shards = [names.slice(0, names.length / 2), names.slice(names.length / 2)];
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(path.join(copy, file), shard.map((name) => ({ name, ...all.tensors[name] })));
    for (const name of shard) weightMap[name] = file;
  }
  fs.rmSync(path.join(copy, 'model.safetensors'));
  fs.writeFileSync(path.join(copy, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const [a, b] = await Promise.all([Model.load(dir), Model.load(copy)]);
  t.is(maxAbsDiff((await a.logits('shards')).data, (await b.logits('shards')).data), 0);
  a.dispose();
  b.dispose();
});

test('original GPT-2 names without the transformer. prefix load too', async (t) => {
  const copy = copyDir(dir);
  const all = await readSafetensors(path.join(copy, 'model.safetensors'));
  const renamed = Object.entries(all.tensors).map(([name, raw]) => ({ name: name.replace(/^transformer\./, ''), ...raw }));
  // The original files also carry attention-mask buffers, which the loader ignores.
  renamed.push({ name: 'h.0.attn.bias', dtype: 'F32', shape: [1], data: f32(1) });
  await writeSafetensors(path.join(copy, 'model.safetensors'), renamed);
  const [a, b] = await Promise.all([Model.load(dir), Model.load(copy)]);
  t.is(maxAbsDiff((await a.logits('names')).data, (await b.logits('names')).data), 0);
});

test('a hub id resolves through the local HF cache', async (t) => {
  const home = tempDir();
  const repo = path.join(home, 'hub', 'models--tiny-org--tiny-gpt2');
  fs.cpSync(dir, path.join(repo, 'snapshots', 'abc123'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'refs'));
  fs.writeFileSync(path.join(repo, 'refs', 'main'), 'abc123\n');
  const before = process.env.HF_HOME;
  process.env.HF_HOME = home;
  try {
    const m = await Model.load('tiny-org/tiny-gpt2');
    t.is(m.info.dir, path.join(repo, 'snapshots', 'abc123'));
    t.is(m.info.id, 'tiny-org/tiny-gpt2');
    m.dispose();
    t.is(await codeOf(Model.load('tiny-org/not-cached')), 'E_NOT_FOUND');
  } finally {
    process.env.HF_HOME = before;
  }
});

// Every way a safetensors file can be broken gets E_CHECKPOINT (or E_DTYPE) naming the file and tensor.
const header = (entry: object) => ({ 'transformer.wte.weight': entry });
const cases: Array<[string, Buffer, string, RegExp]> = [
  ['a file shorter than 8 bytes', Buffer.from([1, 2, 3]), 'E_CHECKPOINT', /shorter than the 8-byte/],
  ['a header length beyond the file', rawSafetensors('{}', Buffer.alloc(0), 1000), 'E_CHECKPOINT', /header length 1000 runs beyond the file/],
  ['a header that is not JSON', rawSafetensors('{"a": [1, 2'), 'E_CHECKPOINT', /header.*not JSON/],
  // Strict per the safetensors spec: each of these loaded before, most with silently wrong weights.
  ['a header length one byte short (every weight shifted by a byte)', rawSafetensors(JSON.stringify(header({ dtype: 'F32', shape: [2], data_offsets: [0, 8] })) + '   ', f32(2), -1), 'E_CHECKPOINT', /1 bytes after the last tensor/],
  ['bytes after the last tensor', rawSafetensors(header({ dtype: 'F32', shape: [1], data_offsets: [0, 4] }), f32(2)), 'E_CHECKPOINT', /4 bytes after the last tensor/],
  ['a gap before a tensor', rawSafetensors(header({ dtype: 'F32', shape: [1], data_offsets: [4, 8] }), f32(2)), 'E_CHECKPOINT', /starts at byte 4 .*contiguous/],
  ['header padding that is not spaces', rawSafetensors(JSON.stringify(header({ dtype: 'F32', shape: [1], data_offsets: [0, 4] })) + '\n\t', f32(1)), 'E_CHECKPOINT', /padding must be spaces/],
  ['a tensor named twice', rawSafetensors('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', f32(1)), 'E_CHECKPOINT', /key "a" appears twice/],
  ['a shape whose element count overflows 64 bits', rawSafetensors(header({ dtype: 'F32', shape: [4294967296, 4294967296], data_offsets: [0, 0] })), 'E_CHECKPOINT', /more elements than fit in 64 bits/],
  ['a header nested deeper than a header can be', rawSafetensors('{"a": ' + '['.repeat(20) + ']'.repeat(20) + '}'), 'E_CHECKPOINT', /nested more than 8 deep/],
  ['an unknown dtype', rawSafetensors(header({ dtype: 'F8_E9', shape: [1], data_offsets: [0, 4] }), f32(1)), 'E_DTYPE', /"transformer\.wte\.weight": unknown dtype "F8_E9"/],
  ['data offsets out of range', rawSafetensors(header({ dtype: 'F32', shape: [4], data_offsets: [0, 16] }), f32(2)), 'E_CHECKPOINT', /"transformer\.wte\.weight": data_offsets \[0, 16\] out of range/],
  ['begin after end', rawSafetensors(header({ dtype: 'F32', shape: [1], data_offsets: [8, 4] }), f32(2)), 'E_CHECKPOINT', /out of range/],
  [
    'overlapping tensors',
    rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)),
    'E_CHECKPOINT',
    /"a" and "b" overlap/,
  ],
  ['a byte size that does not match the shape', rawSafetensors(header({ dtype: 'F32', shape: [3], data_offsets: [0, 8] }), f32(2)), 'E_CHECKPOINT', /holds 8 bytes but F32\[3\] needs 12/],
  ['an entry without data_offsets', rawSafetensors(header({ dtype: 'F32', shape: [1] }), f32(1)), 'E_CHECKPOINT', /needs dtype, shape and data_offsets/],
];
for (const [name, bytes, code, message] of cases) {
  test(`bad checkpoint: ${name} gives ${code}`, async (t) => {
    const e = await loadWithWeights(bytes);
    t.is(e.code, code);
    t.regex(e.message, message);
    t.regex(e.message, /model\.safetensors/, 'the message names the file');
    // The same file read directly gives the same code.
    const file = path.join(tempDir(), 'bad.safetensors');
    fs.writeFileSync(file, bytes);
    t.is(await codeOf(readSafetensors(file)), code);
  });
}

test('a tensor the config needs but the checkpoint lacks gives E_MISSING_TENSOR naming it', async (t) => {
  const all = await readSafetensors(path.join(dir, 'model.safetensors'));
  const kept = Object.entries(all.tensors).filter(([name]) => name !== 'transformer.h.1.mlp.c_fc.bias');
  const out = path.join(tempDir(), 'm.safetensors');
  await writeSafetensors(out, kept.map(([name, raw]) => ({ name, ...raw })));
  const e = await loadWithWeights(fs.readFileSync(out));
  t.is(e.code, 'E_MISSING_TENSOR');
  t.regex(e.message, /transformer\.h\.1\.mlp\.c_fc\.bias/);
});

test('a shape that does not match the config gives E_SHAPE naming tensor and shapes', async (t) => {
  const copy = copyDir(dir);
  const config = JSON.parse(fs.readFileSync(path.join(copy, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(copy, 'config.json'), JSON.stringify({ ...config, n_inner: 100 }));
  const e = await t.throwsAsync(Model.load(copy));
  t.is((e as { code?: string }).code, 'E_SHAPE');
  t.regex(e!.message, /transformer\.h\.0\.mlp\.c_fc\.weight" has shape \[32, 128\] but the config needs \[32, 100\]/);
});

test('a sharded index naming a tensor its shard lacks gives E_MISSING_TENSOR', async (t) => {
  const copy = copyDir(dir);
  fs.renameSync(path.join(copy, 'model.safetensors'), path.join(copy, 'part.safetensors'));
  fs.writeFileSync(path.join(copy, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'not.there': 'part.safetensors' } }));
  const e = await t.throwsAsync(Model.load(copy));
  t.is((e as { code?: string }).code, 'E_MISSING_TENSOR');
  t.regex(e!.message, /part\.safetensors: no tensor "not\.there"/);
});

const configCases: Array<[string, (c: Record<string, unknown>) => Record<string, unknown> | string | null, RegExp]> = [
  ['a missing config.json', () => null, /config\.json is missing/],
  ['a config.json that is not JSON', () => '{"model_type": ', /not JSON/],
  ['an unknown model_type', (c) => ({ ...c, model_type: 'bert' }), /unknown model_type "bert" \(known: gpt2, gpt_neox, llama, mamba, mistral, qwen2\)/],
  ['no model_type', ({ model_type: _, ...c }) => c, /field "model_type" is required/],
  ['a field of the wrong type', (c) => ({ ...c, n_layer: '2' }), /field "n_layer" must be a positive integer/],
  ['heads that do not divide the hidden size', (c) => ({ ...c, n_head: 5 }), /field "n_embd" \(32\) must be divisible by n_head \(5\)/],
  // Parsed with a depth limit: 100,000 levels crashed the process (a recursive dump on a worker's stack).
  ['a config nested 100,000 deep', (c) => `{"model_type": "gpt2", "x": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`, /nested more than 64 deep/],
  ['a key given twice', () => '{"model_type": "gpt2", "n_layer": 2, "n_layer": 3}', /key "n_layer" appears twice/],
  // Sizes are bounded by what the checkpoint holds before anything is listed or allocated.
  ['a million layers', (c) => ({ ...c, n_layer: 1_000_000 }), /"n_layer" is 1000000, more than the checkpoint's \d+ tensors/],
  ['a hidden size of 1e9', (c) => ({ ...c, n_embd: 1e9 }), /"n_embd" is 1000000000, more than the checkpoint's \d+ weights in all/],
  ['a vocabulary of 1e12', (c) => ({ ...c, vocab_size: 1e12 }), /"vocab_size" is 1000000000000, more than/],
];
for (const [name, edit, message] of configCases) {
  test(`bad config: ${name} gives E_CONFIG`, async (t) => {
    const copy = copyDir(dir);
    const file = path.join(copy, 'config.json');
    const edited = edit(JSON.parse(fs.readFileSync(file, 'utf8')));
    if (edited === null) fs.rmSync(file);
    else fs.writeFileSync(file, typeof edited === 'string' ? edited : JSON.stringify(edited));
    const e = await t.throwsAsync(Model.load(copy));
    t.is((e as { code?: string }).code, 'E_CONFIG');
    t.regex(e!.message, message);
  });
}

test('other bad arguments get their codes and the process carries on', async (t) => {
  t.is(await codeOf(Model.load(dir, { device: 'cuda' })), 'E_DEVICE');
  t.is(await codeOf(Model.load(dir, { device: 'tpu' as never })), 'E_DEVICE');
  t.is(await codeOf(Model.load(dir, { dtype: 'int8' as never })), 'E_ARG');
  t.is(await codeOf(Model.load(path.join(dir, 'nope'))), 'E_NOT_FOUND');
  t.is(await codeOf(Model.load(path.join(dir, 'config.json'))), 'E_NOT_FOUND');
  t.is(await codeOf(Model.load('random:gpt9-huge')), 'E_NOT_FOUND');
  const m = await Model.load(dir);
  t.is(await codeOf(m.logits([[1, 2, 999]])), 'E_RANGE');
  t.is(await codeOf(m.logits([[1, -1]])), 'E_RANGE');
  t.is(await codeOf(() => m.logits([])), 'E_ARG');
  t.is(await codeOf(m.logits([[1.5]])), 'E_ARG');
  t.is(await codeOf(m.generate('x', { maxNewTokens: 2000 })), 'E_RANGE');
  t.is(await codeOf(m.generate('x', { maxNewTokens: -1 })), 'E_ARG');
  t.is((await m.logits('still alive')).shape[0], 1);
  m.dispose();
});

test('a corrupt tokenizer.json gives E_TOKENIZER; a missing one only disables text input', async (t) => {
  const bad = copyDir(dir);
  fs.writeFileSync(path.join(bad, 'tokenizer.json'), '{ nope');
  t.is(await codeOf(Model.load(bad)), 'E_TOKENIZER');
  const none = copyDir(dir);
  fs.rmSync(path.join(none, 'tokenizer.json'));
  const m = await Model.load(none);
  t.is((await m.logits([[1, 2, 3]])).shape[1], 3);
  t.is(await codeOf(() => m.logits('text')), 'E_TOKENIZER');
  m.dispose();
});
