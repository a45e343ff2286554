// The selection rules of QRNCA and knowledge neurons on hand-computed examples, and the MCQA data
// reader's checks (no model needed).
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { aboveThreshold, inverseClusterAttribution, jaccard, knowledgeNeurons, neuronAttribution, readMcqa, resolveLetters, selectQueryNeurons, TextTokenizer } from '../lib';
import { packageRoot } from '../lib/native';
import { codeOf, tempDir } from './helpers';

const DATA = path.join(packageRoot(), '..', 'shared', 'data', 'qrneuron');

test('aboveThreshold keeps scores above t x max, none when nothing is positive', (t) => {
  t.deepEqual(aboveThreshold([1, 0.5, 0.19, -3, 0.21], 0.2), [0, 1, 4]);
  t.deepEqual(aboveThreshold([-1, -2, 0], 0.2), []);
});

test('NA: union of the templates\' kept neurons, summed over every template, divided by the largest |sum|', (t) => {
  // template 0 keeps {0, 1} (max 10, cut 2); template 1 keeps {2} (max 4, cut 0.8)
  const na = neuronAttribution([[10, 3, 1, 0], [-1, 0.5, 4, 0.7]], 0.2);
  t.deepEqual([...na.keys()], [0, 1, 2]);
  t.is(na.get(0), 9 / 9);
  t.is(na.get(1), 3.5 / 9);
  t.is(na.get(2), 5 / 9);
});

test('ICA on a hand-computed example: log(|C| / (1 + clusters holding n))', (t) => {
  // four clusters; neuron 1 in all, neuron 2 in two, neuron 3 in one
  const ica = inverseClusterAttribution([[1, 2], [1, 2, 3], [1], [1, 1]]);
  t.deepEqual(ica.get(1), { count: 4, ica: Math.log(4 / 5) });
  t.deepEqual(ica.get(2), { count: 2, ica: Math.log(4 / 3) });
  t.deepEqual(ica.get(3), { count: 1, ica: Math.log(4 / 2) });
  t.false(ica.has(4));
});

test('selection: na x ica, common neurons (more than u of the clusters) removed, top v positive', (t) => {
  const na = new Map([[1, 1], [2, 0.5], [3, 0.4], [4, -0.2]]);
  const clusters = [[1, 2, 3, 4], [1, 2], [1], [1], [1], [1], [1], [1], [1], [1]];  // 10 clusters
  const ica = inverseClusterAttribution(clusters);
  // neuron 1 is in 10/10 clusters, neuron 2 in 2/10, neurons 3 and 4 in 1/10
  const chosen = selectQueryNeurons(na, ica, { u: 0.3, v: 20, nClusters: 10 });
  // neuron 3: 0.4 log(10/2) = 0.644 before neuron 2: 0.5 log(10/3) = 0.602; 1 is common, 4 negative
  t.deepEqual(chosen.map((n) => n.flat), [3, 2]);
  t.true(Math.abs(chosen[0].score - 0.4 * Math.log(5)) < 1e-12);
  t.true(Math.abs(chosen[1].score - 0.5 * Math.log(10 / 3)) < 1e-12);
  t.deepEqual(selectQueryNeurons(na, ica, { u: 0.3, v: 1, nClusters: 10 }).map((n) => n.flat), [3]);
  // With u = 0.15 neuron 2 (20% of the clusters) is common too.
  t.deepEqual(selectQueryNeurons(na, ica, { u: 0.15, v: 20, nClusters: 10 }).map((n) => n.flat), [3]);
  // Keeping common neurons: neuron 1 has ica log(10/11) < 0 and still falls out by its sign.
  t.deepEqual(selectQueryNeurons(na, ica, { u: 0.3, v: 20, nClusters: 10, keepCommon: true }).map((n) => n.flat), [3, 2]);
  // Without ICA (and keeping common): by NA alone.
  t.deepEqual(selectQueryNeurons(na, ica, { u: 0.3, v: 20, nClusters: 10, withoutIca: true, keepCommon: true }).map((n) => n.flat), [1, 2, 3]);
});

test('knowledge neurons: above t x max per prompt, shared by more than p of the prompts', (t) => {
  const prompts = [
    [10, 5, 0, 3],
    [8, 0, 6, 3],
    [9, 4, 0, 0],
  ];
  // kept per prompt: {0,1,3}, {0,2,3}, {0,1}; shared: 0 by 3, 1 by 2, 3 by 2, 2 by 1
  t.deepEqual(knowledgeNeurons(prompts, 0.2, 0.5).map((n) => [n.flat, n.shared]), [[0, 3], [1, 2], [3, 2]]);
  t.deepEqual(knowledgeNeurons(prompts, 0.2, 0.7).map((n) => n.flat), [0]);
  t.is(knowledgeNeurons(prompts, 0.2, 0.7)[0].score, 9);
});

test('jaccard overlap', (t) => {
  t.is(jaccard(new Set([1, 2, 3]), new Set([2, 3, 4])), 0.5);
  t.is(jaccard(new Set(), new Set()), 1);
});

test('the shared qrneuron files load: 6 domains, 3 templates per query, gold letters A..D', (t) => {
  const subject = readMcqa(path.join(DATA, 'subject_qa.json'));
  t.is(new Set(subject.map((q) => q.domain)).size, 6);
  t.true(subject.every((q) => q.templates.length === 3 && q.templates.every((x) => 'ABCD'.includes(x.gold))));
  const language = readMcqa(path.join(DATA, 'language_qa.json'));
  t.deepEqual([...new Set(language.map((q) => q.domain))].sort(), ['ar', 'en', 'fr', 'ja', 'ru', 'zh']);
});

test('a malformed data file is E_DATA_FILE naming the query and the field', async (t) => {
  const dir = tempDir();
  const write = (name: string, value: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
    return file;
  };
  const good = { sentences: ['Q?\nResponse:', 'Q2?\nResponse:'], obj_label: ['A', 'B'], relation_name: 'd' };
  const cases: Array<[unknown, RegExp]> = [
    ['{not json', /not JSON/],
    [[1, 2], /must be an object/],
    [{ q1: good, q2: { ...good, obj_label: ['A'] } }, /query "q2": obj_label has 1 letters for 2 sentences/],
    [{ q1: good, q3: { ...good, obj_label: ['A', 'E'] } }, /query "q3": obj_label\[1\] must be one of A, B, C, D/],
    [{ q4: { ...good, sentences: ['ok', 7] } }, /query "q4": sentences\[1\] must be a non-empty string/],
    [{ q5: { ...good, relation_name: undefined } }, /query "q5": relation_name must be a non-empty string/],
    [{ q6: 'text' }, /query "q6": \(the entry\) must be an object/],
    [{}, /holds no queries/],
  ];
  for (const [i, [value, message]] of cases.entries()) {
    const file = write(`bad${i}.json`, value);
    const error = t.throws(() => readMcqa(file));
    t.is((error as { code?: string }).code, 'E_DATA_FILE');
    t.regex(error!.message, message);
    t.true(error!.message.startsWith(file));
  }
  t.is(await codeOf(() => readMcqa(path.join(dir, 'missing.json'))), 'E_DATA_FILE');
});

test('gold letters: the token the tokenizer produces after the template, with or without a leading space', (t) => {
  const bytes = TextTokenizer.byteLevel();
  const query = { id: 'q', domain: 'd', templates: [{ prompt: 'Which?\nResponse:', gold: 'C' }] };
  // Byte level: " C" is two tokens, so the bare letter is used.
  const r = resolveLetters(bytes, query);
  t.true(r.ok);
  if (r.ok) {
    t.false(r.query.space);
    t.is(r.query.tokens[0].gold, bytes.encode('C', { addSpecialTokens: false })[0]);
    t.deepEqual(r.query.tokens[0].letters, ['A', 'B', 'C', 'D'].map((l) => bytes.encode(l, { addSpecialTokens: false })[0]));
  }
  const spaced = resolveLetters(bytes, query, 'space');
  t.false(spaced.ok);
  if (!spaced.ok) t.regex(spaced.reason, /" A" after the template is 2 tokens, not one/);
});
