// The residual stream blocks.{l}.hook_resid_post on every architecture: read at every position in
// one forward (equal to a forward per prefix read at its last token, which is what relearn did),
// and Integrated Gradients over its dimensions (fast equals reference, completeness, cancellation).
import test from 'ava';
import path from 'node:path';
import { initCheckpoint, layerSums, Model, POSITIONS } from '../lib';
import { conceptScores, labelRows, LabelledRow, measureRows, unitsPerLayer } from '../lib/relearn/tokens';
import { TokenActivations } from '../lib/relearn/measure';
import { applyWordList } from '../lib/tasks/concept';
import { codeOf, maxAbsDiff, relDiff, tempDir } from './helpers';

// Mamba's blocks are x -> x + out_proj(post) too, so it has a residual stream at every block.
const architectures = ['gpt2', 'llama', 'mistral', 'qwen2', 'gpt_neox', 'mamba'];
const models = new Map<string, Model>();
test.before(async () => {
  for (const arch of architectures) {
    const dir = path.join(tempDir(), arch);
    await initCheckpoint(arch, dir, { seed: 9, hidden: 32, heads: 4, layers: 3 });
    models.set(arch, await Model.load(dir));
  }
});
test.after.always(() => {
  for (const model of models.values()) model.dispose();
});

const texts = applyWordList(['the capital of b is oslo.', 'x y', 'in d the capital is lima, not oslo.'], ['oslo', 'lima']);

/** The old way: one forward per prefix, each read at its last token (model.residuals). */
async function perPrefix(model: Model, rows: LabelledRow[]): Promise<TokenActivations> {
  const L = model.info.nLayers, per = unitsPerLayer(model, 'hook_resid_post'), units = L * per;
  const values = new Float32Array(rows.reduce((n, r) => n + r.ids.length, 0) * units);
  let t = 0;
  for (const row of rows) {
    const r = await model.residuals(row.ids.map((_, i) => row.ids.slice(0, i + 1)));
    for (let p = 0; p < row.ids.length; p++) for (let l = 0; l < L; l++) values.set(r.layers.get(l)!.subarray(p * per, (p + 1) * per), (t + p) * units + l * per);
    t += row.ids.length;
  }
  return { values, units, concept: rows.flatMap((r) => r.concept), tokenIds: rows.flatMap((r) => r.ids) };
}

for (const arch of architectures) {
  test.serial(`${arch}: hook_resid_post at every position in one forward equals a forward per prefix; its logits equal model.logits`, async (t) => {
    const model = models.get(arch)!;
    const rows = labelRows(model, texts, 128);
    t.true(new Set(rows.map((r) => r.ids.length)).size > 1, 'rows of different lengths: left padding is exercised');
    const all = await model.residuals(rows.map((r) => r.ids), { positions: 'all', withLogits: true });
    const [B, T, d] = all.shape;
    t.deepEqual([B, T, d], [3, Math.max(...rows.map((r) => r.ids.length)), model.info.dModel]);
    for (const [b, row] of rows.entries()) {
      const last = await model.residuals(row.ids.map((_, i) => row.ids.slice(0, i + 1)), { layers: [0, 2] });
      const pad = T - row.ids.length;
      for (const l of [0, 2]) {
        for (let p = 0; p < row.ids.length; p++) {
          const got = all.layers.get(l)!.subarray((b * T + pad + p) * d, (b * T + pad + p + 1) * d);
          const want = last.layers.get(l)!.subarray(p * d, (p + 1) * d);
          t.true(maxAbsDiff(got, want) < 1e-4, `row ${b} position ${p} layer ${l}: ${maxAbsDiff(got, want)}`);
        }
      }
    }
    const logits = await model.logits(rows.map((r) => r.ids));
    t.true(maxAbsDiff(all.logits!.data, logits.data) < 1e-4);

    // relearn's measurement: one forward per batch, equal to the per-prefix activations and to conceptScores.
    const both = await measureRows(model, rows, 'hook_resid_post', true, 2);
    const old = await perPrefix(model, rows);
    t.deepEqual([both.acts.units, both.acts.concept, both.acts.tokenIds], [old.units, old.concept, old.tokenIds]);
    t.true(maxAbsDiff(both.acts.values, old.values) < 1e-4, `activations differ by ${maxAbsDiff(both.acts.values, old.values)}`);
    const scores = await conceptScores(model, rows, 2);
    t.deepEqual(both.scores!.tokens, scores.tokens);
    t.true(Math.abs(both.scores!.loss.concept - scores.loss.concept) < 1e-5 && Math.abs(both.scores!.loss.control - scores.loss.control) < 1e-5);
    t.deepEqual([both.scores!.accuracy, both.scores!.hits], [scores.accuracy, scores.hits]);
  });
}

const prompts = [
  { prompt: 'example:dog->bird\nexample:hot->', target: 'cold' },
  { prompt: 'Paris is in ', target: 'France!' },
];

for (const arch of architectures) {
  test.serial(`${arch}: hook_resid_post IG fast equals reference at every position mode, micro-batched`, async (t) => {
    const model = models.get(arch)!;
    for (const positions of POSITIONS) {
      // Mamba keeps an SSM state per unit and position: its rows need about 2 MiB.
      const options = { prompts, objective: 'logprob' as const, positions, steps: 5, layers: [0, 1, 2], site: 'hook_resid_post' as const, memoryBudgetMB: arch === 'mamba' ? 4 : 1 };
      const fast = await model.attribute({ ...options, method: 'fast' });
      const ref = await model.attribute({ ...options, method: 'reference' });
      t.is(fast.dMlp, model.info.dModel);
      t.is(fast.prompts[0].scores.length, 3 * model.info.dModel);
      t.true(fast.microBatches > 1, 'several micro-batches');
      t.true(relDiff(fast, ref) < 1e-4, `${positions}: relative difference ${relDiff(fast, ref)}`);
      fast.prompts.forEach((p, b) => p.fBaseline.forEach((f, l) => t.true(Math.abs(f - ref.prompts[b].fBaseline[l]) < 1e-4, `${positions}: F(0) ${f} vs ${ref.prompts[b].fBaseline[l]}`)));
      fast.prompts.forEach((p, b) => p.fFull.forEach((f, l) => t.true(Math.abs(f - ref.prompts[b].fFull[l]) < 1e-4)));
      // Scaling the residual stream is not scaling one MLP's output: other scores than at mlp.hook_post.
      t.true(fast.prompts[0].scores.some((v) => v !== 0));
    }
  });
}

// Completeness. Mamba's blocks read the residual only through an RMSNorm, so F(alpha x) hardly moves
// until alpha nears sqrt(eps) / rms(x) (about 0.09 at layer 0 here) and then changes fast: the
// Riemann sums need thousands of steps there (measured: gap 0.02 at 64 steps, 1e-4 at 4096).
const completeness: Array<[string, number[], number]> = [['gpt2', [2, 8, 64], 2e-3], ['llama', [2, 8, 64], 2e-3], ['gpt_neox', [2, 8, 64], 2e-3], ['mamba', [64, 512, 4096], 1e-3]];
for (const [arch, steps, tolerance] of completeness) {
  test.serial(`${arch}: hook_resid_post IG is complete: the dimensions of a layer sum to F(x) - F(0), the gap shrinking as steps grow`, async (t) => {
    const model = models.get(arch)!;
    const gaps = [];
    for (const m of steps) {
      const r = await model.attribute({ prompts: arch === 'mamba' ? prompts.slice(0, 1) : prompts, objective: 'logprob', positions: arch === 'mamba' ? 'last' : 'answer', steps: m, rule: 'riemann_middle', site: 'hook_resid_post', memoryBudgetMB: 256 });
      let gap = 0;
      r.prompts.forEach((p, b) => layerSums(r, b).forEach((sum, l) => (gap = Math.max(gap, Math.abs(sum - (p.fFull[l] - p.fBaseline[l]))))));
      gaps.push(gap);
    }
    t.log(`gaps at ${steps} steps: ${gaps.map((g) => g.toExponential(2))}`);
    t.true(gaps[2] < gaps[0], `gaps ${gaps}`);
    t.true(gaps[2] < tolerance, `gap at ${steps[2]} steps ${gaps[2]}`);
  });
}

test.serial('hook_resid_post IG: abort settles with E_ABORTED and the model is unchanged; bad layers are E_RANGE', async (t) => {
  const model = models.get('llama')!;
  const digest = await model.weightsDigest();
  const controller = new AbortController();
  const run = model.attribute({ prompts, steps: 16, memoryBudgetMB: 1, site: 'hook_resid_post', signal: controller.signal, onProgress: () => controller.abort() });
  t.is(await codeOf(run), 'E_ABORTED');
  t.is(await model.weightsDigest(), digest);
  t.is(await codeOf(model.attribute({ prompts, site: 'hook_resid_post', layers: [3] })), 'E_RANGE');
  t.is(await codeOf(model.residuals('x', { withLogits: true } as never)), 'E_ARG');
});
