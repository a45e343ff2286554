// Relearn's numbers on hand-computed cases: probeless scores, saliency, top tokens, Jaccard, random
// rankings, and the concept corpus formats.
import test from 'ava';
import { Rng } from '../lib/tasks/random';
import fs from 'node:fs';
import path from 'node:path';
import { cosine, jaccard, probelessScores, randomRanking, rankByScore, saliencyFromRanking, saliencyPerLayer, topTokens, topTokensAll } from '../lib/relearn/measure';
import { applyWordList, buildLocationConcept, readConceptFile } from '../lib/tasks/concept';
import { tokenSpans } from '../lib/relearn/tokens';
import { codeOf, tempDir } from './helpers';

test('probeless: |mean on concept tokens - mean on the others| per unit', (t) => {
  // 3 tokens x 2 units; tokens 0 and 2 are concept tokens.
  const a = { values: Float32Array.from([1, 5, 2, 5, 3, -1]), units: 2, concept: [true, false, true], tokenIds: [7, 8, 9] };
  t.deepEqual(Array.from(probelessScores(a)), [0, 3]);  // unit 0: (1+3)/2 - 2 = 0; unit 1: |(5-1)/2 - 5| = 3
  t.deepEqual(rankByScore([0, 3, 3, 1]), [1, 2, 3, 0]);
});

test('saliency: the top units score 1, then linearly down to 0 at the last rank; per layer mean and count above 0.5', (t) => {
  const s = saliencyFromRanking([3, 0, 1, 2, 4], 2);  // units 3 and 0 on top; ranks 2, 3, 4 score 2/3, 1/3, 0
  t.deepEqual(Array.from(s).map((x) => Math.round(x * 1000) / 1000), [1, 0.667, 0.333, 1, 0]);
  const per = saliencyPerLayer(Float32Array.from([1, 0.6, 0.2, 0]), 2);
  t.is(per[0].above, 2);
  t.is(per[1].above, 0);
  t.true(Math.abs(per[0].mean - 0.8) < 1e-6 && Math.abs(per[1].mean - 0.1) < 1e-6);
});

test('top tokens, Jaccard and cosine', (t) => {
  const a = { values: Float32Array.from([0.5, 2, 1, 3, 0.1, 4, 0, 0]), units: 1, concept: [], tokenIds: [1, 2, 1, 3, 4, 5, 6, 7] };
  t.deepEqual(topTokens(a, 0, 3), [5, 3, 2]);
  t.deepEqual(topTokens({ ...a, values: new Float32Array(8) }, 0), [], 'a unit that is zero everywhere has no top tokens');
  t.is(jaccard([1, 2, 3], [2, 3, 4]), 0.5);
  t.is(jaccard([], []), null);
  t.is(cosine([1, 0], [0, 2]), 0);
  t.true(Math.abs(cosine([1, 1], [2, 2])! - 1) < 1e-12);
});

test('top tokens equal the plain per-token maximum and sort on random data with ties', (t) => {
  const reference = (a: { values: Float32Array; units: number; tokenIds: number[] }, unit: number, k: number) => {
    const best = new Map<number, number>();
    a.tokenIds.forEach((id, i) => {
      const v = a.values[i * a.units + unit];
      if (!best.has(id) || v > best.get(id)!) best.set(id, v);
    });
    return [...best.entries()].sort((x, y) => y[1] - x[1] || x[0] - y[0]).slice(0, k).map(([id]) => id);
  };
  const rng = new Rng(4);
  const tokens = 300, units = 7;
  const a = { values: Float32Array.from({ length: tokens * units }, () => rng.int(6) - 2), units, concept: [], tokenIds: Array.from({ length: tokens }, () => rng.int(40)) };
  for (let u = 0; u < units; u++) for (const k of [1, 5, 60]) t.deepEqual(topTokens(a, u, k), reference(a, u, k), `unit ${u}, k ${k}`);
  // Every unit at once (relearn's "before" lists) gives the same lists; a unit zero everywhere has none.
  const zeroed = { ...a, values: a.values.map((v, i) => (i % units === 3 ? 0 : v)) };
  for (const k of [1, 5, 60]) t.deepEqual(topTokensAll(zeroed, k), Array.from({ length: units }, (_, u) => (u === 3 ? [] : reference(zeroed, u, k))));
});

test('random rankings are permutations of all units, and different seeds give different ones', (t) => {
  const a = randomRanking(1000, 1), b = randomRanking(1000, 2);
  t.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
  t.notDeepEqual(a, b);
  t.deepEqual(a, randomRanking(1000, 1));
  // Really random: the top 10% is spread over the whole id range, not a block of low ids.
  const top = a.slice(0, 100);
  t.true(Math.max(...top) > 800 && Math.min(...top) < 200);
  t.true(top.filter((u) => u < 500).length > 30 && top.filter((u) => u >= 500).length > 30);
});

test('concept corpora: spans from JSONL, from a word list; malformed lines are named', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'c.jsonl');
  fs.writeFileSync(file, '{"text": "I live in Paris.", "spans": [[10, 15]]}\n');
  t.deepEqual(readConceptFile(file), [{ text: 'I live in Paris.', spans: [[10, 15]] }]);
  fs.writeFileSync(file, '{"text": "ok", "spans": []}\n{"text": "I live in Paris.", "spans": [[10, 99]]}\n');
  t.is(await codeOf(() => readConceptFile(file)), 'E_PROMPT_FILE');
  t.throws(() => readConceptFile(file), { message: /c\.jsonl:2: spans\.0/ });
  fs.writeFileSync(file, '{"text": "x", "spans": [["a", 1]]}\n');
  t.throws(() => readConceptFile(file), { message: /c\.jsonl:1: spans\.0\.0/ });
  t.deepEqual(applyWordList(['New York and York, not Yorkshire'], ['York', 'New York']), [{ text: 'New York and York, not Yorkshire', spans: [[0, 8], [13, 17]] }]);
});

test('the location builder marks countries, capitals, cities and continents', (t) => {
  const dataDir = path.resolve(__dirname, '../../shared/data');
  if (!fs.existsSync(dataDir)) return t.pass('no shared data here');
  const texts = buildLocationConcept({ dataDir, seed: 0, limit: 200 });
  t.is(texts.length, 200);
  for (const { text, spans } of texts) {
    t.true(spans.length >= 1);
    for (const [s, e] of spans) t.regex(text.slice(s, e), /^\S(.*\S)?$/);
  }
  const capital = texts.find((x) => x.text.includes('capital'));
  t.truthy(capital);
});

test('token character spans: byte-level, WordPiece and word-level strings, special tokens cover nothing', (t) => {
  t.deepEqual(tokenSpans('I saw Paris.', ['I', 'Ġsaw', 'ĠPar', 'is', '.']), [[0, 1], [2, 5], [6, 9], [9, 11], [11, 12]]);
  t.deepEqual(tokenSpans("Norway's capital", ['<s>', 'Norway', "'", 's', 'capital', '</s>']), [[0, 0], [0, 6], [6, 7], [7, 8], [9, 16], [16, 16]]);
  t.deepEqual(tokenSpans('unhappy', ['un', '##happy']), [[0, 2], [2, 7]]);
});
