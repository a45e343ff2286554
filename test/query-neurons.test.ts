// query-neurons end to end: planted query neurons are found and suppressing them drops p(gold) on their
// domain only; a neuron firing for every query is removed by the common-neuron filter; the CLI writes
// its outputs whole; a malformed data file is a typed error; a killed run resumed equals one run.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { inverseClusterAttribution, Model, prepareData, neuronSet, queryNeurons, QueryNeuronsResult, readNeuronSet, readSafetensors, selectQueryNeurons } from '../lib';
import { ChunkStore } from '../lib/pipelines/chunk-store';
import { packageRoot } from '../lib/native';
import { COMMON, DOMAINS, LAYER, LETTERS, PLANTED, plantedData, plantedModel, QUERIES_PER_DOMAIN } from './fixtures-qrneuron';
import { codeOf, tempDir } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
const SUBJECT_QA = path.join(packageRoot(), '..', 'shared', 'data', 'qrneuron', 'subject_qa.json');
const LRE_FACTUAL = path.join(packageRoot(), '..', 'shared', 'data', 'lre', 'factual');

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string, modelDir: string, data: string, model: Model, result: QueryNeuronsResult;
test.before(async () => {
  dir = tempDir();
  modelDir = await plantedModel(path.join(dir, 'planted'));
  data = plantedData(path.join(dir, 'planted.json'));
  model = await Model.load(modelDir);
  result = await queryNeurons(model, { data });
});

/** p(letter) at the last position of each prompt. */
async function pLetter(prompts: string[], letter: string): Promise<number[]> {
  const id = model.tokenizer.encode(letter, { addSpecialTokens: false })[0];
  const logits = await model.logits(prompts, { lastOnly: true });
  return prompts.map((_, b) => {
    const row = logits.at(b, 0);
    const max = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - max), 0);
    return Math.exp(row[id] - max) / z;
  });
}

test.serial('QRNCA finds the planted query neuron of each domain at hook_pre, and only it', (t) => {
  t.is(result.options.site, 'mlp.hook_pre');
  t.is(result.options.steps, 16);
  t.is(result.queries.length, DOMAINS.length * QUERIES_PER_DOMAIN);
  t.deepEqual(result.skipped, []);
  for (const q of result.queries) {
    const k = DOMAINS.indexOf(q.domain);
    t.deepEqual(q.neurons.map((n) => [n.layer, n.index]), [[LAYER, PLANTED[k]]], q.id);
    // ica = log(12 clusters / (1 + the 3 queries of the domain))
    t.true(Math.abs(q.neurons[0].ica! - Math.log(12 / 4)) < 1e-9);
  }
  for (const [k, d] of DOMAINS.entries()) t.deepEqual(result.domains[d].map((n) => [n.layer, n.index]), [[LAYER, PLANTED[k]]]);
});

test.serial('the neuron planted to fire for every query is in every NA but removed by the common-neuron filter', (t) => {
  const common = LAYER * result.dMlp + COMMON;
  t.true(result.dense.na.every((na) => (na.get(common) ?? 0) > 0.2), 'every query attributes to it');
  t.true(result.queries.every((q) => !q.neurons.some((n) => n.index === COMMON)));
  // It is in all 12 clusters (queries): far above u = 30%, so the filter drops it before scoring.
  const ica = inverseClusterAttribution(result.dense.na.map((na) => [...na.keys()]));
  t.is(ica.get(common)!.count, 12);
  const kept = selectQueryNeurons(new Map([[common, 1]]), ica, { u: 0.3, v: 20, nClusters: 12, withoutIca: true });
  t.deepEqual(kept, [], 'common: filtered even when scored by NA alone');
  // Without the filter and without ICA, it would be chosen (QRNCA without ICA keeps common neurons only by this filter).
  t.is(selectQueryNeurons(new Map([[common, 1]]), ica, { u: 0.3, v: 20, nClusters: 12, withoutIca: true, keepCommon: true }).length, 1);
});

test.serial('suppressing a domain\'s neurons drops p(gold) on that domain only; boosting raises it', async (t) => {
  const prompts = (d: number) => [`Q: ${DOMAINS[d]} question 9: which?\nA${'#%&@'[d]}`, `Tell me. ${DOMAINS[d]}? Response${'#%&@'[d]}`];
  const set = await readNeuronSetFromResult(0);
  const before = await Promise.all(DOMAINS.map((_, d) => pLetter(prompts(d), LETTERS[d])));
  const edit = await model.scale(set, 0, { site: 'mlp.hook_pre', positions: 'last' });
  const after = await Promise.all(DOMAINS.map((_, d) => pLetter(prompts(d), LETTERS[d])));
  await model.restore(edit);
  before[0].forEach((p, i) => t.true(after[0][i] < 0.2 * p, `alpha: ${p} -> ${after[0][i]}`));
  for (let d = 1; d < DOMAINS.length; d++) before[d].forEach((p, i) => t.true(Math.abs(after[d][i] - p) < 1e-4 * p, `${DOMAINS[d]} unchanged`));
  // The PCR table says the same: QRNCA's suppression moves related p(gold) far more than unrelated.
  const suppress = result.pcr.find((r) => r.method === 'qrnca' && r.factor === 0)!;
  const boost = result.pcr.find((r) => r.method === 'qrnca' && r.factor === 2)!;
  t.true(suppress.related < -0.5, `related ${suppress.related}`);
  t.true(Math.abs(suppress.unrelated) < 0.01, `unrelated ${suppress.unrelated}`);
  t.true(boost.related > 0.1);
  // Paired bootstrap over the queries: the suppression's extra drop on its own domain excludes 0.
  t.true(suppress.specificity!.high < 0 && boost.specificity!.low > 0);
  const random = result.pcr.find((r) => r.method === 'random' && r.factor === 0)!;
  t.true(Math.abs(random.related) < 0.05);
  t.deepEqual([...new Set(result.pcr.map((r) => r.method))].sort(), ['knowledge-neurons', 'qrnca', 'qrnca-keep-common', 'qrnca-without-ica', 'random', 'top-activation']);
  t.is(result.prediction!.accuracy, 1);
  // Localisation: every domain's neurons sit in the planted layer; the domain sets do not overlap.
  for (const d of DOMAINS) t.deepEqual(result.localisation.perLayer[d], [0, QUERIES_PER_DOMAIN]);
  result.localisation.jaccard.matrix.forEach((row, i) => row.forEach((v, j) => t.is(v, i === j ? 1 : 0)));
});

async function readNeuronSetFromResult(k: number) {
  return neuronSet(modelDir, result.domains[DOMAINS[k]], { name: 'qrnca' }, result.options.site);
}

test.serial('knowledge neurons on the same data find the planted neurons too (shared by every template)', async (t) => {
  const kn = await queryNeurons(model, { data, method: 'knowledge-neurons', site: 'mlp.hook_pre', evaluate: false });
  for (const q of kn.queries) {
    const k = DOMAINS.indexOf(q.domain);
    t.true(q.neurons.some((n) => n.layer === LAYER && n.index === PLANTED[k]), q.id);
    t.true(q.neurons.every((n) => n.shared! / 3 > 0.5));
  }
  t.deepEqual(kn.pcr, []);
});

test.serial('knowledge neurons on LRE fill-in facts', async (t) => {
  const facts = await queryNeurons(model, { data: path.join(LRE_FACTUAL, 'country_capital_city.json'), method: 'knowledge-neurons', perDomain: 3, steps: 4, unrelated: 0 });
  t.is(facts.kind, 'facts');
  t.is(facts.options.site, 'mlp.hook_post');
  t.is(facts.queries.length, 3);
  t.true(facts.queries.every((q) => q.domain === 'country capital city' && q.prompts >= 1));
  t.true(facts.queries.every((q) => q.neurons.every((n) => n.shared! / q.prompts > 0.5)));
  // The scored token is the object's first letter, not the space a byte-level tokenizer gives first.
  const prepared = prepareData(model, path.join(LRE_FACTUAL, 'country_capital_city.json'), { perDomain: 1 });
  const sample = JSON.parse(fs.readFileSync(path.join(LRE_FACTUAL, 'country_capital_city.json'), 'utf8')).samples[0];
  t.is(model.tokenizer.decode([prepared.items[0].prompts[0].target]), sample.object[0]);
});

test.serial('bad options and data are typed errors', async (t) => {
  const bad = path.join(tempDir(), 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ q1: { sentences: ['a'], obj_label: ['Z'], relation_name: 'x' } }));
  const error = await queryNeurons(model, { data: bad }).catch((e) => e);
  t.is(error.code, 'E_DATA_FILE');
  t.regex(error.message, /query "q1": obj_label\[0\]/);
  t.is(await codeOf(queryNeurons(model, { data, t: 2 })), 'E_ARG');
  t.is(await codeOf(queryNeurons(model, { data, site: 'mixer.hook_post' })), 'E_SITE');
  t.is(await codeOf(queryNeurons(model, { data, domains: ['nope'] })), 'E_ARG');
  // A file with a query whose letters are not single tokens after a template: skipped with the reason.
  const mixed = path.join(tempDir(), 'mixed.json');
  const raw = JSON.parse(fs.readFileSync(data, 'utf8'));
  fs.writeFileSync(mixed, JSON.stringify(raw));
  const spaced = await queryNeurons(model, { data: mixed, letterSpace: 'space', evaluate: false }).catch((e) => e);
  t.is(spaced.code, 'E_DATA_FILE');
  t.regex(spaced.message, /no usable query \(12 skipped; first: alpha-0: the letters are not single tokens/);
});

test.serial('CLI: outputs whole, neuron sets with their site, a malformed file exits with E_DATA_FILE', async (t) => {
  const out = path.join(tempDir(), 'qn');
  const r = run('query-neurons', modelDir, '--data', data, '--out', out, '--steps', '8');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /12 queries in 4 domains \(0 skipped\), qrnca at blocks\.\{l\}\.mlp\.hook_pre/);
  t.deepEqual(fs.readdirSync(out).sort(), ['attributions.safetensors', 'neurons', 'report.html', 'results.json']);
  t.false(fs.existsSync(`${out}.partial`));
  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  t.like(results.options, { method: 'qrnca', site: 'mlp.hook_pre', steps: 8, t: 0.2, u: 0.3, v: 20, p: 0.5, clusters: 'queries', scalePositions: 'last' });
  const set = await readNeuronSet(path.join(out, 'neurons', 'alpha.json'));
  t.is(set.site, 'mlp.hook_pre');
  t.deepEqual(set.neurons.map((n) => [n.layer, n.index]), [[LAYER, PLANTED[0]]]);
  // Used at its own site it scales; at another it is E_SITE.
  t.is(await codeOf(model.scale(set, 0, { site: 'mlp.hook_post' })), 'E_SITE');
  const st = await readSafetensors(path.join(out, 'attributions.safetensors'));
  t.deepEqual(st.tensors['na.indices'].shape.slice(1), [3]);
  t.is(st.metadata?.site, 'mlp.hook_pre');
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  t.regex(html, /PCR/);
  t.regex(html, /<svg/);

  const bad = path.join(tempDir(), 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ 'q-7': { sentences: ['x'], obj_label: 'A', relation_name: 'd' } }));
  const failed = run('query-neurons', modelDir, '--data', bad, '--out', path.join(tempDir(), 'never'));
  t.not(failed.code, 0);
  t.regex(failed.stderr, /E_DATA_FILE/);
  t.regex(failed.stderr, /query "q-7": obj_label must be an array/);
  t.false(fs.existsSync(path.join(path.dirname(bad), 'never')));
});

/** results.json without what differs between runs (timings, environment, resumed counts). */
function comparable(out: string) {
  const r = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  delete r.timings;
  delete r.environment;
  return r;
}

test.serial('a killed run resumed with --resume gives the result of one uninterrupted run', async (t) => {
  // A tiny random model on the real templates: slow enough (long prompts) to be killed mid-way.
  const tiny = path.join(tempDir(), 'tiny');
  t.is(run('init', 'gpt2', '--out', tiny, '--layers', '2', '--hidden', '32', '--heads', '4', '--seed', '9').code, 0);
  const args = (out: string) => ['query-neurons', tiny, '--data', SUBJECT_QA, '--out', out, '--per-domain', '2', '--steps', '6'];
  const whole = path.join(tempDir(), 'whole');
  const once = run(...args(whole));
  t.is(once.code, 0, once.stderr);

  const killed = path.join(tempDir(), 'killed');
  const child = spawn(process.execPath, [cli, ...args(killed)], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const partial = `${killed}.partial`;
  const done = () => (fs.existsSync(partial) ? fs.readdirSync(partial).filter((f) => f.endsWith('.f32')).length : 0);
  const started = Date.now();
  while (done() < 3 && child.exitCode === null && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  await exited;
  const had = done();
  t.true(had >= 3 && had < 12, `killed after ${had} of 12 queries`);
  t.false(fs.existsSync(killed), 'nothing written to --out');

  const resumed = run(...args(killed), '--resume');
  t.is(resumed.code, 0, resumed.stderr);
  t.false(fs.existsSync(partial));
  const timings = JSON.parse(fs.readFileSync(path.join(killed, 'results.json'), 'utf8')).timings;
  t.true(timings.resumedItems >= had && timings.resumedItems < 12, `resumed ${timings.resumedItems}`);
  const a = comparable(whole), b = comparable(killed);
  t.deepEqual(b.queries, a.queries);
  t.deepEqual(b.pcr, a.pcr);
  t.deepEqual({ ...b, options: undefined }, { ...a, options: undefined });
  t.true(fs.readFileSync(path.join(killed, 'attributions.safetensors')).equals(fs.readFileSync(path.join(whole, 'attributions.safetensors'))));
  for (const f of fs.readdirSync(path.join(whole, 'neurons'))) {
    const x = await readNeuronSet(path.join(whole, 'neurons', f)), y = await readNeuronSet(path.join(killed, 'neurons', f));
    t.deepEqual(y.neurons, x.neurons);
  }
});

test('a chunk folder made with other settings is refused on resume, and replaced without it', (t) => {
  const chunks = path.join(tempDir(), 'chunks');
  const store = ChunkStore.open(chunks, { steps: 16 }, false);
  store.put(0, Float32Array.from([1, 2]));
  t.deepEqual(Array.from(ChunkStore.open(chunks, { steps: 16 }, true).get(0)!), [1, 2]);
  const error = t.throws(() => ChunkStore.open(chunks, { steps: 8 }, true));
  t.is((error as { code?: string }).code, 'E_ARG');
  t.is(ChunkStore.open(chunks, { steps: 8 }, false).get(0), undefined);
});
