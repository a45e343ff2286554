// Circuits on the native core: the graph, the graph forward with ablated edges (no ablation is the
// normal forward on every architecture; ablating every edge is the ablation's own run), EAP and EAP-IG
// against real patching of each edge, the logit lens, typed errors and cancellation.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { edgeIndex, initCheckpoint, Model, nodeScores, readSafetensors, writeSafetensors } from '../lib';
import type { CircuitMetric, EdgeScores } from '../lib';
import { codeOf, float32, tempDir } from './helpers';

const variants: Array<{ name: string; arch: string; options?: object; config?: Record<string, unknown> }> = [
  { name: 'gpt2', arch: 'gpt2' },
  { name: 'llama', arch: 'llama', options: { kvHeads: 4 } },
  { name: 'llama-gqa', arch: 'llama', options: { kvHeads: 2 } },
  { name: 'mistral', arch: 'mistral', options: { kvHeads: 2 } }, // sliding window 4: the rows below cross it
  { name: 'qwen2', arch: 'qwen2', options: { kvHeads: 2 } }, // q/k/v biases
  { name: 'neox-parallel', arch: 'gpt_neox' }, // partial rotary
  { name: 'neox-sequential', arch: 'gpt_neox', config: { use_parallel_residual: false } },
];

const models = new Map<string, Model>();
test.before(async () => {
  for (const v of variants) {
    const dir = path.join(tempDir(), v.name);
    await initCheckpoint(v.arch, dir, { seed: 7, layers: 2, hidden: 32, heads: 4, ...v.options });
    if (v.config) {
      const file = path.join(dir, 'config.json');
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...v.config }));
    }
    models.set(v.name, await Model.load(dir));
  }
  const mamba = path.join(tempDir(), 'mamba');
  await initCheckpoint('mamba', mamba, { seed: 7, layers: 2, hidden: 32 });
  models.set('mamba', await Model.load(mamba));
});

const clean = [
  [72, 101, 108, 108, 111, 32, 119, 111],
  [84, 104, 101, 32, 99, 97, 116, 32],
  [80, 97, 114, 105, 115, 32, 105, 115],
];
const corrupted = [
  [72, 101, 108, 108, 112, 32, 119, 111],
  [84, 104, 101, 32, 100, 111, 103, 32],
  [82, 111, 109, 101, 115, 32, 105, 115],
];
const answer = [100, 110, 120];
const wrong = [101, 111, 121];

/** log_softmax of a vocabulary row. */
function logSoftmax(row: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  return Array.from(row, (x) => x - lse);
}

/** Plain-forward log p at the last position, per row, for each row's `tokens`. */
async function plainLogprobs(model: Model, rows: number[][], tokens: number[]): Promise<number[]> {
  const logits = await model.logits(rows, { lastOnly: true });
  return rows.map((_, b) => logSoftmax(logits.at(b, 0))[tokens[b]]);
}

function allKept(model: Model, value: number): Uint8Array {
  const g = model.circuitGraph();
  return new Uint8Array(g.writers.length * g.readers.length).fill(value);
}

test('graph: names, sizes and edges (GPT-2, 2 layers, 4 heads)', (t) => {
  const g = models.get('gpt2')!.circuitGraph();
  t.deepEqual(g.writers, ['input', 'a0.h0', 'a0.h1', 'a0.h2', 'a0.h3', 'm0', 'a1.h0', 'a1.h1', 'a1.h2', 'a1.h3', 'm1']);
  t.is(g.readers.length, 2 * (3 * 4 + 1) + 1);
  t.deepEqual(g.readers.slice(0, 4), ['a0.h0<q>', 'a0.h0<k>', 'a0.h0<v>', 'a0.h1<q>']);
  t.is(g.readers[12], 'm0');
  t.is(g.readers[g.readers.length - 1], 'logits');
  t.is(g.edges.length, g.writers.length * g.readers.length);
  const has = (w: string, r: string) => g.edges[edgeIndex(g, w, r)] === 1;
  t.true(has('input', 'a0.h2<k>'));
  t.false(has('a0.h0', 'a0.h1<q>'), 'heads of one layer do not read each other');
  t.true(has('a0.h0', 'm0'), 'sequential residual: the MLP reads its layer heads');
  t.false(has('m0', 'm0'));
  t.true(has('m0', 'a1.h3<v>'));
  t.false(has('a1.h0', 'a1.h0<q>'));
  t.false(has('m1', 'm1'));
  for (const w of g.writers) t.true(has(w, 'logits'));
  let count = 0;
  g.edges.forEach((e) => (count += e));
  // layer 0 heads: 12 readers x 1 writer; m0: 5; layer 1 heads: 12 x 6; m1: 10; logits: 11
  t.is(count, 12 * 1 + 5 + 12 * 6 + 10 + 11);
});

test('graph: parallel residual (GPT-NeoX) MLPs do not read their own layer heads; grouped-query models have q/k/v per query head', (t) => {
  const parallel = models.get('neox-parallel')!.circuitGraph();
  t.is(parallel.edges[edgeIndex(parallel, 'a0.h0', 'm0')], 0);
  t.is(parallel.edges[edgeIndex(parallel, 'input', 'm0')], 1);
  t.is(parallel.edges[edgeIndex(parallel, 'a0.h0', 'm1')], 1);
  const sequential = models.get('neox-sequential')!.circuitGraph();
  t.is(sequential.edges[edgeIndex(sequential, 'a0.h0', 'm0')], 1);
  const gqa = models.get('llama-gqa')!.circuitGraph();
  t.is(gqa.writers.length, 1 + 2 * (4 + 1));
  t.true(gqa.readers.includes('a1.h3<k>'));
  t.is(gqa.readers.length, 2 * (3 * 4 + 1) + 1);
});

test('Mamba has no circuit graph: E_SITE naming the architecture', async (t) => {
  const mamba = models.get('mamba')!;
  const error = t.throws(() => mamba.circuitGraph());
  t.is((error as { code?: string }).code, 'E_SITE');
  t.regex(error!.message, /mamba/i);
  t.is(await codeOf(mamba.edgeScores({ clean, corrupted, metric: { kind: 'logprob', answer }, method: 'eap' })), 'E_SITE');
});

for (const v of variants) {
  test(`${v.name}: with no edge ablated the graph forward is the normal forward`, async (t) => {
    const model = models.get(v.name)!;
    // Each row three times with different answers: three log-probabilities of each row's distribution.
    const rows = [...clean, ...clean, ...clean];
    const tokens = [...answer, ...wrong, 5, 250, 33];
    const run = await model.ablatedRun({ clean: rows, kept: allKept(model, 1), ablation: 'zero', metric: { kind: 'logprob', answer: tokens }, topK: 5 });
    const expected = await plainLogprobs(model, rows, tokens);
    run.metric.forEach((m, i) => t.true(Math.abs(m - expected[i]) < 1e-4, `row ${i}: ${m} vs ${expected[i]}`));
    const logits = await model.logits(clean, { lastOnly: true });
    clean.forEach((_, b) => {
      const row = Array.from(logits.at(b, 0));
      const best = row.indexOf(Math.max(...row));
      t.is(run.topTokens[b * 5], best);
      t.is(run.answerRank[b], row.filter((x) => x >= row[answer[b]]).length - 1);  // ties count against the answer
    });
    // The same through edgeScores' clean and corrupted runs.
    const metric: CircuitMetric = { kind: 'logit_diff', answer, wrong };
    const scores = await model.edgeScores({ clean, corrupted, metric, method: 'eap' });
    const diff = (lp: number[], rowsIn: number[][]) => lp.reduce((s, x, b) => s + x, 0) / rowsIn.length;
    const a = await plainLogprobs(model, clean, answer), w = await plainLogprobs(model, clean, wrong);
    t.true(Math.abs(scores.metricClean - (diff(a, clean) - diff(w, clean))) < 1e-4);
  });

  test(`${v.name}: ablating every edge with the corrupted run gives the corrupted run`, async (t) => {
    const model = models.get(v.name)!;
    const run = await model.ablatedRun({ clean, kept: allKept(model, 0), ablation: 'corrupted', corrupted, metric: { kind: 'logprob', answer } });
    const expected = await plainLogprobs(model, corrupted, answer);
    run.metric.forEach((m, i) => t.true(Math.abs(m - expected[i]) < 1e-4, `row ${i}: ${m} vs ${expected[i]}`));
    // kl to the clean run is then KL(clean || corrupted), and 0 with every edge kept.
    const kl = await model.ablatedRun({ clean, kept: allKept(model, 0), ablation: 'corrupted', corrupted, metric: { kind: 'kl', answer } });
    const none = await model.ablatedRun({ clean, kept: allKept(model, 1), ablation: 'corrupted', corrupted, metric: { kind: 'kl', answer } });
    kl.metric.forEach((m) => t.true(m > 1e-6));
    none.metric.forEach((m) => t.true(Math.abs(m) < 1e-5));
  });
}

test('zero ablation of every edge (Llama, no biases): every reader reads 0, so the logits are uniform', async (t) => {
  const model = models.get('llama')!;
  const run = await model.ablatedRun({ clean, kept: allKept(model, 0), ablation: 'zero', metric: { kind: 'logprob', answer } });
  run.metric.forEach((m) => t.true(Math.abs(m + Math.log(model.info.vocabSize)) < 1e-5, `${m}`));
  // Every logit ties: the answer ranks last (ties count against it), so no Hit@k credit.
  run.answerRank.forEach((r) => t.is(r, model.info.vocabSize - 1));
});

test('mean ablation over one row equals the corrupted ablation with that row', async (t) => {
  const model = models.get('gpt2')!;
  const kept = allKept(model, 1);
  const g = model.circuitGraph();
  kept[edgeIndex(g, 'a0.h1', 'm0')] = 0;
  kept[edgeIndex(g, 'm0', 'logits')] = 0;
  const metric: CircuitMetric = { kind: 'logprob', answer: [answer[0]] };
  const mean = await model.ablatedRun({ clean: [clean[0]], kept, ablation: 'mean', corrupted: [corrupted[0]], metric });
  const corr = await model.ablatedRun({ clean: [clean[0]], kept, ablation: 'corrupted', corrupted: [corrupted[0]], metric });
  t.true(Math.abs(mean.metric[0] - corr.metric[0]) < 1e-5);
  const plain = await model.ablatedRun({ clean: [clean[0]], kept: allKept(model, 1), ablation: 'zero', metric });
  t.true(Math.abs(mean.metric[0] - plain.metric[0]) > 1e-6, 'the ablation changed the output');
});

test('several masks in one ablatedRun equal one call per mask', async (t) => {
  const model = models.get('llama-gqa')!;
  const g = model.circuitGraph(), size = g.edges.length;
  const masks = [allKept(model, 1), allKept(model, 0), allKept(model, 1)];
  masks[2][edgeIndex(g, 'a0.h1', 'a1.h2<k>')] = 0;
  masks[2][edgeIndex(g, 'm0', 'logits')] = 0;
  const kept = new Uint8Array(3 * size);
  masks.forEach((m, k) => kept.set(m, k * size));
  const metric: CircuitMetric = { kind: 'logprob', answer };
  for (const ablation of ['corrupted', 'mean', 'zero'] as const) {
    const options = { clean, ablation, corrupted: ablation === 'zero' ? undefined : corrupted, metric, topK: 3 };
    // Every (mask, row) pair in one batch, and (a small budget) one pair per batch.
    const together = await model.ablatedRun({ ...options, kept });
    const split = await model.ablatedRun({ ...options, kept, memoryBudgetBytes: 150_000 });
    t.is(together.metric.length, 3 * clean.length);
    together.metric.forEach((m, i) => t.true(Math.abs(m - split.metric[i]) < 1e-5));
    for (let k = 0; k < 3; k++) {
      const alone = await model.ablatedRun({ ...options, kept: masks[k] });
      alone.metric.forEach((m, i) => t.true(Math.abs(m - together.metric[k * clean.length + i]) < 1e-5, `${ablation} mask ${k} row ${i}`));
      t.deepEqual(Array.from(alone.topTokens), Array.from(together.topTokens.subarray(k * clean.length * 3, (k + 1) * clean.length * 3)));
      t.deepEqual(Array.from(alone.answerRank), Array.from(together.answerRank.subarray(k * clean.length, (k + 1) * clean.length)));
    }
  }
  t.is(await codeOf(model.ablatedRun({ clean, kept: new Uint8Array(size + 1), ablation: 'zero', metric })), 'E_SHAPE');
});

/** Per edge: the real effect of ablating it alone with its corrupted value (mean over rows of the metric change). */
async function patchingEffects(model: Model, metric: CircuitMetric, corruptedRows: number[][]): Promise<Float32Array> {
  const g = model.circuitGraph();
  const options = { clean, ablation: 'corrupted' as const, corrupted: corruptedRows, metric };
  const mean = (m: Float32Array) => m.reduce((s, x) => s + x, 0) / m.length;
  const base = mean((await model.ablatedRun({ ...options, kept: allKept(model, 1) })).metric);
  const out = new Float32Array(g.edges.length);
  for (let i = 0; i < g.edges.length; i++) {
    if (!g.edges[i]) continue;
    const kept = allKept(model, 1);
    kept[i] = 0;
    out[i] = mean((await model.ablatedRun({ ...options, kept })).metric) - base;
  }
  return out;
}

/** Relative error ||score - effect|| / ||effect|| over the edges. */
function relError(scores: EdgeScores, effects: Float32Array): number {
  let num = 0, den = 0;
  scores.graph.edges.forEach((e, i) => {
    if (!e) return;
    num += (scores.scores[i] - effects[i]) ** 2;
    den += effects[i] ** 2;
  });
  return Math.sqrt(num / den);
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>, mask: Uint8Array): number {
  const xs: number[] = [], ys: number[] = [];
  mask.forEach((e, i) => e && (xs.push(a[i]), ys.push(b[i])));
  const mx = xs.reduce((s, x) => s + x, 0) / xs.length, my = ys.reduce((s, y) => s + y, 0) / ys.length;
  let sxy = 0, sxx = 0, syy = 0;
  xs.forEach((x, i) => ((sxy += (x - mx) * (ys[i] - my)), (sxx += (x - mx) ** 2), (syy += (ys[i] - my) ** 2)));
  return sxy / Math.sqrt(sxx * syy);
}

/** A GPT-2 whose token embeddings are scaled by `factor`: the learned positions dominate the stream, so a
 * changed token is a perturbation of relative size ~factor and the model is near-linear in it. */
async function scaledTokensGpt2(factor: number): Promise<Model> {
  const dir = path.join(tempDir(), `gpt2-wte-${factor}`);
  await initCheckpoint('gpt2', dir, { seed: 7, layers: 2, hidden: 32, heads: 4 });
  const file = path.join(dir, 'model.safetensors');
  const st = await readSafetensors(file);
  const tensors = Object.entries(st.tensors).map(([name, raw]) => {
    if (name !== 'transformer.wte.weight') return { name, ...raw };
    const w = float32(raw.data).map((x) => x * factor);
    return { name, ...raw, data: Buffer.from(w.buffer) };
  });
  await writeSafetensors(file, tensors, st.metadata);
  return Model.load(dir);
}

// One token changed per row (position 4): a small corruption.
const oneToken = clean.map((row) => row.map((x, i) => (i === 4 ? x + 1 : x)));

test('EAP is the first-order patching effect of each edge: its error shrinks in proportion to the corruption', async (t) => {
  const metric: CircuitMetric = { kind: 'logit_diff', answer, wrong };
  const errors: number[] = [];
  for (const factor of [0.1, 0.03]) {
    const model = await scaledTokensGpt2(factor);
    const effects = await patchingEffects(model, metric, oneToken);
    const eap = await model.edgeScores({ clean, corrupted: oneToken, metric, method: 'eap' });
    const corr = correlation(eap.scores, effects, eap.graph.edges);
    errors.push(relError(eap, effects));
    t.log(`token scale ${factor}: EAP relative error ${errors[errors.length - 1].toFixed(4)}, correlation ${corr.toFixed(5)}`);
    t.true(corr > 0.99, `correlation ${corr}`);
    model.dispose();
  }
  t.true(errors[1] < 0.05, `relative error ${errors[1]}`);
  // First order: the error is O(size of the corruption); 0.1 -> 0.03 cuts it about 3x.
  t.true(errors[1] < errors[0] / 2, `${errors[1]} vs ${errors[0]}`);
});

test('node scores (sum of a writer\'s edge scores) are the first-order effect of patching the node', async (t) => {
  const model = await scaledTokensGpt2(0.03);
  const metric: CircuitMetric = { kind: 'logit_diff', answer, wrong };
  const eap = await model.edgeScores({ clean, corrupted: oneToken, metric, method: 'eap' });
  const nodes = nodeScores(eap);
  const g = eap.graph, R = g.readers.length;
  const options = { clean, ablation: 'corrupted' as const, corrupted: oneToken, metric };
  const mean = (m: Float32Array) => m.reduce((s, x) => s + x, 0) / m.length;
  const base = mean((await model.ablatedRun({ ...options, kept: allKept(model, 1) })).metric);
  let num = 0, den = 0;
  for (let w = 0; w < g.writers.length; w++) {
    const kept = allKept(model, 1);
    kept.fill(0, w * R, (w + 1) * R);  // every edge out of writer w
    const effect = mean((await model.ablatedRun({ ...options, kept })).metric) - base;
    num += (nodes[w] - effect) ** 2;
    den += effect ** 2;
  }
  t.true(Math.sqrt(num / den) < 0.05, `relative error ${Math.sqrt(num / den)}`);
  model.dispose();
});

test('zero ablation of every edge (GPT-2): the logits read only the attention output biases, which belong to no head', async (t) => {
  const model = models.get('gpt2')!;
  const run = await model.ablatedRun({ clean, kept: allKept(model, 0), ablation: 'zero', metric: { kind: 'logprob', answer } });
  const st = await readSafetensors(path.join(model.info.dir!, 'model.safetensors'));
  const get = (name: string) => float32(st.tensors[name].data);
  const d = model.info.dModel, V = model.info.vocabSize;
  const x = new Float64Array(d);
  for (let l = 0; l < model.info.nLayers; l++) get(`transformer.h.${l}.attn.c_proj.bias`).forEach((b, i) => (x[i] += b));
  const mu = x.reduce((s, v) => s + v, 0) / d, varr = x.reduce((s, v) => s + (v - mu) ** 2, 0) / d;
  const gain = get('transformer.ln_f.weight'), shift = get('transformer.ln_f.bias'), wte = get('transformer.wte.weight');
  const h = Array.from(x, (v, i) => ((v - mu) / Math.sqrt(varr + 1e-5)) * gain[i] + shift[i]);
  const logits = Array.from({ length: V }, (_, v) => h.reduce((s, hi, i) => s + hi * wte[v * d + i], 0));
  const lp = logSoftmax(logits);
  run.metric.forEach((m, b) => t.true(Math.abs(m - lp[answer[b]]) < 1e-4, `row ${b}: ${m} vs ${lp[answer[b]]}`));
});

for (const name of ['gpt2', 'llama-gqa', 'mistral', 'neox-parallel', 'neox-sequential']) {
  test(`${name}: EAP-IG comes closer to each edge's patching effect as the steps grow`, async (t) => {
    const model = models.get(name)!;
    const metric: CircuitMetric = { kind: 'logit_diff', answer, wrong };
    const effects = await patchingEffects(model, metric, corrupted);
    const eap = await model.edgeScores({ clean, corrupted, metric, method: 'eap' });
    const ig1 = await model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: 1 });
    const ig20 = await model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: 20 });
    // Non-edges are exactly 0.
    eap.scores.forEach((s, i) => eap.graph.edges[i] || t.is(s, 0));
    // EAP is EAP-IG with one step (the gradient at the clean input).
    eap.scores.forEach((s, i) => t.true(Math.abs(s - ig1.scores[i]) < 1e-7));
    const [e1, e20] = [relError(eap, effects), relError(ig20, effects)];
    const corr20 = correlation(ig20.scores, effects, eap.graph.edges);
    t.log(`relative error: EAP ${e1.toFixed(4)}, EAP-IG(20) ${e20.toFixed(4)} (correlation ${corr20.toFixed(4)})`);
    t.true(e20 < e1 / 2, `EAP-IG(20) ${e20} vs EAP ${e1}`);
    t.true(e20 < 0.25 && corr20 > 0.95, `EAP-IG(20) relative error ${e20}, correlation ${corr20}`);
    t.true(Math.abs(eap.metricCorrupted - eap.metricClean) > 1e-4, 'the corruption changes the metric');
  });
}

for (const name of ['gpt2', 'llama-gqa', 'neox-parallel']) {
  test(`${name}: EAP-IG completeness: the input node's score tends to M(corrupted) - M(clean) as the steps grow`, async (t) => {
    // Every reader reads the input embedding directly, so the input row of the scores is
    // (e~ - e) . mean_k dM/de(e_k): a Riemann sum of the path integral M(e~) - M(e), error O(1/m).
    const model = models.get(name)!;
    const metric: CircuitMetric = { kind: 'logit_diff', answer, wrong };
    const errors: number[] = [];
    let change = 0;
    for (const steps of [4, 64]) {
      const r = await model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps });
      change = r.metricCorrupted - r.metricClean;
      errors.push(Math.abs(nodeScores(r)[0] - change));
    }
    t.log(`M(corrupted) - M(clean) = ${change.toExponential(3)}; error at m = 4: ${errors[0].toExponential(2)}, m = 64: ${errors[1].toExponential(2)}`);
    t.true(errors[1] < 0.02 * Math.abs(change), `${errors[1]} vs ${change}`);
    t.true(errors[1] < errors[0] / 4);
  });
}

test('micro-batching to a small memory budget gives the same scores', async (t) => {
  const model = models.get('llama-gqa')!;
  const metric: CircuitMetric = { kind: 'logprob', answer };
  const whole = await model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: 4 });
  const progress: Array<[number, number]> = [];
  const tiny = await model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: 4, memoryBudgetBytes: 600_000, onProgress: (d, n) => progress.push([d, n]) });
  t.true(tiny.microBatches > whole.microBatches, `${tiny.microBatches} vs ${whole.microBatches}`);
  let max = 0, scale = 0;
  whole.scores.forEach((s, i) => ((max = Math.max(max, Math.abs(s - tiny.scores[i]))), (scale = Math.max(scale, Math.abs(s)))));
  t.true(max < 1e-5 * scale + 1e-7, `max diff ${max} vs scale ${scale}`);
  t.deepEqual(progress[progress.length - 1], [12, 12]);
  t.is(await codeOf(model.edgeScores({ clean, corrupted, metric, method: 'eap', memoryBudgetBytes: 1000 })), 'E_BUDGET');
});

test('kl: EAP scores vanish at the clean run, EAP-IG does not', async (t) => {
  const model = models.get('gpt2')!;
  const metric: CircuitMetric = { kind: 'kl', answer };
  const eap = await model.edgeScores({ clean, corrupted, metric, method: 'eap' });
  const ig = await model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: 5 });
  t.true(Math.abs(eap.metricClean) < 1e-6);
  t.true(eap.metricCorrupted > 0);
  const largest = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  t.true(largest(ig.scores) > 1e-8);
  t.true(largest(eap.scores) < 1e-3 * largest(ig.scores), `${largest(eap.scores)} vs ${largest(ig.scores)}`);
});

test('logit lens: per row and writer the answer rank; the input writer is the last token read through norm and unembedding', async (t) => {
  const model = models.get('llama')!;
  const lens = await model.logitLens({ clean, answer });
  const W = lens.graph.writers.length;
  t.is(lens.ranks.length, clean.length * W);
  lens.ranks.forEach((r) => t.true(r >= 0 && r < model.info.vocabSize));
  t.true(new Set(lens.ranks).size > 1, 'writers disagree');
  // Llama has no position embeddings: writer `input` at the last position is the last token's embedding.
  const st = await readSafetensors(path.join(model.info.dir!, 'model.safetensors'));
  const embed = float32(st.tensors['model.embed_tokens.weight'].data), gain = float32(st.tensors['model.norm.weight'].data);
  const unembed = float32(st.tensors['lm_head.weight'].data);
  const d = model.info.dModel, V = model.info.vocabSize, eps = 1e-6;
  clean.forEach((row, b) => {
    const e = embed.subarray(row[row.length - 1] * d, (row[row.length - 1] + 1) * d);
    const rms = Math.sqrt(e.reduce((s, x) => s + x * x, 0) / d + eps);
    const h = Array.from(e, (x, i) => (x / rms) * gain[i]);
    const logits = Array.from({ length: V }, (_, v) => h.reduce((s, x, i) => s + x * unembed[v * d + i], 0));
    t.is(lens.ranks[b * W], logits.filter((x) => x >= logits[answer[b]]).length - 1, `row ${b}`);
  });
});

test('bfloat16: the graph forward is the normal forward to bfloat16 precision, and edges score', async (t) => {
  const dir = path.join(tempDir(), 'llama-bf16');
  await initCheckpoint('llama', dir, { seed: 7, layers: 2, hidden: 32, heads: 4, kvHeads: 2 });
  const model = await Model.load(dir, { dtype: 'bfloat16' });
  const run = await model.ablatedRun({ clean, kept: allKept(model, 1), ablation: 'zero', metric: { kind: 'logprob', answer } });
  const expected = await plainLogprobs(model, clean, answer);
  run.metric.forEach((m, i) => t.true(Math.abs(m - expected[i]) < 2e-2, `row ${i}: ${m} vs ${expected[i]}`));
  const scores = await model.edgeScores({ clean, corrupted, metric: { kind: 'logprob', answer }, method: 'eap-ig', steps: 3 });
  t.true(scores.scores.every(Number.isFinite));
  t.true(scores.scores.some((s) => s !== 0));
  model.dispose();
});

test('bad inputs are typed errors naming what is wrong', async (t) => {
  const model = models.get('gpt2')!;
  const metric: CircuitMetric = { kind: 'logit_diff', answer, wrong };
  let error = await model.edgeScores({ clean: [clean[0], clean[1].slice(1), clean[2]], corrupted, metric, method: 'eap' }).catch((e) => e);
  t.is(error.code, 'E_ARG');
  t.regex(error.message, /clean\[1\]/);
  error = await model.edgeScores({ clean, corrupted: [corrupted[0], corrupted[1], [1, 2]], metric, method: 'eap' }).catch((e) => e);
  t.regex(error.message, /corrupted\[2\]/);
  error = await model.edgeScores({ clean: [clean[0], [...clean[1].slice(1), 9999], clean[2]], corrupted, metric, method: 'eap' }).catch((e) => e);
  t.is(error.code, 'E_RANGE');
  error = await model.edgeScores({ clean, corrupted, metric: { kind: 'logit_diff', answer }, method: 'eap' }).catch((e) => e);
  t.is(error.code, 'E_ARG');
  t.regex(error.message, /metric\.wrong/);
  error = await model.edgeScores({ clean, corrupted, metric: { kind: 'logprob', answer: [1, 2] }, method: 'eap' }).catch((e) => e);
  t.regex(error.message, /metric\.answer/);
  t.is(await codeOf(model.edgeScores({ clean, corrupted, metric: { kind: 'logprob', answer: [1, 2, 300] }, method: 'eap' })), 'E_RANGE');
  t.is(await codeOf(model.edgeScores({ clean, corrupted, metric: { kind: 'nll' as 'kl', answer }, method: 'eap' })), 'E_ARG');
  t.is(await codeOf(model.edgeScores({ clean, corrupted, metric, method: 'acdc' as 'eap' })), 'E_ARG');
  t.is(await codeOf(model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: 0 })), 'E_ARG');
  t.is(await codeOf(model.ablatedRun({ clean, kept: new Uint8Array(3), ablation: 'zero', metric })), 'E_SHAPE');
  t.is(await codeOf(model.ablatedRun({ clean, kept: allKept(model, 1), ablation: 'corrupted', metric })), 'E_ARG');
  t.is(await codeOf(model.ablatedRun({ clean, kept: allKept(model, 1), ablation: 'mean', corrupted: [[1, 2]], metric })), 'E_ARG');
  t.is(await codeOf(model.logitLens({ clean, answer: [1] })), 'E_ARG');
});

test('cancellation settles with E_ABORTED and the model stays usable', async (t) => {
  const model = models.get('gpt2')!;
  const metric: CircuitMetric = { kind: 'logprob', answer };
  const controller = new AbortController();
  const error = await model
    .edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: 8, memoryBudgetBytes: 600_000, signal: controller.signal, onProgress: () => controller.abort() })
    .catch((e) => e);
  t.is(error.code, 'E_ABORTED');
  const aborted = new AbortController();
  aborted.abort();
  t.is(await codeOf(model.ablatedRun({ clean, kept: allKept(model, 1), ablation: 'zero', metric, signal: aborted.signal })), 'E_ABORTED');
  // Raised in the middle of an ablated run (checked per layer).
  const midway = new AbortController();
  const pending = model.ablatedRun({ clean: Array(40).fill(clean[0]), kept: allKept(model, 0), ablation: 'zero', metric: { kind: 'logprob', answer: Array(40).fill(1) }, signal: midway.signal });
  setImmediate(() => midway.abort());
  const code = await codeOf(pending).catch(() => 'none');
  t.true(code === 'E_ABORTED' || code === 'none', code);
  const after = await model.edgeScores({ clean, corrupted, metric, method: 'eap' });
  t.is(after.scores.length, after.graph.writers.length * after.graph.readers.length);
});

test('an exception in onProgress is what edgeScores rejects with', async (t) => {
  const model = models.get('gpt2')!;
  const error = await model
    .edgeScores({ clean, corrupted, metric: { kind: 'logprob', answer }, method: 'eap-ig', steps: 3, memoryBudgetBytes: 600_000, onProgress: () => { throw new Error('stop here'); } })
    .catch((e) => e);
  t.is(error.message, 'stop here');
});
