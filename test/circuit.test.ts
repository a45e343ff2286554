// Knowledge circuits without a model: selection, dead-node pruning, random circuits, faithfulness,
// ROC-AUC and ACDC on hand-made graphs; the facts (known filter, partners, split, malformed files); and
// the pipeline end to end on a stand-in model whose answer runs through a known set of edges.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { CIRCUIT_FILES, discoverCircuit, parseCircuitConfig, prepareCircuitData, readSafetensors, writeCircuitOutputs } from '../lib';
import { acdc } from '../lib/circuit/acdc';
import { circuitDot } from '../lib/circuit/dot';
import { countEdges, layerOf, nodeIndex, nodeOf, standardGraph } from '../lib/circuit/graph';
import { circuitNodes, faithfulness, nodeScores, overlap, randomCircuit, rocAuc } from '../lib/circuit/measures';
import { edgesAbove, pruneDeadNodes, rankEdges, selectCircuit, topEdges } from '../lib/circuit/select';
import { circuitReport } from '../lib/report/circuit';
import { groupByLength } from '../lib/tasks/circuit-data';
import { fakeCircuitModel, GRAPH, KNOWN, PAIRED, relationFile, SAMPLES, TRUE_CIRCUIT } from './fixtures-circuit';
import { codeOf, tempDir } from './helpers';

const G = standardGraph(2, 2);
const R = G.readers.length;
const e = (w: string, r: string) => {
  const i = G.writers.indexOf(w), j = G.readers.indexOf(r);
  if (i < 0 || j < 0 || !G.edges[i * R + j]) throw new Error(`no edge ${w}->${r}`);
  return i * R + j;
};
const maskOf = (edges: number[]) => {
  const m = new Uint8Array(G.edges.length);
  for (const x of edges) m[x] = 1;
  return m;
};
const ones = (m: Uint8Array) => [...m.keys()].filter((i) => m[i]);

test('the graph: names, layers, nodes, and edges only forward', (t) => {
  t.deepEqual(G.writers, ['input', 'a0.h0', 'a0.h1', 'm0', 'a1.h0', 'a1.h1', 'm1']);
  t.is(G.readers.length, 2 * (2 * 3 + 1) + 1);
  t.is(nodeOf('a1.h0<q>'), 'a1.h0');
  t.is(nodeOf('m1'), 'm1');
  t.is(layerOf('a1.h0<k>'), 1);
  t.is(layerOf('input'), -1);
  const { nodes } = nodeIndex(G);
  t.deepEqual(nodes, ['input', 'a0.h0', 'a0.h1', 'm0', 'a1.h0', 'a1.h1', 'm1', 'logits']);
  // No edge into its own layer's heads, nor back; heads feed their layer's MLP.
  t.throws(() => e('a0.h0', 'a0.h1<q>'));
  t.throws(() => e('m1', 'a1.h0<q>'));
  t.notThrows(() => e('a0.h0', 'm0'));
  t.notThrows(() => e('input', 'logits'));
});

test('top n and threshold by |score|, over real edges only, ties by index', (t) => {
  const scores = new Float32Array(G.edges.length);
  scores[e('input', 'a0.h0<q>')] = -5;
  scores[e('a0.h0', 'm1')] = 3;
  scores[e('m0', 'logits')] = 3;
  scores[e('m1', 'logits')] = 0.5;
  scores[1] = 100; // input -> a0.h0<k> is real; a slot that is no edge must never be chosen:
  const noEdge = G.writers.indexOf('m1') * R + G.readers.indexOf('a0.h0<q>');
  scores[noEdge] = 1000;
  const ranked = rankEdges(G, scores);
  t.deepEqual(ranked.slice(0, 4), [1, e('input', 'a0.h0<q>'), e('a0.h0', 'm1'), e('m0', 'logits')]);
  t.false(ranked.includes(noEdge));
  t.deepEqual(ones(topEdges(G, scores, 3)), [1, e('input', 'a0.h0<q>'), e('a0.h0', 'm1')].sort((a, b) => a - b));
  t.is(countEdges(topEdges(G, scores, 10_000)), countEdges(G.edges));
  t.deepEqual(ones(edgesAbove(G, scores, 3)).length, 4);
  t.throws(() => topEdges(G, scores, -1));
});

test('dead-node pruning keeps exactly the edges on a path input -> ... -> logits', (t) => {
  const path1 = [e('input', 'a0.h0<q>'), e('a0.h0', 'm1'), e('m1', 'logits')];
  const dangling = e('input', 'a1.h1<k>'); // a1.h1 writes nowhere
  const orphan = e('a0.h1', 'logits'); // a0.h1 reads nothing
  const orphanIn = e('a0.h1', 'a1.h0<v>'); // from an unreached node into a live one
  t.deepEqual(ones(pruneDeadNodes(G, maskOf([...path1, dangling, orphan, orphanIn]))), [...path1].sort((a, b) => a - b));
  // A head reached through its k input is one node with its writer: the path holds.
  const viaK = [e('input', 'a0.h1<k>'), e('a0.h1', 'logits')];
  t.deepEqual(ones(pruneDeadNodes(G, maskOf(viaK))), viaK.sort((a, b) => a - b));
  // A chain that stops short of the logits goes whole.
  t.deepEqual(ones(pruneDeadNodes(G, maskOf([e('input', 'a0.h0<q>'), e('a0.h0', 'm0')]))), []);
  // The direct edge is a circuit of its own.
  t.deepEqual(ones(pruneDeadNodes(G, maskOf([e('input', 'logits')]))), [e('input', 'logits')]);
  // Pruning is idempotent, and selectCircuit counts before and after.
  const scores = new Float32Array(G.edges.length);
  for (const [k, x] of [...path1, dangling, orphan].entries()) scores[x] = 10 - k;
  const s = selectCircuit(G, scores, { topN: 5 });
  t.is(s.chosen, 5);
  t.is(s.edges, 3);
  t.deepEqual(pruneDeadNodes(G, s.mask), s.mask);
  t.deepEqual(circuitNodes(G, s.mask), ['input', 'a0.h0', 'm1', 'logits']);
});

test('random circuits: the asked size, real edges only, the same for a seed', (t) => {
  const a = randomCircuit(G, 7, 1), b = randomCircuit(G, 7, 1), c = randomCircuit(G, 7, 2);
  t.is(countEdges(a), 7);
  t.deepEqual(a, b);
  t.notDeepEqual(a, c);
  t.true(ones(a).every((i) => G.edges[i] === 1));
  t.is(countEdges(randomCircuit(G, countEdges(G.edges), 3)), countEdges(G.edges));
  t.throws(() => randomCircuit(G, countEdges(G.edges) + 1, 3));
  // Over many seeds every edge is drawn: uniform over the graph's edges.
  const seen = new Uint8Array(G.edges.length);
  for (let s = 0; s < 200; s++) randomCircuit(G, 5, s).forEach((v, i) => (seen[i] |= v));
  t.deepEqual(seen, G.edges);
});

test('faithfulness: the ratio and the normalised variant', (t) => {
  t.deepEqual(faithfulness({ circuit: -1, full: -0.5, empty: -3 }), { ratio: 2, normalized: 0.8 });
  t.deepEqual(faithfulness({ circuit: 2, full: 4, empty: 0 }), { ratio: 0.5, normalized: 0.5 });
  t.deepEqual(faithfulness({ circuit: 1, full: 0, empty: 0 }), { ratio: null, normalized: null });
  const f = faithfulness({ circuit: -3, full: -0.5, empty: -3 });
  t.is(f.normalized, 0);
});

test('node scores sum a writer\'s outgoing edges; overlap and ROC-AUC', (t) => {
  const scores = new Float32Array(G.edges.length);
  scores[e('a0.h0', 'm1')] = -2;
  scores[e('a0.h0', 'logits')] = 0.5;
  scores[e('m1', 'logits')] = 1;
  const byNode = Object.fromEntries(nodeScores(G, scores).map((n) => [n.node, n]));
  t.is(byNode['a0.h0'].score, -1.5);
  t.is(byNode['a0.h0'].absScore, 2.5);
  t.is(byNode['m1'].score, 1);
  t.is(nodeScores(G, scores)[0].node, 'a0.h0');
  const a = maskOf([1, 2, 3]), b = maskOf([2, 3, 4, 5]);
  t.is(overlap(a, b), 0.5);
  const pos = maskOf([1, 2]);
  const among = maskOf([0, 1, 2, 3, 4]);
  const perfect = Float32Array.from({ length: G.edges.length }, (_, i) => (i === 1 || i === 2 ? 10 : i));
  t.is(rocAuc(perfect, pos, among), 1);
  t.is(rocAuc(Float32Array.from(perfect, (v) => -v), pos, among), 0);
  t.is(rocAuc(new Float32Array(G.edges.length), pos, among), 0.5);
  t.is(rocAuc(perfect, new Uint8Array(G.edges.length), among), null);
});

test('ACDC recovers exactly the edge set the metric depends on, visiting readers from the logits back', async (t) => {
  const needed = new Set([e('input', 'a0.h1<v>'), e('a0.h1', 'm1'), e('m1', 'logits'), e('input', 'm1')]);
  const visited: number[] = [];
  let last = Uint8Array.from(G.edges);
  const evaluate = async (kept: Uint8Array) => {
    // The edge tried: the only one ablated now that was kept in the previous call (edges of dead nodes
    // go several at a time, untried).
    const now = [...kept.keys()].filter((i) => G.edges[i] && !kept[i] && last[i]);
    if (now.length === 1) visited.push(now[0]);
    last = Uint8Array.from(kept);
    // MatchNLL: 0.1, plus 1 per needed edge ablated, plus 0.001 per other edge.
    let m = 0.1;
    for (let i = 0; i < kept.length; i++) if (G.edges[i] && !kept[i]) m += needed.has(i) ? 1 : 0.001;
    return m;
  };
  const r = await acdc(G, evaluate, { tau: 0.01 });
  t.deepEqual(ones(r.kept), [...needed].sort((a, b) => a - b));
  t.is(r.edges, 4);
  t.true(Math.abs(r.metricFull - 0.1) < 1e-12);
  // Every other edge is ablated: the circuit's metric is 0.1 + 0.001 per other edge.
  t.true(Math.abs(r.metricCircuit - (0.1 + 0.001 * (countEdges(G.edges) - 4))) < 1e-9);
  // Readers in reverse topological order: the first edge tried enters the logits from the last writer.
  t.is(visited[0], e('m1', 'logits'));
  const readerOrder = visited.map((i) => i % R);
  t.deepEqual(readerOrder, [...readerOrder].sort((a, b) => b - a), 'readers from the logits back');
  // Heads that write nowhere once their outgoing edges are gone are not evaluated.
  t.true(r.skipped > 0);
  // One evaluation per edge tried, plus one to re-measure after each run of skipped edges.
  t.true(r.evaluations > countEdges(G.edges) - r.skipped);
  t.true(r.evaluations <= 1 + countEdges(G.edges) - r.skipped + G.writers.length);
  // A high tau removes everything; tau 0 keeps every edge whose removal costs anything.
  t.is((await acdc(G, evaluate, { tau: 100 })).edges, 0);
  t.is((await acdc(G, evaluate, { tau: 0 })).edges, countEdges(G.edges));
  t.is(await codeOf(acdc(G, evaluate, { tau: -1 })), 'E_ARG');
  const controller = new AbortController();
  controller.abort();
  t.is(await codeOf(acdc(G, evaluate, { tau: 0.01, signal: controller.signal })), 'E_ABORTED');
});

test('DOT: a node per circuit member, an edge per kept edge labelled with its q/k/v input', (t) => {
  const mask = maskOf(TRUE_CIRCUIT);
  const scores = new Float32Array(GRAPH.edges.length);
  TRUE_CIRCUIT.forEach((i, k) => (scores[i] = -(k + 1)));
  const dot = circuitDot(GRAPH, mask, scores);
  t.regex(dot, /^digraph /);
  t.regex(dot, /"input" -> "a0\.h1" \[[^\]]*label="v"/);
  t.regex(dot, /"a0\.h1" -> "m1"/);
  t.regex(dot, /"m1" -> "logits"/);
  t.is(dot.match(/->/g)!.length, 3);
});

test('config: defaults written out, bad fields named', (t) => {
  const c = parseCircuitConfig({ relations: ['x.json'] });
  t.like(c, { method: 'eap-ig', steps: 5, metric: 'logprob', ablation: null, topN: 200, threshold: null, seed: 0, knownTopK: 10, randomDraws: 5, hitK: 10 });
  t.deepEqual(c.acdc, { taus: [0.02, 0.01, 0.005], metric: 'nll', maxEdges: 5000 });
  const error = t.throws(() => parseCircuitConfig({ relations: ['x.json'], method: 'magic' }));
  t.is((error as { code?: string }).code, 'E_CONFIG');
  t.regex(error!.message, /method/);
  t.regex(t.throws(() => parseCircuitConfig({ relations: ['x.json'], acdc: { taus: [-1] } }))!.message, /acdc\.taus\.0/);
  t.regex(t.throws(() => parseCircuitConfig({ relations: [] }))!.message, /relations/);
  t.regex(t.throws(() => parseCircuitConfig({ relations: ['x'], template: 'no subject' }))!.message, /template/);
});

// ---- Facts ----

test('facts: the known filter, partners of the same relation and length with another answer, dropped facts counted', async (t) => {
  const dir = tempDir();
  const model = fakeCircuitModel();
  const data = await prepareCircuitData(model, { relations: [relationFile(dir)], seed: 0 });
  t.like(data.counts, { facts: 9, known: 7, paired: 6, validation: 3, test: 3, skipped: 3 });
  t.is(data.relations[0].template, '{} is in');
  t.is(data.relations[0].name, 'toy relation');
  const reasons = Object.fromEntries(data.skipped.map((s) => [s.subject, s.reason]));
  t.regex(reasons.Ii, /2 objects/);
  t.regex(reasons.Hh, /unknown/);
  t.regex(reasons.Ggggg, /no other known subject with a prompt of 11 tokens/);
  const rows = [...data.validation, ...data.test];
  t.deepEqual(rows.map((f) => f.subject).sort(), PAIRED);
  const tok = model.tokenizer;
  for (const f of rows) {
    t.true(KNOWN.has(f.subject) && KNOWN.has(f.corrupted.subject));
    t.not(f.corrupted.subject, f.subject);
    t.is(f.corrupted.ids.length, f.ids.length, 'same token length');
    t.not(f.corrupted.answer, f.answer, 'another answer');
    t.is(f.relation, 'toy relation');
    // Its own label: the first token of its own object.
    t.is(tok.decode([f.answer]), SAMPLES.find(([s]) => s === f.subject)![1][0]);
    t.is(f.prompt, `${f.subject} is in`);
  }
  // Aa and Dd share the answer "P": never each other's partner.
  for (const f of rows) if (f.subject === 'Aa' || f.subject === 'Dd') t.false(['Aa', 'Dd'].includes(f.corrupted.subject));
});

test('facts: a seeded 1:1 split, disjoint, the same for a seed', async (t) => {
  const dir = tempDir();
  const model = fakeCircuitModel();
  const file = relationFile(dir);
  const a = await prepareCircuitData(model, { relations: [file], seed: 0 });
  const b = await prepareCircuitData(model, { relations: [file], seed: 0 });
  t.deepEqual(a, b);
  const subjects = (xs: typeof a.test) => xs.map((f) => f.subject);
  const v = new Set(subjects(a.validation));
  t.true(subjects(a.test).every((s) => !v.has(s)), 'disjoint');
  t.is(a.validation.length + a.test.length, 6);
  const splits = new Set<string>();
  for (let seed = 0; seed < 12; seed++) {
    const d = await prepareCircuitData(model, { relations: [file], seed });
    splits.add(subjects(d.validation).sort().join(','));
  }
  t.true(splits.size > 1, 'the split depends on the seed');
  // perRelation caps the paired facts, both splits together.
  const capped = await prepareCircuitData(model, { relations: [file], seed: 0, perRelation: 4 });
  t.is(capped.validation.length + capped.test.length, 4);
  // Rows group by length for the native calls.
  t.deepEqual(groupByLength([...a.validation, ...a.test]).map((g) => g[0].ids.length), [8, 9]);
});

test('facts: a malformed relation file is E_TASK_FILE naming the file and the field', async (t) => {
  const dir = tempDir();
  const model = fakeCircuitModel();
  const write = (name: string, value: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
    return file;
  };
  const cases: Array<[string, unknown, RegExp]> = [
    ['object.json', { prompt_templates: ['{} x'], samples: [{ subject: 'a', object: 'b' }, { subject: 'c' }] }, /object\.json: samples\[1\]\.object must be a non-empty string/],
    ['subject.json', { prompt_templates: ['{} x'], samples: [{ subject: 3, object: 'b' }] }, /samples\[0\]\.subject/],
    ['zs.json', { prompt_templates_zs: ['no subject'], samples: [{ subject: 'a', object: 'b' }] }, /zs\.json: prompt_templates_zs\[0\] must be a string with \{\}/],
    ['samples.json', { prompt_templates: ['{} x'], samples: {} }, /samples\.json: samples must be a non-empty array/],
    ['broken.json', '{"samples": [', /broken\.json: not JSON/],
    ['knowledge.json', { Paris: 'France', Rome: 7 }, /knowledge\.json: "Rome" must map to a non-empty string/],
  ];
  for (const [name, value, message] of cases) {
    const error = await prepareCircuitData(model, { relations: [write(name, value)], seed: 0 }).catch((x) => x);
    t.is(error.code, 'E_TASK_FILE', name);
    t.regex(error.message, message, name);
  }
  // A knowledge file needs a template: its own default, or one given.
  const unknown = write('mystery.json', { Paris: 'France' });
  const noTemplate = await prepareCircuitData(model, { relations: [unknown], seed: 0 }).catch((x) => x);
  t.is(noTemplate.code, 'E_ARG');
  t.regex(noTemplate.message, /mystery\.json: .*--template/);
  t.is(await codeOf(prepareCircuitData(model, { relations: [path.join(dir, 'missing.json')], seed: 0 })), 'E_TASK_FILE');
});

test('facts: Hendel et al. knowledge files take their default template, or the one given', async (t) => {
  const dir = tempDir();
  const model = fakeCircuitModel();
  const file = path.join(dir, 'location_continent.json');
  fs.writeFileSync(file, JSON.stringify(Object.fromEntries(SAMPLES.filter(([s]) => s !== 'Ii'))));
  const given = await prepareCircuitData(model, { relations: [file], seed: 0, template: '{} is in' });
  t.is(given.relations[0].format, 'knowledge');
  t.is(given.counts.paired, 6);
  // The default template of location_continent (from the facts corpus) is not what the stand-in knows.
  const byDefault = await prepareCircuitData(model, { relations: [file], seed: 0 }).catch((x) => x);
  t.is(byDefault.code, 'E_TASK_FILE');
  t.regex(byDefault.message, /0 known facts with a corrupted partner/);
});

// ---- The pipeline on the stand-in model ----

test('the pipeline finds the edges the answer runs through, with faithfulness 1 and Hit@10 beside random circuits', async (t) => {
  const dir = tempDir();
  const model = fakeCircuitModel();
  const stages = new Set<string>();
  const r = await discoverCircuit(model, { relations: [relationFile(dir)], topN: 3, onProgress: (p) => stages.add(p.stage) });
  t.deepEqual(ones(r.mask), [...TRUE_CIRCUIT].sort((a, b) => a - b));
  t.deepEqual(r.circuit.nodes, ['input', 'a0.h1', 'm1', 'logits']);
  t.is(r.ablation, 'corrupted');
  t.deepEqual([...stages], ['facts', 'scores', 'evaluation']);
  for (const split of ['validation', 'test'] as const) {
    const e = r.evaluation[split];
    t.is(e.facts, 3);
    t.true(Math.abs(e.circuit.faithfulness.normalized! - 1) < 0.01, `${split}: ${e.circuit.faithfulness.normalized}`);
    t.true(Math.abs(e.circuit.faithfulness.ratio! - 1) < 0.5);
    t.is(e.full.hit.delta, 1);
    t.is(e.circuit.hit.delta, 1);
    t.true(e.random.hit.delta < 0.5);
    t.is(e.random.draws.length, 5);
    t.true(e.hitCircuitMinusRandom!.low > 0);
  }
  // The curve ends with the whole graph; its first point (5 edges) already holds the circuit.
  t.is(r.curve[r.curve.length - 1].edges, countEdges(GRAPH.edges));
  t.true(r.curve.every((p) => p.hit === 1));
  // Node scores and the logit lens: m1 reads the answer.
  const m1 = r.nodes.find((n) => n.node === 'm1')!;
  t.deepEqual(m1.lens, { meanRank: 0, hit: 1 });
  t.true(m1.inCircuit);
  // Native calls only ever got rows of one length.
  t.deepEqual([...model.calls.lengths].sort(), [8, 9]);
  t.is(model.calls.edgeScores, 2, 'one call per length group');
  const html = circuitReport(r);
  t.regex(html, /<svg/);
  t.regex(html, /Faithfulness \(normalised\)/);
  t.regex(html, /a0\.h1 &rarr; m1/);
});

test('ACDC on the stand-in: the same edges, zero ablation, agreement with EAP-IG; refused on large graphs', async (t) => {
  const dir = tempDir();
  const model = fakeCircuitModel();
  const r = await discoverCircuit(model, { relations: [relationFile(dir)], method: 'acdc', acdc: { taus: [0.5, 0.01] } });
  t.is(r.ablation, 'zero');
  t.deepEqual(ones(r.mask), [...TRUE_CIRCUIT].sort((a, b) => a - b));
  t.is(r.acdc!.length, 2);
  for (const a of r.acdc!) {
    t.is(a.edges, 3);
    t.is(a.overlapWithEapIg, 1);
    t.is(a.aucEapIg, 1);
  }
  const error = await discoverCircuit(model, { relations: [relationFile(dir)], method: 'acdc', acdc: { maxEdges: 10 } }).catch((x) => x);
  t.is(error.code, 'E_ARG');
  t.regex(error.message, /ACDC evaluates the model once per edge: fake has \d+ edges, above acdc\.maxEdges = 10/);
  // Threshold instead of top n.
  const byThreshold = await discoverCircuit(model, { relations: [relationFile(dir)], threshold: 0.5, randomDraws: 0 });
  t.deepEqual(ones(byThreshold.mask), [...TRUE_CIRCUIT].sort((a, b) => a - b));
  t.is(byThreshold.evaluation.test.hitCircuitMinusRandom, null);
});

test('an aborted pipeline stops with E_ABORTED', async (t) => {
  const dir = tempDir();
  const controller = new AbortController();
  const model = fakeCircuitModel();
  const run = discoverCircuit(model, {
    relations: [relationFile(dir)],
    signal: controller.signal,
    onProgress: (p) => {
      if (p.stage === 'evaluation' && p.done === 2) controller.abort();
    },
  });
  t.is(await codeOf(run), 'E_ABORTED');
});


test('outputs: circuit.json with every setting and count, edges.safetensors with every score and the names, DOT, report', async (t) => {
  const dir = tempDir();
  const model = fakeCircuitModel();
  const r = await discoverCircuit(model, { relations: [relationFile(dir)], topN: 3 });
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  await writeCircuitOutputs(out, r, model.info, 123);
  t.deepEqual(fs.readdirSync(out).sort(), CIRCUIT_FILES);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'circuit.json'), 'utf8'));
  t.like(json.settings, { method: 'eap-ig', steps: 5, metric: 'logprob', ablation: 'corrupted', topN: 3, threshold: null, seed: 0, knownTopK: 10, randomDraws: 5, hitK: 10, scoreMethod: 'eap-ig' });
  t.deepEqual(json.settings.acdc, { taus: [0.02, 0.01, 0.005], metric: 'nll', maxEdges: 5000 });
  t.like(json.counts, { facts: 9, known: 7, paired: 6, validation: 3, test: 3, circuitEdges: 3, chosenEdges: 3, graphEdges: countEdges(GRAPH.edges) });
  t.deepEqual(json.circuit.nodes, ['input', 'a0.h1', 'm1', 'logits']);
  t.deepEqual(json.circuit.edges.map((x: { writer: string; reader: string }) => `${x.writer}->${x.reader}`).sort(), ['a0.h1->m1', 'input->a0.h1<v>', 'm1->logits']);
  t.true(Math.abs(json.faithfulness.test.circuit.normalized - 1) < 0.01);
  t.is(json.hit.test.full.delta, 1);
  t.is(json.hit.test.k, 10);
  t.truthy(json.definitions.faithfulness);
  t.is(json.facts.test.length, 3);
  t.true(json.facts.test.every((f: { answerText: string; object: string }) => f.answerText === f.object[0]));
  const st = await readSafetensors(path.join(out, 'edges.safetensors'));
  const W = GRAPH.writers.length, Rd = GRAPH.readers.length;
  t.deepEqual(st.tensors.scores.shape, [W, Rd]);
  t.is(st.tensors.scores.dtype, 'F32');
  t.deepEqual(st.tensors.circuit.shape, [W, Rd]);
  t.deepEqual(JSON.parse(st.metadata.writers), GRAPH.writers);
  t.deepEqual(JSON.parse(st.metadata.readers), GRAPH.readers);
  const scores = new Float32Array(st.tensors.scores.data.buffer.slice(st.tensors.scores.data.byteOffset, st.tensors.scores.data.byteOffset + st.tensors.scores.data.byteLength));
  t.deepEqual(scores, r.scores);
  t.deepEqual(ones(new Uint8Array(st.tensors.circuit.data)), [...TRUE_CIRCUIT].sort((a, b) => a - b));
  t.regex(fs.readFileSync(path.join(out, 'circuit.dot'), 'utf8'), /"a0\.h1" -> "m1"/);
  t.regex(fs.readFileSync(path.join(out, 'report.html'), 'utf8'), /<svg/);
});
