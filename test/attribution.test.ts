// Integrated Gradients: the fast path equals the reference on every architecture, rule, objective and
// position mode; completeness; progress; cancellation; memory budget; files.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { initCheckpoint, runtime, layerSums, Model, OBJECTIVES, POSITIONS, readPromptsFile, readSafetensors, RULES } from '../lib';
import { packageRoot } from '../lib/native';
import { codeOf, float32, relDiff, tempDir } from './helpers';

// Byte-level tokenizer: first tokens are first bytes, so targets, distractors and labels start differently.
const prompts = [
  { prompt: 'example:dog->bird\nexample:sun->moon\nexample:hot->', target: 'cold', distractor: 'warm', labels: ['bird', 'moon'] },
  { prompt: 'Paris is in ', target: 'France!', distractor: 'Italy', labels: ['Spain', 'Italy'] },
];

const architectures = ['gpt2', 'llama', 'mistral', 'qwen2', 'gpt_neox', 'mamba'];
const models = new Map<string, Model>();
test.before(async () => {
  for (const arch of architectures) {
    const dir = path.join(tempDir(), arch);
    await initCheckpoint(arch, dir, { seed: 21, hidden: 32, heads: 4, layers: 3 });
    models.set(arch, await Model.load(dir));
  }
});

for (const arch of architectures) {
  for (const objective of OBJECTIVES) {
    for (const positions of POSITIONS) {
      test(`${arch}: fast equals reference, ${objective}, positions ${positions}`, async (t) => {
        const model = models.get(arch)!;
        const options = { prompts, objective, positions, steps: 5, layers: [0, 2] };
        const [fast, ref] = [await model.attribute({ ...options, method: 'fast' }), await model.attribute({ ...options, method: 'reference' })];
        t.true(relDiff(fast, ref) < 1e-4, `relative difference ${relDiff(fast, ref)}`);
        fast.prompts.forEach((p, b) => {
          p.fFull.forEach((f, l) => t.true(Math.abs(f - ref.prompts[b].fFull[l]) <= 1e-5 * Math.max(1, Math.abs(f))));
          p.fBaseline.forEach((f, l) => t.true(Math.abs(f - ref.prompts[b].fBaseline[l]) <= 1e-5 * Math.max(1, Math.abs(f))));
        });
        t.true(fast.prompts.some((p) => p.scores.some((v) => v !== 0)), 'scores are not all zero');
      });
    }
  }
}

for (const rule of RULES) {
  test(`every architecture: fast equals reference with ${rule}, a micro-batched budget, and every layer`, async (t) => {
    for (const arch of architectures) {
      const model = models.get(arch)!;
      // A Mamba row also keeps its scan ([d_inner, state] floats per position and layer): 1 MiB holds
      // no reference row of the longer prompt, 4 MiB still splits the fast path's rows.
      const options = { prompts, objective: 'logprob' as const, rule, steps: 4, memoryBudgetMB: arch === 'mamba' ? 4 : 1 };
      const fast = await model.attribute({ ...options, method: 'fast' });
      const ref = await model.attribute({ ...options, method: 'reference' });
      t.true(fast.microBatches > 1, 'the 1 MiB budget split the rows');
      t.deepEqual(fast.layers, [0, 1, 2]);
      t.true(relDiff(fast, ref) < 1e-4, `${arch}: ${relDiff(fast, ref)}`);
    }
  });
}

test('completeness: attributions sum to F(a) - F(0), the gap shrinking as steps grow', async (t) => {
  for (const arch of ['gpt2', 'gpt_neox', 'mamba']) {
    const model = models.get(arch)!;
    const gaps = [];
    for (const steps of [2, 8, 32]) {
      const r = await model.attribute({ prompts, objective: 'logprob', positions: 'answer', steps, rule: 'riemann_middle' });
      let gap = 0;
      r.prompts.forEach((p, b) => layerSums(r, b).forEach((sum, l) => (gap = Math.max(gap, Math.abs(sum - (p.fFull[l] - p.fBaseline[l]))))));
      gaps.push(gap);
    }
    t.true(gaps[2] < gaps[0], `${arch}: gaps ${gaps}`);
    t.true(gaps[2] < 1e-3, `${arch}: gap at 32 steps ${gaps[2]}`);
  }
});

test('progress reaches 100% and the model is unchanged', async (t) => {
  const model = models.get('gpt2')!;
  const digest = await model.weightsDigest();
  const seen: Array<[number, number]> = [];
  const r = await model.attribute({ prompts, steps: 3, memoryBudgetMB: 1, onProgress: (d, n) => seen.push([d, n]) });
  t.true(seen.length >= 2);
  t.deepEqual(seen[seen.length - 1], [r.rows, r.rows]);
  t.true(seen.every(([d], i) => i === 0 || d >= seen[i - 1][0]));
  t.is(r.rows, prompts.length * 3 * (3 + 1));
  t.is(await model.weightsDigest(), digest);
});

test('abort cancels between micro-batches with E_ABORTED and leaves the model as it was', async (t) => {
  const model = models.get('llama')!;
  const digest = await model.weightsDigest();
  const before = await model.logits('unchanged');
  const controller = new AbortController();
  const run = model.attribute({ prompts, steps: 16, memoryBudgetMB: 1, signal: controller.signal, onProgress: () => controller.abort() });
  t.is(await codeOf(run), 'E_ABORTED');
  t.is(await model.weightsDigest(), digest);
  t.deepEqual((await model.logits('unchanged')).data, before.data);
});

test('bad requests get clear codes', async (t) => {
  const model = models.get('gpt2')!;
  t.is(await codeOf(model.attribute({ prompts, memoryBudgetMB: 0.001 })), 'E_BUDGET');
  t.is(await codeOf(model.attribute({ prompts, layers: [5] })), 'E_RANGE');
  t.is(await codeOf(model.attribute({ prompts: [{ prompt: 'a', target: 'b' }], objective: 'copy' })), 'E_ARG');
  t.is(await codeOf(model.attribute({ prompts: [{ prompt: 'a', target: 'b' }], objective: 'logit_diff' })), 'E_ARG');
  t.is(await codeOf(() => model.attribute({ prompts, steps: 0 })), 'E_ARG');
  t.is(await codeOf(() => model.attribute({ prompts, rule: 'simpson' as never })), 'E_ARG');
  t.is(await codeOf(() => model.attribute({ prompts: [{ prompt: 'a', target: '' }] })), 'E_ARG');
  t.is(await codeOf(model.attribute({ prompts: [{ prompt: [1, 2], target: [999] }] })), 'E_RANGE');
});

test('CLI: attribute writes attributions.safetensors and summary.json', async (t) => {
  const dir = path.join(tempDir(), 'm');
  await initCheckpoint('gpt2', dir, { seed: 2 });
  const file = path.join(tempDir(), 'prompts.jsonl');
  fs.writeFileSync(file, prompts.map((p) => JSON.stringify(p)).join('\n') + '\n');
  const out = path.join(tempDir(), 'out');
  const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [cli, 'attribute', dir, '--prompts', file, '--out', out, '--objective', 'copy', '--steps', '4', '--layers', '0,1'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  t.like(summary.options, { objective: 'copy', steps: 4, layers: [0, 1], method: 'fast', rule: 'riemann_right', positions: 'last' });
  t.is(summary.model.id, dir);
  t.is(summary.environment.libtorch.version, runtime().torchVersion);
  t.is(summary.prompts, 2);
  t.true(summary.topNeurons.length > 0 && typeof summary.timing.ms === 'number');
  const st = await readSafetensors(path.join(out, 'attributions.safetensors'));
  t.deepEqual(st.tensors.mean.shape, [2, 256]);
  t.deepEqual(st.tensors['prompt.1'].shape, [2, 256]);
  t.deepEqual(st.tensors.f_full.shape, [2, 2]);
  const mean = float32(st.tensors.mean.data);
  const top = summary.topNeurons[0];
  t.is(mean[top.layer * 256 + top.index], Math.fround(top.score));

  const bad = path.join(tempDir(), 'bad.jsonl');
  fs.writeFileSync(bad, '{"prompt": "a", "target": "b"}\n{"prompt": "a"}\n');
  const e = spawnSync(process.execPath, [cli, 'attribute', dir, '--prompts', bad, '--out', path.join(tempDir(), 'x')], { encoding: 'utf8' });
  t.regex(e.stderr, /^E_PROMPT_FILE: .*bad\.jsonl:2: target: Required/);
  await t.throwsAsync(readPromptsFile(file.replace('.jsonl', '.missing')), { message: /cannot read/ });
});
