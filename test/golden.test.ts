// Numerics against Hugging Face transformers: test/golden/make_golden.py saves tiny random models of
// every architecture with transformers' own save_pretrained (the 5.x config schema: rope_parameters,
// layer_types; non-default theta, llama3 and linear scaling, per-layer sliding windows, GQA, tied and
// untied heads, partial rotary, parallel and sequential residual) and writes their logits and a plain
// autograd IG per layer. We load the same folders and must agree.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Model, readSafetensors } from '../lib';
import { codeOf, float32, maxAbs, maxAbsDiff, tempDir } from './helpers';
import { referencePython, ROOT } from './python';

interface GoldenCase { name: string; dir: string; model_type: string; layers: number; prompts: Array<{ ids: number[]; target: number }> }
interface Manifest { transformers: string; torch: string; steps: number; cases: GoldenCase[] }

const reference = referencePython(['torch', 'transformers', 'safetensors']);
const out = tempDir('neuroprune-golden-');
let manifest: Manifest | undefined;
let generationError = '';
if ('python' in reference) {
  const r = spawnSync(reference.python, [path.join(ROOT, 'test', 'golden', 'make_golden.py'), out], { encoding: 'utf8', timeout: 600_000 });
  if (r.status === 0) manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  else generationError = `make_golden.py failed (${r.status}): ${r.stderr.slice(-2000)}`;
}
test.after.always(() => fs.rmSync(out, { recursive: true, force: true }));

/** max |a - b| relative to max |b|. */
function relative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return maxAbsDiff(a, b) / Math.max(maxAbs(b), 1e-12);
}

if ('skip' in reference) {
  test.skip(`HF golden references: ${reference.skip}`, () => {});
} else if (!manifest) {
  test('HF golden references are generated', (t) => t.fail(generationError));
} else {
  const { cases, steps } = manifest;
  test('the goldens come from transformers 5 and cover every architecture we load', (t) => {
    t.log(`transformers ${manifest!.transformers}, torch ${manifest!.torch}`);
    t.is(manifest!.transformers.split('.')[0], '5');
    t.deepEqual([...new Set(cases.map((c) => c.model_type))].sort(), ['gpt2', 'gpt_neox', 'llama', 'mamba', 'mistral', 'qwen2']);
    const config = (name: string) => JSON.parse(fs.readFileSync(path.join(out, name, 'config.json'), 'utf8'));
    t.is(config('llama3-scaling').rope_parameters.rope_type, 'llama3');
    t.false('rope_theta' in config('llama3-scaling'));
    t.deepEqual(config('qwen2-layer-windows-tied').layer_types, ['full_attention', 'full_attention', 'sliding_attention', 'sliding_attention']);
  });

  for (const c of cases) {
    const dir = path.join(out, c.dir);
    test(`${c.name}: logits equal HF transformers' (rel < 1e-4)`, async (t) => {
      const model = await Model.load(dir);
      const golden = await readSafetensors(path.join(dir, 'golden.safetensors'));
      for (const [i, p] of c.prompts.entries()) {
        const got = await model.logits(p.ids);
        const rel = relative(got.data, float32(golden.tensors[`logits.${i}`].data));
        t.true(rel < 1e-4, `prompt ${i}: relative difference ${rel}`);
        t.log(`prompt ${i}: logits relative difference ${rel.toExponential(1)}`);
      }
      model.dispose();
    });

    for (const method of ['fast', 'reference'] as const) {
      test(`${c.name}: IG (${method}) equals an autograd IG loop in HF transformers`, async (t) => {
        const model = await Model.load(dir);
        const golden = await readSafetensors(path.join(dir, 'golden.safetensors'));
        const r = await model.attribute({
          prompts: c.prompts.map((p) => ({ prompt: p.ids, target: [p.target] })),
          objective: 'logprob', steps, rule: 'riemann_right', positions: 'last', method,
        });
        for (const [i, p] of r.prompts.entries()) {
          const ig = float32(golden.tensors[`ig.${i}`].data);
          const rel = relative(p.scores, ig);
          t.true(rel < 1e-4, `prompt ${i}: IG relative difference ${rel} (scale ${maxAbs(ig)})`);
          const fFull = float32(golden.tensors[`f_full.${i}`].data), fBaseline = float32(golden.tensors[`f_baseline.${i}`].data);
          t.true(maxAbsDiff(p.fFull, fFull) < 1e-4, `F(a): ${p.fFull} vs ${fFull}`);
          t.true(maxAbsDiff(p.fBaseline, fBaseline) < 1e-4, `F(0): ${p.fBaseline} vs ${fBaseline}`);
        }
        model.dispose();
      });
    }
  }

  // The same weights with the config rewritten in the 4.x schema load to the same logits.
  const legacy: Record<string, (config: any) => void> = {
    'llama3-scaling': (c) => { c.rope_theta = c.rope_parameters.rope_theta; const { rope_theta, ...rs } = c.rope_parameters; c.rope_scaling = rs; },
    'llama-linear-bias-headdim': (c) => { c.rope_theta = c.rope_parameters.rope_theta; c.rope_scaling = { type: 'linear', factor: c.rope_parameters.factor }; },
    'qwen2-layer-windows-tied': (c) => { c.rope_theta = c.rope_parameters.rope_theta; delete c.layer_types; },
    'neox-sequential': (c) => { c.rotary_emb_base = c.rope_parameters.rope_theta; c.rotary_pct = c.rope_parameters.partial_rotary_factor; },
  };
  for (const [name, rewrite] of Object.entries(legacy)) {
    test(`${name}: the 4.x config schema gives the same logits`, async (t) => {
      const dir = copyCase(name);
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      rewrite(config);
      delete config.rope_parameters;
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
      const model = await Model.load(dir);
      const golden = await readSafetensors(path.join(dir, 'golden.safetensors'));
      const ids = cases.find((c) => c.name === name)!.prompts[0].ids;
      t.true(relative((await model.logits(ids)).data, float32(golden.tensors['logits.0'].data)) < 1e-4);
      model.dispose();
    });
  }

  // What changes the math and is not read is refused, naming the key.
  const refused: Array<[string, string, (config: any) => void, RegExp]> = [
    ['llama3-scaling', 'an unknown rope type', (c) => (c.rope_parameters.rope_type = 'yarn'), /rope_parameters\.rope_type.*yarn/],
    ['llama3-scaling', 'a rope key the type does not read', (c) => (c.rope_parameters.mscale = 2), /rope_parameters\.mscale/],
    ['llama-gqa', 'rope_theta disagreeing with rope_parameters', (c) => (c.rope_theta = 500000), /rope_theta.*disagrees/],
    ['llama-gqa', 'a 4.x rope_scaling of an unknown type', (c) => { delete c.rope_parameters; c.rope_scaling = { type: 'dynamic', factor: 2 }; }, /rope_scaling\.type.*dynamic/],
    ['llama-gqa', 'partial rotary on Llama', (c) => (c.rope_parameters.partial_rotary_factor = 0.5), /partial_rotary_factor/],
    ['qwen2-layer-windows-tied', 'an unknown layer type', (c) => (c.layer_types[1] = 'chunked_attention'), /layer_types\[1\].*chunked_attention/],
    ['qwen2-layer-windows-tied', 'layer_types of the wrong length', (c) => c.layer_types.pop(), /layer_types/],
    ['mistral-window', 'a Mistral with mixed layer types', (c) => (c.layer_types = ['full_attention', 'sliding_attention']), /layer_types\[0\]/],
    ['llama-gqa', 'a sliding layer on Llama', (c) => { c.sliding_window = 4; c.layer_types = ['full_attention', 'sliding_attention']; }, /layer_types\[1\]/],
    ['llama-gqa', 'rope parameters that differ per layer type', (c) => {
      c.rope_parameters = { full_attention: { rope_type: 'default', rope_theta: 1e4 }, sliding_attention: { rope_type: 'default', rope_theta: 1e6 } };
    }, /rope_parameters.*differs/],
  ];
  for (const [name, what, mutate, message] of refused) {
    test(`${name}: ${what} is E_CONFIG naming the key`, async (t) => {
      const dir = copyCase(name);
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      mutate(config);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
      const error = await t.throwsAsync(Model.load(dir));
      t.is((error as any).code, 'E_CONFIG');
      t.regex(error!.message, message);
      t.is(await codeOf(Model.load(dir)), 'E_CONFIG');
    });
  }
}

/** A copy of a golden case inside `out` (removed with it), for a test to rewrite. */
function copyCase(name: string): string {
  const dir = fs.mkdtempSync(path.join(out, `${name}-copy-`));
  fs.cpSync(path.join(out, name), dir, { recursive: true });
  return dir;
}
