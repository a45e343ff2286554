/**
 * How good a circuit is on one split of the facts, against that split's own labels: the metric and
 * Hit@k with every other edge ablated, beside the full model, the empty circuit (every edge ablated)
 * and random circuits of the same size; and the faithfulness-vs-edges curve of top-n circuits.
 */
import { countEdges, CircuitGraph } from '../circuit/graph';
import { faithfulness, Faithfulness, hits, mean, randomCircuit } from '../circuit/measures';
import type { Ablation, CircuitModel } from '../circuit/model-api';
import { rankEdges, selectCircuit } from '../circuit/select';
import { Interval, bootstrapMean, pairedBootstrap } from '../stats';
import { subSeed } from '../tasks/random';
import type { CircuitFact } from '../tasks/circuit-data';
import { ablatedRowsMany, MetricKind, RowResults } from './circuit-runs';

export interface EvalSettings {
  ablation: Ablation;
  metric: MetricKind;
  hitK: number;
  memoryBudgetMB?: number;
  randomDraws: number;
  seed: number;
  resamples: number;
  signal?: AbortSignal;
  /** Called after each ablated run. */
  onRun?: () => void;
}

export interface Condition {
  edges: number;
  /** Mean metric over the split's facts. */
  metric: number;
  /** Share of facts whose answer is in the top k, with a bootstrap 95% interval over facts. */
  hit: Interval;
}

export interface SplitEvaluation {
  split: 'validation' | 'test';
  facts: number;
  full: Condition;
  /** Every edge ablated. */
  empty: Condition;
  circuit: Condition & { faithfulness: Faithfulness };
  /** Random circuits of the circuit's edge count: per-fact Hit averaged over the draws, metric the mean of the draws'. */
  random: Condition & { faithfulness: Faithfulness; draws: Array<{ seed: number; metric: number; hit: number; faithfulness: Faithfulness }> };
  /** Circuit minus random Hit@k, paired over facts. */
  hitCircuitMinusRandom: Interval | null;
}

/** The number of ablated runs evaluateSplit makes (for progress). */
export function runsPerSplit(s: { randomDraws: number }): number {
  return 3 + s.randomDraws;
}

export async function evaluateSplit(model: CircuitModel, g: CircuitGraph, rows: CircuitFact[], circuit: Uint8Array, split: 'validation' | 'test', s: EvalSettings): Promise<SplitEvaluation> {
  const boot = { resamples: s.resamples, seed: subSeed(s.seed, 'bootstrap', split) };
  const condition = (kept: Uint8Array, r: RowResults): Condition => ({ edges: countEdges(kept), metric: mean(r.metric), hit: bootstrapMean(hits(r.answerRank, s.hitK), boot) });
  const empty = new Uint8Array(g.edges.length);
  const n = countEdges(circuit);
  const seeds = Array.from({ length: s.randomDraws }, (_, k) => subSeed(s.seed, 'random-circuit', k));
  // Full, empty, the circuit and the random circuits in one batched run.
  const masks = [g.edges, empty, circuit, ...seeds.map((seed) => randomCircuit(g, n, seed))];
  const [full, none, mine, ...randoms] = await ablatedRowsMany(model, rows, masks, s);
  masks.forEach(() => s.onRun?.());
  const m = (r: RowResults) => mean(r.metric);
  const faith = (r: RowResults) => faithfulness({ circuit: m(r), full: m(full), empty: m(none) });
  const draws: SplitEvaluation['random']['draws'] = [];
  const randomHit = new Float64Array(rows.length), randomMetric = new Float64Array(rows.length);
  randoms.forEach((r, k) => {
    const h = hits(r.answerRank, s.hitK);
    h.forEach((v, i) => (randomHit[i] += v / s.randomDraws));
    r.metric.forEach((v, i) => (randomMetric[i] += v / s.randomDraws));
    draws.push({ seed: seeds[k], metric: m(r), hit: mean(h), faithfulness: faith(r) });
  });
  const mineHit = hits(mine.answerRank, s.hitK);
  return {
    split,
    facts: rows.length,
    full: condition(g.edges, full),
    empty: condition(empty, none),
    circuit: { ...condition(circuit, mine), faithfulness: faith(mine) },
    random: {
      edges: n,
      metric: s.randomDraws ? mean(randomMetric) : NaN,
      hit: s.randomDraws ? bootstrapMean(randomHit, boot) : { delta: NaN, low: NaN, high: NaN, level: 0.95, resamples: 0 },
      faithfulness: s.randomDraws ? faithfulness({ circuit: mean(randomMetric), full: m(full), empty: m(none) }) : { ratio: null, normalized: null },
      draws,
    },
    hitCircuitMinusRandom: s.randomDraws ? pairedBootstrap([{ before: randomHit, after: mineHit }], boot) : null,
  };
}

export interface CurvePoint {
  /** Edges asked for (top n by |score|). */
  n: number;
  /** Edges left after dead nodes are pruned. */
  edges: number;
  faithfulness: Faithfulness;
  hit: number;
  /** One random circuit of the same edge count (seeded per n). */
  random: { faithfulness: Faithfulness; hit: number };
}

/** Faithfulness and Hit@k of the top-n circuits for each n, beside one random circuit of each size. */
export async function faithfulnessCurve(
  model: CircuitModel,
  g: CircuitGraph,
  scores: Float32Array,
  rows: CircuitFact[],
  sizes: number[],
  reference: { full: number; empty: number },
  s: EvalSettings,
): Promise<CurvePoint[]> {
  const ranked = rankEdges(g, scores);
  const circuits = sizes.map((n) => selectCircuit(g, scores, { topN: n }, ranked));
  const masks = circuits.flatMap(({ mask, edges }, k) => [mask, randomCircuit(g, edges, subSeed(s.seed, 'curve-random', sizes[k]))]);
  const results = await ablatedRowsMany(model, rows, masks, s);
  masks.forEach(() => s.onRun?.());
  const points: CurvePoint[] = sizes.map((n, k) => {
    const mine = results[2 * k], random = results[2 * k + 1];
    return {
      n,
      edges: circuits[k].edges,
      faithfulness: faithfulness({ circuit: mean(mine.metric), ...reference }),
      hit: mean(hits(mine.answerRank, s.hitK)),
      random: { faithfulness: faithfulness({ circuit: mean(random.metric), ...reference }), hit: mean(hits(random.answerRank, s.hitK)) },
    };
  });
  return points;
}

/** The curve's sizes: the asked ones below the graph's edge count, then the whole graph. */
export function curveSizes(asked: number[], totalEdges: number): number[] {
  return [...new Set([...asked.filter((n) => n < totalEdges), totalEdges])].sort((a, b) => a - b);
}
