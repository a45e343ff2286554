// Relearning on a small model trained to predict a planted concept (the capital of a one-letter
// country, a fact only the weights hold):
// pruning its concept neurons frozen drops concept accuracy more than control accuracy and they stay
// exactly zero through retraining; free ones regrow; a killed run resumes to the same end.
import test from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensors } from '../lib/checkpoint';
import { initCheckpoint } from '../lib/checkpoint';
import { Model } from '../lib/model';
import { relearn, RelearnOptions } from '../lib/pipelines/relearn';
import { applyWordList } from '../lib/tasks/concept';
import { conceptScores, labelRows, measureRows, unitActivations } from '../lib/relearn/tokens';
import { Rng } from '../lib/tasks/random';
import { codeOf, float32, tempDir } from './helpers';
import { readNeuronSet } from '../lib/neurons';

const CAPITALS = [['b', 'oslo'], ['d', 'lima'], ['f', 'paris'], ['g', 'doha'], ['h', 'tokyo'], ['j', 'santiago'], ['k', 'cairo'], ['m', 'nairobi'], ['q', 'havana'], ['v', 'tehran'], ['w', 'madrid'], ['z', 'rome']];
const FRAMES = ['the capital of {c} is {x}.', 'in {c} the capital is {x}.'];

/** The capitals are the concept; the frame and the country letter are control. */
function plantedCorpus(n: number, seed: number) {
  const rng = new Rng(seed);
  const texts = Array.from({ length: n }, () => {
    const [country, capital] = rng.pick(CAPITALS);
    return rng.pick(FRAMES).replace('{c}', country).replace('{x}', capital);
  });
  return applyWordList(texts, CAPITALS.map(([, capital]) => capital));
}

// One trained model for every test in this file.
const trained = (async () => {
  const dir = path.join(tempDir(), 'init');
  await initCheckpoint('llama', dir, { layers: 2, hidden: 32, heads: 4, kvHeads: 4, mlp: 64, seed: 1 });
  const model = await Model.load(dir);
  await model.train({ samples: plantedCorpus(400, 1).map((t) => t.text), steps: 400, batchSize: 16, lr: 5e-3, warmup: 20 });
  const out = path.join(tempDir(), 'planted');
  await model.save(out);
  model.dispose();
  return out;
})();

const base = (out: string): RelearnOptions => ({
  corpus: plantedCorpus(300, 2), out, pruneFraction: 0.25, steps: 40, checkpointEvery: 20, batchSize: 16, lr: 3e-3, saliencyTop: 8, heldOut: 0.2, control: false,
});

test('frozen: concept accuracy drops and control accuracy does not, and pruned neurons stay exactly zero', async (t) => {
  const out = path.join(tempDir(), 'frozen');
  const { runs, results } = await relearn(await trained, { ...base(out), mode: 'frozen', ranking: 'ig' });
  const [before, pruned, ...after] = runs[0].checkpoints;
  t.is(before.phase, 'before');
  t.true(before.scores.accuracy.concept > 0.5, `the model learned the concept: ${before.scores.accuracy.concept}`);
  const conceptDrop = before.scores.accuracy.concept - pruned.scores.accuracy.concept;
  const controlDrop = before.scores.accuracy.control - pruned.scores.accuracy.control;
  // Measured here: concept 100% -> 89.7%, control 95.1% -> 95.3% (IG, 25% of the neurons).
  t.true(conceptDrop > 0.05 && controlDrop < 0.02, `concept drop ${conceptDrop}, control drop ${controlDrop}`);
  t.true(pruned.scores.loss.concept - before.scores.loss.concept > pruned.scores.loss.control - before.scores.loss.control);
  t.is(pruned.prunedMaxAbs, 0);
  t.deepEqual(after.map((c) => [c.step, c.prunedMaxAbs, c.prunedNorm]), [[20, 0, 0], [40, 0, 0]]);
  t.is(runs[0].pruned.length, 32);
  t.deepEqual(fs.readdirSync(out).sort(), ['neurons.json', 'report.html', 'results.json', 'saliency.safetensors']);
  const sal = await readSafetensors(path.join(out, 'saliency.safetensors'));
  t.deepEqual(sal.tensors.saliency.shape, [4, 2, 64]);
  t.is(results.runs[0].checkpoints.length, 4);
  t.false(fs.existsSync(`${out}.work`), 'the work folder goes once the outputs are written');
  const cosines = after[1].similarity.topCosine.filter((c): c is number => c !== null);
  t.true(cosines.length > 0 && cosines.every((c) => c >= -1 - 1e-9 && c <= 1 + 1e-9), 'embedding cosines of the top units');
  t.true(after[1].similarity.prunedCosine.every((c) => c === null), 'frozen pruned units have no top tokens');
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  t.true(html.includes('units per Jaccard bin') && html.includes('units per embedding-cosine bin'), 'both similarity histograms');
  t.is((html.match(/<svg/g) ?? []).length, 5, 'two accuracy curves, the heatmap and two histograms');
});

test('frozen weights are bit-exactly zero after training; free ones move', async (t) => {
  for (const kind of ['mlp', 'resid'] as const) {
    for (const frozen of [true, false]) {
      const model = await Model.load(await trained);
      const units = [{ layer: 0, index: 3 }, { layer: 1, index: 7 }];
      await model.pruneUnits(kind, units, { inputs: frozen });
      await model.train({ samples: plantedCorpus(64, 3).map((x) => x.text), steps: 10, batchSize: 8, lr: 1e-2, warmup: 1, frozen: frozen ? { kind, units } : undefined });
      const dir = path.join(tempDir(), 'saved');
      await model.save(dir);
      model.dispose();
      const w = (await readSafetensors(path.join(dir, 'model.safetensors'))).tensors;
      // MLP neuron 3 of layer 0: its down-projection column; residual dimension 3: the embeddings' column.
      const [name, cols, index] = kind === 'mlp' ? ['model.layers.0.mlp.down_proj.weight', 64, 3] : ['model.embed_tokens.weight', 32, 3];
      const values = float32(w[name].data);
      const column = Array.from({ length: values.length / cols }, (_, r) => values[r * cols + index]);
      const up = kind === 'mlp' ? float32(w['model.layers.1.mlp.up_proj.weight'].data).subarray(7 * 32, 8 * 32) : float32(w['model.layers.1.self_attn.o_proj.weight'].data).subarray(7 * 32, 8 * 32);
      if (frozen) {
        t.true(column.every((v) => Object.is(v, 0)), `${kind} frozen column is +0 everywhere`);
        t.true(Array.from(up).every((v) => Object.is(v, 0)), `${kind} frozen row is +0 everywhere`);
      } else {
        t.true(column.some((v) => v !== 0), `${kind} free column regrows`);
      }
    }
  }
});

test('free: pruned neurons come back to life during retraining', async (t) => {
  const { runs } = await relearn(await trained, { ...base(path.join(tempDir(), 'free')), mode: 'free' });
  const last = runs[0].checkpoints[runs[0].checkpoints.length - 1];
  t.is(runs[0].checkpoints[1].prunedNorm, 0);
  t.true(last.prunedNorm > 0, 'the output weights regrow');
});

test('the residual site with the control beside: seeded random draws, their band and the paired difference; the unit set says hook_resid_post and MLP edits refuse it', async (t) => {
  const out = path.join(tempDir(), 'resid');
  const { runs, results } = await relearn(await trained, { ...base(out), site: 'hook_resid_post', steps: 20, control: true, randomDraws: 2 });
  const set = await readNeuronSet(path.join(out, 'neurons.json'));
  t.is(set.site, 'hook_resid_post');
  t.deepEqual(set.neurons.map((n) => [n.layer, n.index]), runs[0].pruned.map((n) => [n.layer, n.index]));
  const model = await Model.load(await trained);
  t.is(await codeOf(model.prune(set)), 'E_SITE');
  t.is(await codeOf(model.scale(set, 0)), 'E_SITE');
  t.is(await codeOf(model.scale(set, 0, { site: 'mlp.hook_pre' })), 'E_SITE');
  model.dispose();
  t.deepEqual(runs.map((r) => [r.ranking, r.draw]), [['probeless', undefined], ['random', 0], ['random', 1]]);
  t.is(runs[0].pruned.length, 8);  // 25% of 32 dimensions
  t.notDeepEqual(runs[0].pruned, runs[1].pruned);
  t.notDeepEqual(runs[1].pruned, runs[2].pruned, 'each draw has its own sub-seed');
  t.is(runs[0].checkpoints[1].prunedMaxAbs, 0, 'pruned residual dimensions read 0 at every layer');
  // Per checkpoint: the draws' mean accuracy inside its interval, their range, and main minus random.
  const control = results.control!;
  t.deepEqual(control.map((p) => [p.step, p.phase]), runs[0].checkpoints.map((c) => [c.step, c.phase]));
  control.forEach((p, i) => {
    const c = p.concept!;
    const accuracies = runs.slice(1).map((r) => r.checkpoints[i].scores.accuracy.concept);
    t.true(Math.abs(c.random.mean - (accuracies[0] + accuracies[1]) / 2) < 1e-6, 'mean over draws');
    t.deepEqual([c.random.min, c.random.max], [Math.min(...accuracies), Math.max(...accuracies)].map((x) => Math.round(x * 1e6) / 1e6));
    t.true(c.random.low <= c.random.mean + 1e-9 && c.random.mean <= c.random.high + 1e-9);
    t.true(Math.abs(c.difference.delta - (runs[0].checkpoints[i].scores.accuracy.concept - c.random.mean)) < 1e-5);
    t.true(c.difference.low <= c.difference.delta + 1e-9 && c.difference.delta <= c.difference.high + 1e-9);
  });
  // Before pruning every run is the same model: no difference, and a zero-width interval.
  t.deepEqual([control[0].concept!.difference.delta, control[0].concept!.difference.low, control[0].concept!.difference.high], [0, 0, 0]);
  t.true(results.notes.control.includes('held-out tokens'));
  const sal = await readSafetensors(path.join(out, 'saliency.safetensors'));
  t.deepEqual(Object.keys(sal.tensors).sort(), ['saliency', 'saliency_random_0', 'saliency_random_1']);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  t.true(html.includes('random pruning (mean of 2, 95% band)') && html.includes('<polygon'), 'the random band beside the main curve');
});

test('ig ranking at hook_resid_post: the dimensions with the largest IG summed over layers are pruned', async (t) => {
  const out = path.join(tempDir(), 'resid-ig');
  const { runs } = await relearn(await trained, { ...base(out), site: 'hook_resid_post', ranking: 'ig', steps: 20 });
  t.is(runs[0].pruned.length, 8);
  // The same ranking by hand: the IG prompts relearn builds, scores summed over layers.
  const model = await Model.load(await trained);
  const rows = labelRows(model, base(out).corpus.slice(0, 60), 128);
  const prompts: Array<{ prompt: number[]; target: number[] }> = [];
  for (const row of rows) {
    for (let i = 1; i < row.ids.length; i++) {
      if (!row.concept[i] || row.concept[i - 1]) continue;  // one prompt per run of concept tokens
      let j = i;
      while (j < row.ids.length && row.concept[j]) j++;
      prompts.push({ prompt: row.ids.slice(0, i), target: row.ids.slice(i, j) });
    }
  }
  const r = await model.attribute({ prompts, objective: 'logprob', site: 'hook_resid_post', steps: 20 });
  model.dispose();
  // Accumulated as relearn does (float32), so that near-ties order the same.
  const mean = new Float32Array(2 * 32), dims = new Float32Array(32);
  for (const p of r.prompts) for (let u = 0; u < mean.length; u++) mean[u] += p.scores[u] / r.prompts.length;
  for (let u = 0; u < mean.length; u++) dims[u % 32] += mean[u];
  const top = Array.from(dims.keys()).sort((a, b) => dims[b] - dims[a]).slice(0, 8).sort((a, b) => a - b);
  t.deepEqual(runs[0].pruned.map((n) => n.index), top);
  t.true(runs[0].pruned.every((n) => n.layer === 0));
  t.is(runs[0].checkpoints[1].prunedMaxAbs, 0);
});

test('a run killed with SIGKILL resumes from its last checkpoint and ends as an uninterrupted one', async (t) => {
  const model = await trained;
  const outA = path.join(tempDir(), 'whole');
  const whole = await relearn(model, { ...base(outA), steps: 60 });
  const outB = path.join(tempDir(), 'killed');
  const options = { ...base(outB), steps: 60 };
  const script = `const { relearn } = require(${JSON.stringify(path.resolve(__dirname, '../lib/pipelines/relearn'))});
relearn(${JSON.stringify(model)}, ${JSON.stringify(options)}).then(() => process.exit(0));`;
  const child = spawn(process.execPath, ['--import=tsx', '-e', script], { stdio: 'ignore' });
  const state = path.join(`${outB}.work`, 'probeless', 'state.json');
  const killedAt = await new Promise<number>((resolve, reject) => {
    const poll = setInterval(() => {
      const step = fs.existsSync(state) ? JSON.parse(fs.readFileSync(state, 'utf8')).checkpoints.at(-1).step : -1;
      if (step >= 20) (clearInterval(poll), child.kill('SIGKILL'), resolve(step));
    }, 20);
    child.on('exit', (code) => (clearInterval(poll), code === 0 ? reject(new Error('finished before it was killed')) : undefined));
  });
  t.true(killedAt < 60);
  t.false(fs.existsSync(path.join(outB, 'results.json')), 'nothing written by the killed run');
  const resumed = await relearn(model, { ...options, resume: true });
  t.deepEqual(resumed.runs[0].checkpoints, whole.runs[0].checkpoints);
  t.deepEqual(Array.from(resumed.runs[0].saliency), Array.from(whole.runs[0].saliency));
});

test('one forward for activations and scores equals the two measured apart', async (t) => {
  const model = await Model.load('random:gpt2-tiny', { seed: 7 });
  const texts = applyWordList(['the capital of b is oslo.', 'in d the capital is lima, not oslo.', 'x'], ['oslo', 'lima']);
  const rows = labelRows(model, texts, 128);
  for (const site of ['mlp.hook_post', 'mlp.hook_pre'] as const) {
    const both = await measureRows(model, rows, site, true, 2);
    t.deepEqual(both.acts, await unitActivations(model, rows, site, 2));
    // Next-token scores come from the native log-softmax (float32), conceptScores' from JS (float64).
    const apart = await conceptScores(model, rows, 2);
    t.deepEqual([both.scores!.accuracy, both.scores!.tokens, both.scores!.hits], [apart.accuracy, apart.tokens, apart.hits]);
    t.true(Math.abs(both.scores!.loss.concept - apart.loss.concept) < 1e-5 && Math.abs(both.scores!.loss.control - apart.loss.control) < 1e-5);
  }
  model.dispose();
});
