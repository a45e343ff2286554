/**
 * Fixtures for the circuit tests: a small LRE relation file whose facts exercise every rule of the
 * data (a subject with two objects, an unknown fact, a fact with no partner of its length, two facts
 * sharing an answer token), and a stand-in model that answers through a known set of edges.
 *
 * The stand-in (byte-level tokenizer, so a prompt has one token per character) knows a fact when its
 * subject is in KNOWN. Its graph is standardGraph(2, 2); ablating any edge of TRUE_CIRCUIT costs 1 in
 * log p(answer) and pushes the answer out of the top 10; ablating any other edge costs 0.0001.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TextTokenizer } from '../lib';
import { standardGraph } from '../lib/circuit/graph';
import type { CircuitModel } from '../lib/circuit/model-api';
import type { Logits, ModelInfo } from '../lib/model';

export const TEMPLATE_ZS = '{} is in';
export const SAMPLES: Array<[string, string]> = [
  ['Aa', 'Paris'], ['Bb', 'London'], ['Cc', 'Rome'], ['Dd', 'Prague'], ['Hh', 'Oslo'],
  ['Eee', 'Kiev'], ['Fff', 'Lima'], ['Ggggg', 'Bern'], ['Ii', 'Doha'], ['Ii', 'Dubai'],
];
/** Subjects the stand-in knows (Hh is unknown). */
export const KNOWN = new Set(['Aa', 'Bb', 'Cc', 'Dd', 'Eee', 'Fff', 'Ggggg', 'Ii']);
/** Aa..Dd and Eee/Fff find partners (Aa and Dd share the answer "P", so are never each other's). */
export const PAIRED = ['Aa', 'Bb', 'Cc', 'Dd', 'Eee', 'Fff'];

export function relationFile(dir: string, name = 'toy_relation'): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({
    name: 'toy relation',
    prompt_templates: ['{} lies in'],
    prompt_templates_zs: [TEMPLATE_ZS],
    samples: SAMPLES.map(([subject, object]) => ({ subject, object })),
  }, null, 1));
  return file;
}

export const GRAPH = standardGraph(2, 2);
const R = GRAPH.readers.length;
const flat = (w: string, r: string) => GRAPH.writers.indexOf(w) * R + GRAPH.readers.indexOf(r);
/** input -> a0.h1 (through v) -> m1 -> logits */
export const TRUE_CIRCUIT = [flat('input', 'a0.h1<v>'), flat('a0.h1', 'm1'), flat('m1', 'logits')];

export interface FakeCalls {
  edgeScores: number;
  ablatedRun: number;
  lengths: Set<number>;
}

export function fakeCircuitModel(tokenizer = TextTokenizer.byteLevel()): CircuitModel & { calls: FakeCalls } {
  const vocab = 257;
  const calls: FakeCalls = { edgeScores: 0, ablatedRun: 0, lengths: new Set() };
  const answerOf = (ids: number[]) => {
    const subject = tokenizer.decode(ids).replace(/ is in$/, '');
    const fact = SAMPLES.find(([s]) => s === subject);
    return { known: KNOWN.has(subject), answer: fact ? tokenizer.encode(fact[1])[0] : 0 };
  };
  const sameLength = (rows: number[][]) => {
    if (new Set(rows.map((r) => r.length)).size !== 1) throw new Error('rows of one call must have one length');
    calls.lengths.add(rows[0].length);
  };
  const info = { id: 'fake', nLayers: 2, nHeads: 2, vocabSize: vocab, maxPositions: 0 } as unknown as ModelInfo;
  return {
    calls,
    info,
    tokenizer,
    async logits(input, options) {
      if (!options?.lastOnly) throw new Error('the fake has last-position logits only');
      const rows = input as number[][];
      const data = new Float32Array(rows.length * vocab);
      rows.forEach((ids, b) => {
        // Logits rise with the token id (the answer of an unknown fact ranks far below 10), and a known
        // fact's answer is on top.
        const { known, answer } = answerOf(ids);
        for (let i = 0; i < vocab; i++) data[b * vocab + i] = i / vocab;
        if (known) data[b * vocab + answer] = 10;
      });
      return { data, shape: [rows.length, 1, vocab], tokens: undefined as never, at: (b: number) => data.subarray(b * vocab, (b + 1) * vocab) } as Logits;
    },
    circuitGraph: () => GRAPH,
    async edgeScores(o) {
      sameLength(o.clean);
      sameLength([...o.clean, ...o.corrupted]);
      calls.edgeScores++;
      const scores = new Float32Array(GRAPH.edges.length);
      GRAPH.edges.forEach((e, i) => (scores[i] = e ? (TRUE_CIRCUIT.includes(i) ? -1 : -0.001) : 0));
      o.onProgress?.(1, 1);
      return { scores, graph: GRAPH, metricClean: -0.1, metricCorrupted: -3.1, ms: 1, microBatches: 1, method: o.method, steps: o.steps ?? 5 };
    },
    async ablatedRun(o) {
      sameLength(o.clean);
      if (o.signal?.aborted) throw Object.assign(new Error('aborted'), { code: 'E_ABORTED' });
      calls.ablatedRun++;
      // Several masks back to back: results mask-major [masks x rows], as the native call returns them.
      const E = GRAPH.edges.length, masks = o.kept.length / E, rows = o.clean.length, k = o.topK ?? 10;
      const metric = new Float32Array(masks * rows), answerRank = new Int32Array(masks * rows), topTokens = new Int32Array(masks * rows * k);
      for (let m = 0; m < masks; m++) {
        let lost = 0, other = 0;
        GRAPH.edges.forEach((e, i) => {
          if (e && !o.kept[m * E + i]) TRUE_CIRCUIT.includes(i) ? lost++ : other++;
        });
        for (let b = 0; b < rows; b++) {
          metric[m * rows + b] = -0.1 - lost - 0.0001 * other;
          answerRank[m * rows + b] = lost ? 50 : 0;
          if (!lost) topTokens[(m * rows + b) * k] = o.metric.answer[b];
        }
      }
      return { metric, topTokens, answerRank };
    },
    async logitLens(o) {
      sameLength(o.clean);
      const ranks = new Int32Array(o.clean.length * GRAPH.writers.length).fill(100);
      for (let b = 0; b < o.clean.length; b++) ranks[b * GRAPH.writers.length + GRAPH.writers.indexOf('m1')] = 0;
      return { ranks, graph: GRAPH };
    },
  };
}
