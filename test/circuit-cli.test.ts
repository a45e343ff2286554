// Knowledge circuits on a real (hand-built) model: the head that carries the answer is found by
// EAP-IG, EAP and ACDC, with faithfulness near 1; the CLI writes its outputs whole; a malformed relation
// file is a typed error naming the field; Ctrl-C leaves no --out, and --resume finishes the run.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CIRCUIT_FILES, discoverCircuit, Model, readSafetensors } from '../lib';
import { packageRoot } from '../lib/native';
import { HEAD, oneHeadModel, oneHeadRelation } from './fixtures-circuit-model';
import { tempDir } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
const HEAD_NODE = `a0.h${HEAD}`;

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string, modelDir: string, relation: string, model: Model;
test.before(async () => {
  dir = tempDir();
  modelDir = await oneHeadModel(path.join(dir, 'one-head'));
  relation = oneHeadRelation(dir);
  model = await Model.load(modelDir);
});
test.after.always(() => model?.dispose());

test.serial('EAP-IG finds the head that carries the answer; its circuit is faithful and random circuits are not', async (t) => {
  const r = await discoverCircuit(model, { relations: [relation], topN: 5 });
  t.like(r.data.counts, { facts: 8, known: 8, paired: 8, validation: 4, test: 4 });
  t.true(r.circuit.nodes.includes(HEAD_NODE), r.circuit.nodes.join(' '));
  const top = r.circuit.edgeList.slice(0, 2).map((e) => `${e.writer}->${e.reader}`).sort();
  t.deepEqual(top, [`${HEAD_NODE}->logits`, `input->${HEAD_NODE}<v>`].sort());
  // Ablating either edge with the corrupted subject lowers log p(answer): negative scores.
  t.true(r.circuit.edgeList[0].score < 0 && r.circuit.edgeList[1].score < 0);
  for (const split of ['validation', 'test'] as const) {
    const e = r.evaluation[split];
    t.true(e.circuit.faithfulness.normalized! > 0.95, `${split} normalized ${e.circuit.faithfulness.normalized}`);
    t.true(Math.abs(e.circuit.faithfulness.ratio! - 1) < 0.1, `${split} ratio ${e.circuit.faithfulness.ratio}`);
    t.is(e.full.hit.delta, 1);
    t.is(e.circuit.hit.delta, 1);
    t.true(e.random.faithfulness.normalized! < 0.5, `${split} random ${e.random.faithfulness.normalized}`);
  }
  // Node attribution: the head is the top component (the input, which feeds it, scores as much); the
  // logit lens reads the answer from it.
  const head = r.nodes.find((n) => n.node === HEAD_NODE)!;
  const components = r.nodes.filter((n) => n.node !== 'input' && n.score !== null);
  t.true(components.every((n) => Math.abs(n.score!) <= Math.abs(head.score!)), components.map((n) => `${n.node} ${n.score}`).join(', '));
  t.true(head.score! < 0);
  t.is(head.lens!.hit, 1);
});

test.serial('EAP and ACDC find the same head; ACDC agrees with EAP-IG', async (t) => {
  const eap = await discoverCircuit(model, { relations: [relation], method: 'eap', topN: 5, randomDraws: 1 });
  t.true(eap.circuit.nodes.includes(HEAD_NODE));
  t.true(eap.evaluation.test.circuit.faithfulness.normalized! > 0.9);
  const acdc = await discoverCircuit(model, { relations: [relation], method: 'acdc', acdc: { taus: [0.01] }, randomDraws: 1 });
  t.is(acdc.ablation, 'zero');
  t.true(acdc.circuit.nodes.includes(HEAD_NODE), acdc.circuit.nodes.join(' '));
  const kept = acdc.circuit.edgeList.map((e) => `${e.writer}->${e.reader}`);
  t.true(kept.includes(`input->${HEAD_NODE}<v>`), kept.join(' '));
  t.true(acdc.acdc![0].aucEapIg! > 0.8, `AUC ${acdc.acdc![0].aucEapIg}`);
  t.true(acdc.evaluation.test.circuit.hit.delta === 1);
});

test.serial('logit difference and mean ablation: the same head, every setting recorded', async (t) => {
  const r = await discoverCircuit(model, { relations: [relation], metric: 'logit_diff', ablation: 'mean', topN: 5, randomDraws: 2, curve: [2, 5] });
  t.like(r.config, { metric: 'logit_diff', ablation: 'mean', topN: 5, randomDraws: 2 });
  t.is(r.ablation, 'mean');
  t.true(r.circuit.nodes.includes(HEAD_NODE));
  // logit(answer) - logit(partner's answer) is large and positive on the full model.
  t.true(r.evaluation.test.full.metric > 5, `${r.evaluation.test.full.metric}`);
  t.true(r.evaluation.test.circuit.faithfulness.normalized! > 0.9, `${r.evaluation.test.circuit.faithfulness.normalized}`);
  t.deepEqual(r.curve.map((p) => p.n), [2, 5, r.curve[2].edges]);
});

test.serial('CLI: outputs whole, scores with their names, a summary on stdout', async (t) => {
  const out = path.join(tempDir(), 'circuit');
  const r = run('circuit', modelDir, '--relation', relation, '--out', out, '--top-n', '5', '--random-draws', '2');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /8 facts, 8 known \(top 10\), 8 with a corrupted partner: 4 validation, 4 test/);
  t.regex(r.stdout, /eap-ig circuit: \d+ edges/);
  t.regex(r.stdout, /test +faithfulness/);
  t.deepEqual(fs.readdirSync(out).sort(), CIRCUIT_FILES);
  t.false(fs.existsSync(`${out}.partial`));
  t.deepEqual(fs.readdirSync(path.dirname(out)).filter((f) => f.startsWith('circuit.tmp-')), []);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'circuit.json'), 'utf8'));
  t.like(json.settings, { method: 'eap-ig', steps: 5, topN: 5, randomDraws: 2, ablation: 'corrupted', metric: 'logprob' });
  t.true(json.circuit.nodes.includes(HEAD_NODE));
  const st = await readSafetensors(path.join(out, 'edges.safetensors'));
  const writers = JSON.parse(st.metadata.writers), readers = JSON.parse(st.metadata.readers);
  t.deepEqual(st.tensors.scores.shape, [writers.length, readers.length]);
  t.regex(fs.readFileSync(path.join(out, 'report.html'), 'utf8'), new RegExp(`${HEAD_NODE.replace('.', '\\.')}`));
  // An existing --out is refused without --force.
  const again = run('circuit', modelDir, '--relation', relation, '--out', out);
  t.not(again.code, 0);
  t.regex(again.stderr, /E_ARG: .* exists and is not empty/);
});

test.serial('CLI: a malformed relation file is E_TASK_FILE naming the field, and nothing is written', (t) => {
  const bad = path.join(tempDir(), 'bad.json');
  fs.writeFileSync(bad, JSON.stringify({ prompt_templates_zs: ['{}?'], samples: [{ subject: 'a', object: 'A' }, { subject: 'b', object: 42 }] }));
  const out = path.join(path.dirname(bad), 'never');
  const r = run('circuit', modelDir, '--relation', bad, '--out', out);
  t.not(r.code, 0);
  t.regex(r.stderr, /E_TASK_FILE: .*bad\.json: samples\[1\]\.object must be a non-empty string/);
  t.false(fs.existsSync(out));
  const acdcTooBig = run('circuit', modelDir, '--relation', relation, '--out', out, '--method', 'acdc', '--acdc-max-edges', '10');
  t.not(acdcTooBig.code, 0);
  t.regex(acdcTooBig.stderr, /E_ARG: ACDC evaluates the model once per edge/);
  t.false(fs.existsSync(out));
});

test.serial('CLI: Ctrl-C leaves no --out and keeps the scores for --resume, which finishes the run', async (t) => {
  const out = path.join(tempDir(), 'interrupted');
  // ACDC with several thresholds: long enough to be interrupted after the EAP-IG scores are kept.
  const args = ['circuit', modelDir, '--relation', relation, '--out', out, '--method', 'acdc', '--tau', '0.02,0.01,0.005,0.002,0.001,0.0005', '--random-draws', '1'];
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const partial = `${out}.partial`;
  const started = Date.now();
  const hasChunk = () => fs.existsSync(partial) && fs.readdirSync(partial).some((f) => f.endsWith('.f32'));
  while (!hasChunk() && child.exitCode === null && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGINT');
  const code = await exited;
  t.not(code, 0, 'interrupted before the end');
  t.regex(stderr, /E_ABORTED/);
  t.false(fs.existsSync(out), 'nothing at --out');
  t.deepEqual(fs.readdirSync(path.dirname(out)).filter((f) => f.startsWith('interrupted.tmp-')), []);
  t.true(hasChunk(), 'the edge scores done are kept');
  const resumed = run(...args, '--resume');
  t.is(resumed.code, 0, resumed.stderr);
  t.false(fs.existsSync(partial));
  const json = JSON.parse(fs.readFileSync(path.join(out, 'circuit.json'), 'utf8'));
  t.true(json.scoring.resumedGroups >= 1);
});

const DATA = path.join(packageRoot(), '..', 'shared', 'data');
const CAPITALS = path.join(DATA, 'lre', 'factual', 'country_capital_city.json');
const factsTest = fs.existsSync(CAPITALS) ? test.serial : test.skip;

factsTest('the facts model: a small EAP-IG circuit of country_capital_city is faithful, random circuits of its size are not', async (t) => {
  const facts = await Model.load(path.join(packageRoot(), 'models', 'demo-facts'));
  try {
    const r = await discoverCircuit(facts, { relations: [CAPITALS], topN: 20 });
    t.is(r.data.relations[0].template, 'The capital of {} is the city of');
    t.true(r.data.counts.validation >= 5 && r.data.counts.test >= 5, JSON.stringify(r.data.counts));
    t.true(r.circuit.edges <= 20);
    const e = r.evaluation.test;
    t.true(e.circuit.faithfulness.normalized! > 0.9, `normalized ${e.circuit.faithfulness.normalized}`);
    t.true(e.random.faithfulness.normalized! < 0.3, `random ${e.random.faithfulness.normalized}`);
    t.true(e.circuit.hit.delta > e.random.hit.delta);
    // Grouped-query attention: heads are per query head, with their own q, k and v inputs.
    t.is(r.graph.writers.filter((w) => w.startsWith('a0.')).length, 4);
    t.true(r.graph.readers.includes('a0.h3<k>'));
  } finally {
    facts.dispose();
  }
});
