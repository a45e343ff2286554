// The copy-bias pipeline: planted copying neurons come out on top, the CLI writes complete results,
// configs are validated, report.html renders without console errors, Ctrl-C leaves nothing behind.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint, Model, readNeuronSet, readSafetensors } from '../lib';
import { packageRoot } from '../lib/native';
import { copyBias, copyScores, CopyBiasResult, guardRails, randomNeuronsLike, verdicts } from '../lib/pipelines/copybias';
import { summaryLine } from '../lib/report/copybias';
import { pairedBootstrap, quantile } from '../lib/stats';
import { parseCopyBiasConfig } from '../lib/pipelines/copybias-config';
import { plantedCopyModel, PLANTED } from './fixtures-copy';
import { codeOf, tempDir } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
const isPlanted = (n: { layer: number; index: number }) => n.layer === 0 && n.index >= PLANTED && n.index < PLANTED + 10;
let planted: string, helpful: string, priorShift: string;
test.before(async () => {
  planted = await plantedCopyModel(path.join(tempDir(), 'planted'));
  helpful = await plantedCopyModel(path.join(tempDir(), 'helpful'), { prior: [1, 2, 3, 4], antiCopy: 2 });
  priorShift = await plantedCopyModel(path.join(tempDir(), 'prior-shift'), { prior: [2], priorBias: 2 });
});

test('planted copying neurons rank at the top and are chosen; pruning them helps on the proxy task, with intervals and a random control', async (t) => {
  // Pruned of its copying neurons, this model answers the digit missing from the examples.
  const model = await Model.load(helpful);
  // A classification file with multi-token answer words, scored as whole answers.
  const sst = path.join(tempDir(), 'sst.jsonl');
  fs.writeFileSync(sst, Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `film ${i}`, label: i % 2 })).join('\n'));
  const config = parseCopyBiasConfig({
    proxy: { attributionPrompts: 32, devPrompts: 40 },
    attribution: { steps: 8 },
    selection: { fractions: [0.02, 0.05, 0.1] },
    control: { draws: 3, resamples: 500 },
    evaluation: { tasks: ['vowel_count', 'next_letter', sst], shots: [4], n: 40, allAnswers: true, labelWords: { '0': 'bad', '1': 'good' } },
  });
  const r = await copyBias(model, config);
  const scores = copyScores(r.attribution);
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
  // The copying neurons of the answer digits 1-4 (the example labels) come first.
  t.true(order.slice(0, 4).every((i) => isPlanted({ layer: 0, index: i })), `top 4: ${order.slice(0, 4)}`);
  // Min-max normalisation puts the unplanted neurons (attribution ~0) at a common neutral level.
  const neutral = [...scores].sort((a, b) => a - b)[scores.length >> 1];
  t.true(scores[order[3]] - neutral > 5 * Math.abs(scores[order[4]] - neutral), order.slice(0, 6).map((i) => `${i}:${scores[i].toFixed(3)}`).join(' '));
  t.deepEqual(r.proxy.counts, [1, 2, 3, 4]);
  t.deepEqual(Object.keys(r.proxy.answers.dev).sort(), ['1', '2', '3', '4']);
  t.is(r.constantBaseline.accuracy, 0.25, 'balanced: a constant answer scores one in four');
  t.truthy(r.chosen);
  t.true(r.chosen!.accepted && r.chosen!.accuracy > r.constantBaseline.accuracy && r.chosen!.copyErrorRate < r.baselineDev.copyErrorRate);
  t.true(r.neurons.length > 0 && isPlanted(r.neurons[0]), JSON.stringify(r.neurons));
  t.true(Object.keys(r.chosen!.predictions).length >= 3, `answers after pruning vary: ${JSON.stringify(r.chosen!.predictions)}`);

  const copy = (e: typeof r.before) => e.scores.find((s) => s.task === 'vowel_count')!.copyErrorRate;
  t.true(copy(r.before) > 0.5, `before: ${copy(r.before)}`);
  t.true(copy(r.after) < copy(r.before), `after ${copy(r.after)} vs before ${copy(r.before)}`);
  // The proxy task is evaluated but not in the headline mean; the classification file counts.
  t.deepEqual(r.before.excludedFromMean, ['vowel_count']);
  t.is(r.before.mean[0].tasks, 2);
  t.like(r.before.scores.find((s) => s.task === 'sst'), { n: 40, shots: 4 });
  t.false(r.before.options.singleToken);
  const vowel = r.changes.scores.find((s) => s.task === 'vowel_count')!;
  t.true(vowel.accuracy.low > 0, `accuracy gain interval ${JSON.stringify(vowel.accuracy)}`);
  t.true(vowel.copyErrorRate.high < 0, `copy-error interval ${JSON.stringify(vowel.copyErrorRate)}`);
  t.true(vowel.accuracy.low <= vowel.accuracy.delta && vowel.accuracy.delta <= vowel.accuracy.high);

  // The control: three seeded draws with the chosen set's per-layer counts, different from it and each other.
  t.is(r.control.length, 3);
  for (const c of r.control) {
    t.is(c.neurons.length, r.neurons.length);
    t.true(c.neurons.every((n) => n.layer === 0));
    t.is(c.changes.scores.length, r.changes.scores.length);
  }
  t.notDeepEqual(r.control[0].neurons, r.control[1].neurons);
  t.deepEqual(randomNeuronsLike(r.neurons, r.attribution.dMlp, r.control[0].seed), r.control[0].neurons, 'reproducible from its seed');
  t.is(r.verdicts.length, 2, 'accuracy and copy errors at 4 shots');
  for (const v of r.verdicts) t.regex(v.text, /^4-shot (accuracy|copy-error rate): [+-]\d+\.\d points \(95% CI .*\), .* (outside|within) the range of 3 random draws/);
  t.true(r.verdicts.every((v) => typeof v.gain === 'boolean'));
  model.dispose();
});

test('the guard rails reject a fraction that only shifts the answer prior: nothing is pruned', async (t) => {
  // Pruned of its copying neurons, this model answers "2" to every prompt.
  const model = await Model.load(priorShift);
  const config = parseCopyBiasConfig({
    proxy: { attributionPrompts: 24, devPrompts: 40 },
    attribution: { steps: 4 },
    selection: { fractions: [0.05, 0.1, 0.2] },
    control: { draws: 2, resamples: 200 },
    evaluation: { tasks: ['vowel_count'], shots: [4], n: 20 },
  });
  const r = await copyBias(model, config);
  t.is(r.baselineDev.accuracy, 0, 'unpruned, it always copies');
  const shifted = r.devSearch.filter((p) => p.predictions['2'] === 40);
  t.true(shifted.length > 0, JSON.stringify(r.devSearch.map((p) => p.predictions)));
  for (const p of shifted) {
    t.is(p.accuracy, 0.25, 'right exactly when the answer is 2');
    t.true(p.copyErrorRate < r.baselineDev.copyErrorRate, 'fewer copies, so only the accuracy rule catches it');
    t.false(p.accepted);
    t.regex(p.rejected!, /does not beat always answering "\d" \(25\.0%\)/);
  }
  // The rule without guard rails (best dev accuracy) would have taken a prior shift.
  const best = r.devSearch.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
  t.true(best.accuracy > r.baselineDev.accuracy && shifted.includes(best));
  t.is(r.chosen, null);
  t.deepEqual(r.neurons, []);
  t.is(r.after, r.before);
  t.deepEqual(r.control, []);
  t.deepEqual(r.verdicts, []);
  model.dispose();
});

test('guard rails, random controls and bootstrap intervals on hand-computed cases', (t) => {
  const constant = { answer: '2', accuracy: 0.25 };
  t.is(guardRails({ accuracy: 0.5, copyErrorRate: 0.1 }, { copyErrorRate: 0.3 }, constant), undefined);
  t.regex(guardRails({ accuracy: 0.25, copyErrorRate: 0.1 }, { copyErrorRate: 0.3 }, constant)!, /does not beat/);
  t.regex(guardRails({ accuracy: 0.6, copyErrorRate: 0.3 }, { copyErrorRate: 0.3 }, constant)!, /do not fall below the unpruned 30\.0%/);

  const like = [{ layer: 0, index: 5 }, { layer: 2, index: 1 }, { layer: 2, index: 7 }, { layer: 2, index: 9 }];
  const drawn = randomNeuronsLike(like, 10, 42);
  t.deepEqual(drawn.map((n) => n.layer), [0, 2, 2, 2]);
  t.is(new Set(drawn.filter((n) => n.layer === 2).map((n) => n.index)).size, 3, 'distinct within a layer');
  t.deepEqual(randomNeuronsLike(like, 10, 42), drawn);
  t.notDeepEqual(randomNeuronsLike(like, 1000, 43), randomNeuronsLike(like, 1000, 42));

  // Two prompts, one unchanged and one fixed: the change is +0.5; resampled means are 0, 0.5 or 1.
  const iv = pairedBootstrap([{ before: [1, 0], after: [1, 1] }], { resamples: 4000, seed: 1 });
  t.is(iv.delta, 0.5);
  t.deepEqual([iv.low, iv.high], [0, 1]);
  // Every prompt fixed: no spread. Nothing changed: no spread.
  t.like(pairedBootstrap([{ before: [0, 0, 0], after: [1, 1, 1] }]), { delta: 1, low: 1, high: 1 });
  t.like(pairedBootstrap([{ before: [0, 1, 0], after: [0, 1, 0] }]), { delta: 0, low: 0, high: 0 });
  // Strata: the mean over tasks of each task's change; pairing matters (an unpaired bootstrap of this is wide).
  const paired = pairedBootstrap([{ before: [1, 0, 1, 0], after: [1, 0, 1, 0] }, { before: [0, 0], after: [1, 1] }], { seed: 3 });
  t.like(paired, { delta: 0.5, low: 0.5, high: 0.5 });
  // 100 prompts, 30 fixed and 10 broken: +0.2, and the interval is the textbook one within resampling noise.
  const before = [...Array(30).fill(0), ...Array(10).fill(1), ...Array(60).fill(0)];
  const after = [...Array(30).fill(1), ...Array(10).fill(0), ...Array(60).fill(0)];
  const wide = pairedBootstrap([{ before, after }], { resamples: 4000, seed: 9 });
  t.true(Math.abs(wide.delta - 0.2) < 1e-12);
  const se = Math.sqrt((0.4 - 0.2 ** 2) / 100); // sd of the per-prompt change (values -1, 0, 1) over sqrt(n)
  t.true(Math.abs(wide.low - (0.2 - 1.96 * se)) < 0.02 && Math.abs(wide.high - (0.2 + 1.96 * se)) < 0.02, JSON.stringify(wide));
  t.is(quantile([1, 2, 3, 4], 0.5), 2.5);

  // Verdicts: a gain needs an interval that excludes 0 and a change beyond every random draw.
  const interval = (delta: number, low: number, high: number) => ({ delta, low, high, level: 0.95, resamples: 100 });
  const changes = (acc: [number, number, number], copy: [number, number, number]) => ({
    scores: [], mean: [{ shots: 4, accuracy: interval(...acc), copyErrorRate: interval(...copy) }],
  });
  const draw = (acc: number, copy: number) => ({ seed: 0, neurons: [], after: undefined as never, changes: changes([acc, acc, acc], [copy, copy, copy]) });
  const [acc, copy] = verdicts(changes([0.2, 0.1, 0.3], [-0.1, -0.15, -0.05]), [draw(0.05, 0.01), draw(-0.05, -0.02)]);
  t.like(acc, { gain: true, outsideControl: true, controlRange: [-0.05, 0.05] });
  t.is(acc.text, '4-shot accuracy: +20.0 points (95% CI +10.0 to +30.0), an improvement (the interval excludes 0); outside the range of 2 random draws of the same size (-5.0 to +5.0 points), on the better side.');
  t.like(copy, { gain: true });
  const [within] = verdicts(changes([0.04, 0.01, 0.07], [0, 0, 0]), [draw(0.05, 0), draw(-0.05, 0)]);
  t.like(within, { gain: false, outsideControl: false });
  t.regex(within.text, /an improvement \(the interval excludes 0\); within the range/);
  const [noisy] = verdicts(changes([0.2, -0.01, 0.4], [0, 0, 0]), [draw(0, 0)]);
  t.like(noisy, { gain: false, outsideControl: true });
  t.regex(noisy.text, /not distinguishable from no change; outside .*on the better side/);
  const [worse] = verdicts(changes([-0.2, -0.3, -0.1], [0, 0, 0]), [draw(0, 0)]);
  t.regex(worse.text, /a deterioration .*on the worse side/);
  t.is(verdicts(changes([0.2, 0.1, 0.3], [0, 0, 0]), [])[0].gain, false, 'no control, no claim');
  t.throws(() => pairedBootstrap([{ before: [1], after: [1, 0] }]), { message: /must pair up/ });
});

test('CLI: copybias writes complete results from a YAML config with flag overrides; report.html renders cleanly', async (t) => {
  const dir = tempDir();
  const configFile = path.join(dir, 'config.yaml');
  fs.writeFileSync(configFile, 'proxy:\n  attributionPrompts: 16\n  devPrompts: 16\nattribution:\n  steps: 4\ntaskVectors:\n  n: 6\n  devN: 4\nevaluation:\n  tasks: [vowel_count, to_upper]\n  shots: [1, 4]\n  n: 10\n');
  const out = path.join(dir, 'out');
  const r = spawnSync(process.execPath, [cli, 'copybias', helpful, '--out', out, '--config', configFile, '--n', '12', '--fractions', '0.03,0.1', '--draws', '2', '--task-vectors', '--save-model'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /before:\n[\s\S]*after:\n[\s\S]*4-shot accuracy: [\s\S]*report: .*report\.html/);
  t.deepEqual(fs.readdirSync(out).sort(), ['attributions.safetensors', 'model', 'neurons.json', 'predictions.jsonl', 'report.html', 'results.json']);
  t.deepEqual(fs.readdirSync(dir).sort(), ['config.yaml', 'out'], 'no temporary folder left');

  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  t.deepEqual(Object.keys(results).sort(), ['attribution', 'config', 'control', 'environment', 'evaluation', 'model', 'proxy', 'selection', 'taskVectors', 'timings', 'verdicts']);
  t.like(results.config, {
    seed: 0,
    proxy: { shots: 4, attributionPrompts: 16, devPrompts: 16 },
    attribution: { steps: 4, rule: 'riemann_right', positions: 'last', layers: null, memoryBudgetMB: 2048 },
    selection: { fractions: [0.03, 0.1], layerRanges: null, full: false },
    evaluation: { tasks: ['vowel_count', 'to_upper'], shots: [1, 4], n: 12, dataDir: null, batchSize: 32, allAnswers: false, labelWords: {} },
    control: { draws: 2, resamples: 2000 },
    taskVectors: { enabled: true, shots: 4, n: 6, devN: 4, layers: null },
  });
  for (const when of ['before', 'after']) {
    const tv = results.taskVectors[when];
    t.deepEqual(tv.tasks.map((x: { task: string }) => x.task), ['to_upper'], 'the proxy task is not a task-vector task');
    t.is(tv.tasks[0].perLayer.length, 1);
    t.is(tv.tasks[0].icl.n, 6);
  }
  t.regex(r.stdout, /task vectors before pruning:\n[\s\S]*task vectors after pruning:/);
  t.is(results.selection.search.length, 2);
  t.is(results.evaluation.before.scores.length, 4);
  t.is(results.evaluation.after.scores.length, 4);
  for (const key of ['attribution', 'dev-search', 'eval-before', 'eval-after', 'control', 'total']) t.is(typeof results.timings[key], 'number', key);
  t.like(results.selection.constantBaseline, { accuracy: 0.25 });
  t.true(results.selection.search.every((p: { predictions: object; accepted: boolean }) => typeof p.predictions === 'object' && typeof p.accepted === 'boolean'));
  t.is(results.control.length, 2);
  t.is(results.evaluation.changes.scores.length, 4);
  t.deepEqual(Object.keys(results.evaluation.changes.mean[0].accuracy).sort(), ['delta', 'high', 'level', 'low', 'resamples']);
  t.is(results.verdicts.length, 4);
  const predictions = fs.readFileSync(path.join(out, 'predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.is(predictions.length, 4 * 48, 'before, after and two controls, 48 prompts each');
  t.deepEqual([...new Set(predictions.map((p) => p.condition))], ['before', 'after', 'control.0', 'control.1']);

  const neurons = await readNeuronSet(path.join(out, 'neurons.json'));
  t.is(neurons.neurons.length, results.selection.neurons);
  t.true(isPlanted(neurons.neurons[0]));
  t.is(neurons.method.name, 'copybias');
  const st = await readSafetensors(path.join(out, 'attributions.safetensors'));
  t.deepEqual(st.tensors.mean.shape, [1, 64]);
  t.truthy(st.tensors['prompt.15']);
  const pruned = await Model.load(path.join(out, 'model'));
  t.is(pruned.info.nLayers, 1);
  // The saved model is the pruned one: its chosen neurons' down-projection rows (GPT-2 Conv1D) are zero.
  const saved = await readSafetensors(path.join(out, 'model', 'model.safetensors'));
  const proj = new Float32Array(saved.tensors['transformer.h.0.mlp.c_proj.weight'].data.buffer.slice(saved.tensors['transformer.h.0.mlp.c_proj.weight'].data.byteOffset));
  const E = 32;
  t.true(neurons.neurons.length > 0);
  for (const n of neurons.neurons) t.true(proj.subarray(n.index * E, (n.index + 1) * E).every((x) => x === 0), `neuron ${n.index}`);
  t.false(proj.subarray(0, E).every((x) => x === 0) && proj.subarray(E, 2 * E).every((x) => x === 0), 'not everything is zero');
  pruned.dispose();

  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  t.regex(html, /<svg/);
  t.regex(html, /Dev search/);
  t.regex(html, /random draws of the same size/);
  t.regex(html, /Task vectors \(Hendel et al\. 2023\)/);
  t.regex(html, /vowel_count <small>\(proxy, not in the mean\)/);
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((c) => fs.existsSync(c));
  if (!chromium) {
    t.log('report.html not opened: Debian chromium is not installed');
    console.log('# report.html browser check skipped: no /usr/bin/chromium');
    return;
  }
  const profile = tempDir('chromium-');
  const page = spawnSync(
    chromium,
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', '--dump-dom', `file://${path.join(out, 'report.html')}`],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.is(page.status, 0, page.stderr.slice(-2000));
  t.regex(page.stdout, /Copy bias: /, 'the page rendered');
  t.deepEqual(page.stderr.split('\n').filter((l) => /:CONSOLE/.test(l)), [], 'no console messages');
});

test('CLI: copybias runs end to end on a tiny random Mamba, neurons at mixer.hook_post', async (t) => {
  const dir = tempDir();
  const model = path.join(dir, 'mamba');
  await initCheckpoint('mamba', model, { layers: 2, hidden: 32, seed: 5 });
  const out = path.join(dir, 'out');
  const r = spawnSync(
    process.execPath,
    [cli, 'copybias', model, '--out', out, '--attribution-prompts', '8', '--dev-prompts', '8', '--steps', '2', '--n', '6', '--fractions', '0.05',
      '--tasks', 'vowel_count', '--shots', '2'],
    { encoding: 'utf8' },
  );
  t.is(r.status, 0, r.stderr);
  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  t.is(results.model.modelType, 'mamba');
  t.is(results.model.neuronSite, 'mixer.hook_post');
  const neurons = await readNeuronSet(path.join(out, 'neurons.json'));
  t.is(neurons.site, 'mixer.hook_post');
  t.is(neurons.neurons.length, results.selection.neurons);
  const st = await readSafetensors(path.join(out, 'attributions.safetensors'));
  t.deepEqual(st.tensors.mean.shape, [2, 64]);
});

test('bad configs are E_CONFIG naming the field', async (t) => {
  const dir = tempDir();
  const cases: Array<[string, string, RegExp]> = [
    ['unknown.json', JSON.stringify({ proxy: { shotz: 3 } }), /proxy: Unrecognized key\(s\) in object: 'shotz'/],
    ['type.yaml', 'attribution:\n  steps: many\n', /attribution\.steps: Expected number, received string/],
    ['range.json', JSON.stringify({ selection: { fractions: [0] } }), /selection\.fractions\.0: Number must be greater than 0/],
    ['broken.yaml', 'proxy: [1,\n', /not YAML/],
  ];
  for (const [name, text, message] of cases) {
    fs.writeFileSync(path.join(dir, name), text);
    const r = spawnSync(process.execPath, [cli, 'copybias', planted, '--out', path.join(dir, 'o'), '--config', path.join(dir, name)], { encoding: 'utf8' });
    t.is(r.status, 1, name);
    t.regex(r.stderr, /^E_CONFIG: /, name);
    t.regex(r.stderr, message, name);
  }
  t.is(await codeOf(() => parseCopyBiasConfig({ evaluation: { shots: [] } })), 'E_CONFIG');
});

test('Ctrl-C stops copybias cleanly and leaves no output behind', async (t) => {
  const dir = tempDir();
  const out = path.join(dir, 'out');
  const child = spawn(process.execPath, [cli, 'copybias', 'random:gpt2-small', '--out', out, '--attribution-prompts', '256', '--steps', '32'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  await new Promise((resolve) => setTimeout(resolve, 6000));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.is(code, 1, stderr);
  t.regex(stderr, /E_ABORTED/);
  t.deepEqual(fs.readdirSync(dir), [], 'neither the output folder nor a temporary one remains');
});

test('the summary line names gains and harms beyond the random control', (t) => {
  const v = (metric: 'accuracy' | 'copyErrorRate', delta: number, interval: [number, number], range: [number, number], gain: boolean) =>
    ({ shots: 4, metric, delta, interval, controlRange: range, outsideControl: delta < range[0] || delta > range[1], gain, text: '' });
  const base = { chosen: { fraction: 0.1 }, control: [{}] } as never as CopyBiasResult;
  const line = (verdicts: ReturnType<typeof v>[]) => summaryLine({ ...base, verdicts } as CopyBiasResult);
  t.is(line([v('copyErrorRate', -0.14, [-0.17, -0.11], [-0.07, -0.05], true), v('accuracy', -0.08, [-0.1, -0.05], [-0.04, -0.01], false)]),
    'Pruning the copying neurons helps beyond the random control on: 4-shot copy errors. It hurts beyond the random control on: 4-shot accuracy.');
  t.is(line([v('accuracy', 0.01, [-0.01, 0.03], [-0.02, 0.02], false)]), 'Pruning the copying neurons gives no gain beyond the random control on any headline measure.');
  t.is(summaryLine({ ...base, chosen: null } as never), 'Nothing was pruned: no fraction passed the guard rails.');
});
