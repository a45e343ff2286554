// The copy-bias pipeline: planted copying neurons come out on top, the CLI writes complete results,
// configs are validated, report.html renders without console errors, Ctrl-C leaves nothing behind.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint, Model, readNeuronSet, readSafetensors } from '../lib';
import { packageRoot } from '../lib/native';
import { copyBias, copyScores } from '../lib/pipelines/copybias';
import { parseCopyBiasConfig } from '../lib/pipelines/copybias-config';
import { plantedCopyModel, PLANTED } from './fixtures-copy';
import { codeOf, tempDir } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
const isPlanted = (n: { layer: number; index: number }) => n.layer === 0 && n.index >= PLANTED && n.index < PLANTED + 10;
let planted: string;
test.before(async () => {
  planted = await plantedCopyModel(path.join(tempDir(), 'planted'));
});

test('planted copying neurons rank at the top, are chosen, and pruning them cuts copy errors', async (t) => {
  const model = await Model.load(planted);
  const config = parseCopyBiasConfig({
    proxy: { attributionPrompts: 32, devPrompts: 32 },
    attribution: { steps: 8 },
    selection: { fractions: [0.02, 0.05, 0.1] },
    evaluation: { tasks: ['vowel_count', 'next_letter'], shots: [4], n: 30 },
  });
  const r = await copyBias(model, config);
  const scores = copyScores(r.attribution);
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a]);
  // The digits that are frequent example labels ('2' and '3' in the built-in word list) come first.
  t.true(order.slice(0, 2).every((i) => isPlanted({ layer: 0, index: i })), `top 2: ${order.slice(0, 2)}`);
  t.true(scores[order[0]] > 5 * scores[order[2]], 'well ahead of the unplanted neurons');
  t.true(r.neurons.length > 0 && isPlanted(r.neurons[0]), JSON.stringify(r.neurons));
  const copy = (e: typeof r.before) => e.scores.find((s) => s.task === 'vowel_count')!.copyErrorRate;
  t.true(copy(r.before) > 0.5, `before: ${copy(r.before)}`);
  t.true(copy(r.after) < copy(r.before), `after ${copy(r.after)} vs before ${copy(r.before)}`);
  t.true(r.chosen.copyErrorRate <= r.baselineDev.copyErrorRate);
  model.dispose();
});

test('CLI: copybias writes complete results from a YAML config with flag overrides; report.html renders cleanly', async (t) => {
  const dir = tempDir();
  const configFile = path.join(dir, 'config.yaml');
  fs.writeFileSync(configFile, 'proxy:\n  attributionPrompts: 16\n  devPrompts: 16\nattribution:\n  steps: 4\nevaluation:\n  tasks: [vowel_count, to_upper]\n  shots: [1, 4]\n  n: 10\n');
  const out = path.join(dir, 'out');
  const r = spawnSync(process.execPath, [cli, 'copybias', planted, '--out', out, '--config', configFile, '--n', '12', '--fractions', '0.03,0.1', '--save-model'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /before:\n[\s\S]*after:\n[\s\S]*report: .*report\.html/);
  t.deepEqual(fs.readdirSync(out).sort(), ['attributions.safetensors', 'model', 'neurons.json', 'report.html', 'results.json']);
  t.deepEqual(fs.readdirSync(dir).sort(), ['config.yaml', 'out'], 'no temporary folder left');

  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  t.deepEqual(Object.keys(results).sort(), ['attribution', 'config', 'environment', 'evaluation', 'model', 'proxy', 'selection', 'timings']);
  t.like(results.config, {
    seed: 0,
    proxy: { shots: 4, attributionPrompts: 16, devPrompts: 16 },
    attribution: { steps: 4, rule: 'riemann_right', positions: 'last', layers: null, memoryBudgetMB: 2048 },
    selection: { fractions: [0.03, 0.1], layerRanges: null, full: false },
    evaluation: { tasks: ['vowel_count', 'to_upper'], shots: [1, 4], n: 12, dataDir: null, batchSize: 32 },
  });
  t.is(results.selection.search.length, 2);
  t.is(results.evaluation.before.scores.length, 4);
  t.is(results.evaluation.after.scores.length, 4);
  for (const key of ['attribution', 'dev-search', 'eval-before', 'eval-after', 'total']) t.is(typeof results.timings[key], 'number', key);

  const neurons = await readNeuronSet(path.join(out, 'neurons.json'));
  t.is(neurons.neurons.length, results.selection.neurons);
  t.true(isPlanted(neurons.neurons[0]));
  t.is(neurons.method.name, 'copybias');
  const st = await readSafetensors(path.join(out, 'attributions.safetensors'));
  t.deepEqual(st.tensors.mean.shape, [1, 64]);
  t.truthy(st.tensors['prompt.15']);
  const pruned = await Model.load(path.join(out, 'model'));
  t.is(pruned.info.nLayers, 1);
  pruned.dispose();

  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  t.regex(html, /<svg/);
  t.regex(html, /Dev search/);
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
