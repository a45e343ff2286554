// Fuzzing of the TypeScript entry points (fast-check) and the regression corpus: every input that
// once crashed, hung or answered wrongly (fuzz/regressions.jsonl) must now be refused with its code.
// Each property holds that a call either succeeds with a well-formed result or rejects with a
// NeuropruneError: never a crash, a plain TypeError or a result built from garbage.
// `npm run fuzz -- SECONDS` runs the properties for that long (NEUROPRUNE_FUZZ_SECONDS).
import test from 'ava';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { Model, NeuropruneError, readSafetensors } from '../lib';
import { copyDir, tempDir, tinyGpt2 } from './helpers';

const seconds = Number(process.env.NEUROPRUNE_FUZZ_SECONDS ?? 0);
/** Per property: a few seconds in npm test, an equal share of the asked time under npm run fuzz. */
const budget = (properties = 6) => (seconds > 0 ? { numRuns: 1e9, interruptAfterTimeLimit: (seconds * 1000) / properties } : { numRuns: 60, interruptAfterTimeLimit: 4000 });

let dir: string;
let model: Model;
test.before(async () => {
  dir = await tinyGpt2();
  model = await Model.load(dir);
});
test.after.always(() => model?.dispose());

/** Resolves when the call succeeded or failed with a NeuropruneError; rethrows anything else. */
async function coded<T>(call: () => Promise<T> | T): Promise<T | NeuropruneError> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof NeuropruneError) return error;
    throw new Error(`an untyped error escaped: ${(error as Error)?.stack ?? String(error)}`);
  }
}

const regressions = fs
  .readFileSync(path.join(__dirname, '..', 'fuzz', 'regressions.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as { kind: 'config' | 'safetensors' | 'attribute'; code: string; why: string; base64: string });

for (const [i, r] of regressions.entries()) {
  test(`regression ${i} (${r.kind}): ${r.why} -> ${r.code}`, async (t) => {
    const bytes = Buffer.from(r.base64, 'base64');
    let e: unknown;
    if (r.kind === 'attribute') {
      e = await coded(() => model.attribute(JSON.parse(bytes.toString('utf8'))));
    } else if (r.kind === 'safetensors') {
      const file = path.join(tempDir(), 'model.safetensors');
      fs.writeFileSync(file, bytes);
      e = await coded(() => readSafetensors(file));
    } else {
      const copy = copyDir(dir);
      fs.writeFileSync(path.join(copy, 'config.json'), bytes);
      e = await coded(() => Model.load(copy));
    }
    t.true(e instanceof NeuropruneError, 'refused');
    t.is((e as NeuropruneError).code as string, r.code, (e as Error).message);
  });
}

test.serial('property: any bytes as a safetensors file are read or refused with a code', async (t) => {
  const good = fs.readFileSync(path.join(dir, 'model.safetensors'));
  const file = path.join(tempDir(), 'f.safetensors');
  // Mutations of a real file (the interesting inputs) and plain random bytes.
  const mutated = fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), cut: fc.nat(), lengthDelta: fc.integer({ min: -16, max: 16 }) }).map(({ at, byte, cut, lengthDelta }) => {
    const b = Buffer.from(good.subarray(0, good.length - (cut % 64)));
    b[at % b.length] = byte;
    b.writeBigUInt64LE(b.readBigUInt64LE(0) + BigInt(lengthDelta), 0);
    return b;
  });
  await fc.assert(
    fc.asyncProperty(fc.oneof(mutated, fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a))), async (bytes) => {
      fs.writeFileSync(file, bytes);
      const r = await coded(() => readSafetensors(file));
      if (r instanceof NeuropruneError) return ['E_CHECKPOINT', 'E_DTYPE'].includes(r.code);
      // Read: every tensor's bytes match its shape and dtype.
      const sizes: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
      return Object.values(r.tensors).every((x) => x.data.length === x.shape.reduce((a, d) => a * d, 1) * sizes[x.dtype]);
    }),
    budget(),
  );
  t.pass();
});

test.serial('property: any JSON value in a config field loads or is refused with a code', async (t) => {
  const base = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const copy = copyDir(dir);
  const fields = [...Object.keys(base), 'rope_scaling', 'rope_parameters', 'layer_types', 'rotary_pct', 'sliding_window', 'tie_word_embeddings'];
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 3 }), fc.constantFrom('gpt2', 'llama', 'gpt_neox'), async (field, value, type) => {
      fs.writeFileSync(path.join(copy, 'config.json'), JSON.stringify({ ...base, model_type: type === 'gpt2' ? base.model_type : type, [field]: value }));
      const r = await coded(() => Model.load(copy));
      if (r instanceof NeuropruneError) return ['E_CONFIG', 'E_MISSING_TENSOR', 'E_SHAPE'].includes(r.code);
      const logits = await r.logits([1, 2, 3]);
      r.dispose();
      return logits.data.every(Number.isFinite);
    }),
    budget(),
  );
  t.pass();
});

test.serial('property: logits, activations and generate take any input or refuse it with a code', async (t) => {
  const V = model.info.vocabSize;
  const input = fc.oneof(
    fc.anything(),
    fc.array(fc.integer({ min: -2, max: V + 2 }), { maxLength: 12 }),
    fc.array(fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 8 }), { maxLength: 4 }),
    fc.string({ maxLength: 40 }),
    fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.constant(null)), { maxLength: 3 }),
  );
  await fc.assert(
    fc.asyncProperty(input, fc.anything(), async (x, layers) => {
      const a = await coded(() => model.logits(x as never));
      if (!(a instanceof NeuropruneError) && !a.data.every(Number.isFinite)) return false;
      const b = await coded(() => model.activations(x as never, { layers: layers as never }));
      if (!(b instanceof NeuropruneError) && b.layers.size === 0) return false;
      const g = await coded(() => model.generate(x as never, { maxNewTokens: 2 }));
      return g instanceof NeuropruneError || g !== undefined;
    }),
    budget(),
  );
  t.pass();
});

test.serial('property: attribute takes any options or refuses them with a code', async (t) => {
  const prompt = fc.oneof(fc.string({ maxLength: 8 }), fc.array(fc.oneof(fc.integer({ min: -1, max: 300 }), fc.double()), { maxLength: 5 }), fc.anything());
  const options = fc.record(
    {
      prompts: fc.oneof(fc.array(fc.record({ prompt, target: prompt, distractor: prompt, labels: fc.array(prompt, { maxLength: 2 }) }, { requiredKeys: ['prompt', 'target'] }), { maxLength: 2 }), fc.anything()),
      objective: fc.oneof(fc.constantFrom('prob', 'logprob', 'logit_diff', 'copy'), fc.anything()),
      steps: fc.oneof(fc.integer({ min: -2, max: 4 }), fc.double(), fc.anything()),
      layers: fc.oneof(fc.array(fc.integer({ min: -1, max: 3 }), { maxLength: 3 }), fc.anything()),
      positions: fc.oneof(fc.constantFrom('last', 'answer', 'all'), fc.anything()),
      memoryBudgetMB: fc.oneof(fc.double(), fc.constant(Infinity), fc.constant(64)),
    },
    { requiredKeys: ['prompts'] },
  );
  await fc.assert(
    fc.asyncProperty(options, async (o) => {
      const r = await coded(() => model.attribute(o as never));
      if (r instanceof NeuropruneError) return true;
      return r.prompts.every((p) => p.scores.every(Number.isFinite) && p.scores.length === r.layers.length * r.dMlp);
    }),
    budget(),
  );
  t.pass();
});

test.serial('property: prune takes any neuron list or refuses it with a code, and restore is exact', async (t) => {
  const digest = await model.weightsDigest();
  const neuron = fc.oneof(fc.record({ layer: fc.integer({ min: -1, max: 3 }), index: fc.integer({ min: -1, max: 130 }) }), fc.anything());
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.array(neuron, { maxLength: 4 }), fc.anything()), async (neurons) => {
      const r = await coded(() => model.prune(neurons as never));
      if (!(r instanceof NeuropruneError)) await model.restore(r);
      return (await model.weightsDigest()) === digest;
    }),
    budget(),
  );
  t.pass();
});

test.serial('property: the byte-level tokenizer round-trips any text and gives ids inside the vocabulary', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (text) => {
      const ids = model.tokenizer.encode(text);
      return ids.every((id) => Number.isInteger(id) && id >= 0 && id < model.info.vocabSize) && model.tokenizer.decode(ids) === text;
    }),
    budget(),
  );
  t.pass();
});
