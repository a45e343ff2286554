/**
 * The circuit pipeline's native calls over facts of several prompt lengths: native calls take rows of
 * one length, so each is made per length group and the results are put back together (edge scores
 * averaged with the groups' sizes as weights, per-row results concatenated in group order).
 */
import { NeuropruneError } from '../errors';
import type { EdgeScores } from '../circuit';
import type { CircuitGraph } from '../circuit/graph';
import type { Ablation, CircuitMetric, CircuitModel } from '../circuit/model-api';
import { CircuitFact, groupByLength } from '../tasks/circuit-data';
import { ChunkStore } from './chunk-store';

export type MetricKind = CircuitMetric['kind'];

/** The native metric of rows: the answer, and the corrupted partner's answer as the wrong one. */
export function metricOf(kind: MetricKind, rows: CircuitFact[]): CircuitMetric {
  return { kind, answer: rows.map((r) => r.answer), wrong: rows.map((r) => r.corrupted.answer) };
}

/** Edge scores over every length group: metricClean and metricCorrupted are row-weighted means over the groups. */
export interface ScoredEdges extends Omit<EdgeScores, 'method' | 'steps'> {
  groups: number;
  resumedGroups: number;
}

/**
 * EAP or EAP-IG edge scores of `rows`, averaged over rows. With a chunk store, each length group's
 * scores are kept as they finish, so that a killed run resumes with the groups already done.
 */
export async function edgeScoresOver(
  model: CircuitModel,
  rows: CircuitFact[],
  o: {
    method: 'eap' | 'eap-ig'; metric: MetricKind; steps: number; memoryBudgetMB: number; store?: ChunkStore; storeKey?: number; signal?: AbortSignal; onProgress?: (done: number, total: number) => void;
    /** Only these length groups (a shard's; the sums then cover only them). */
    groups?: number[];
    /** The chunk folders of a sharded run's shards: groups not in `store` are taken from them (group k from shard k mod N). */
    shardStores?: ChunkStore[];
  },
): Promise<ScoredEdges> {
  const groups = groupByLength(rows);
  let sum: Float64Array | undefined, graph: CircuitGraph | undefined;
  let clean = 0, corrupted = 0, ms = 0, microBatches = 0, rowsDone = 0, resumedGroups = 0;
  const total = o.groups ? o.groups.reduce((n, k) => n + groups[k].length, 0) : rows.length;
  for (const [k, group] of groups.entries()) {
    if (o.groups && !o.groups.includes(k)) continue;
    if (o.signal?.aborted) throw new NeuropruneError('E_ABORTED', 'circuit cancelled');
    const key = (o.storeKey ?? 0) * 10_000 + k;
    let flat = o.store?.get(key);
    graph ??= model.circuitGraph();
    const E = graph.edges.length;
    if (!(flat && flat.length === E + 4) && o.shardStores?.length) {
      flat = o.shardStores[k % o.shardStores.length].get(key);
      if (flat && flat.length === E + 4) o.store?.put(key, flat);
    }
    if (flat && flat.length === E + 4) {
      resumedGroups++;
    } else {
      const r = await model.edgeScores({
        clean: group.map((f) => f.ids),
        corrupted: group.map((f) => f.corrupted.ids),
        metric: metricOf(o.metric, group),
        method: o.method,
        steps: o.steps,
        memoryBudgetBytes: Math.round(o.memoryBudgetMB * 2 ** 20),
        signal: o.signal,
        onProgress: (done, steps) => o.onProgress?.(Math.floor(rowsDone + (group.length * done) / Math.max(steps, 1)), total),
      });
      if (r.scores.length !== E) throw new NeuropruneError('E_SHAPE', `edgeScores returned ${r.scores.length} scores for a graph of ${E} edge slots`);
      flat = new Float32Array(E + 4);
      flat.set(r.scores);
      flat.set([r.metricClean, r.metricCorrupted, r.ms, r.microBatches], E);
      o.store?.put(key, flat);
    }
    sum ??= new Float64Array(E);
    for (let i = 0; i < E; i++) sum[i] += flat[i] * group.length;
    clean += flat[E] * group.length;
    corrupted += flat[E + 1] * group.length;
    ms += flat[E + 2];
    microBatches += flat[E + 3];
    rowsDone += group.length;
    o.onProgress?.(rowsDone, total);
  }
  const n = rows.length;
  return {
    // A shard whose groups are none (fewer groups than shards) has nothing to sum.
    scores: sum ? Float32Array.from(sum, (v) => v / n) : new Float32Array(0),
    graph: graph ?? model.circuitGraph(),
    metricClean: clean / n,
    metricCorrupted: corrupted / n,
    ms,
    microBatches,
    groups: groups.length,
    resumedGroups,
  };
}

/** Per-row results of a run with some edges ablated, rows in group order (see `rowOrder`). */
export interface RowResults {
  metric: Float64Array;
  answerRank: Int32Array;
}

/** The rows in the order ablated runs return them: grouped by length. */
export function rowOrder(rows: CircuitFact[]): CircuitFact[] {
  return groupByLength(rows).flat();
}

export interface AblatedRowsOptions {
  ablation: Ablation;
  metric: MetricKind;
  hitK: number;
  memoryBudgetMB?: number;
  signal?: AbortSignal;
}

/** The metric and the answer's rank per row with the edges where `kept` is 0 ablated. */
export async function ablatedRows(model: CircuitModel, rows: CircuitFact[], kept: Uint8Array, o: AblatedRowsOptions): Promise<RowResults> {
  return (await ablatedRowsMany(model, rows, [kept], o))[0];
}

/**
 * The same for several masks at once: one native call per length group runs every mask on every row
 * (the ablation values computed once); one RowResults per mask.
 */
export async function ablatedRowsMany(model: CircuitModel, rows: CircuitFact[], masks: Uint8Array[], o: AblatedRowsOptions): Promise<RowResults[]> {
  const out = masks.map(() => ({ metric: new Float64Array(rows.length), answerRank: new Int32Array(rows.length) }));
  const kept = new Uint8Array(masks.reduce((n, m) => n + m.length, 0));
  masks.reduce((offset, m) => (kept.set(m, offset), offset + m.length), 0);
  let at = 0;
  for (const group of groupByLength(rows)) {
    if (o.signal?.aborted) throw new NeuropruneError('E_ABORTED', 'circuit cancelled');
    const r = await model.ablatedRun({
      clean: group.map((f) => f.ids),
      kept,
      ablation: o.ablation,
      // corrupted: each row's partner; mean: the writer's output averaged over the group's partners.
      corrupted: o.ablation === 'zero' ? undefined : group.map((f) => f.corrupted.ids),
      metric: metricOf(o.metric, group),
      topK: o.hitK,
      memoryBudgetBytes: o.memoryBudgetMB === undefined ? undefined : Math.round(o.memoryBudgetMB * 2 ** 20),
      signal: o.signal,
    });
    const G = group.length;
    // Results are mask-major [masks x rows]; the native rank counts ties against the answer (a run
    // whose logits all tie, every edge into the logits zero-ablated, ranks it last).
    out.forEach((res, m) => {
      group.forEach((_, b) => {
        const i = m * G + b;
        res.metric[at + b] = r.metric[i];
        res.answerRank[at + b] = r.answerRank[i];
      });
    });
    at += G;
  }
  return out;
}

/** Per row and writer, the answer's rank through the logit lens, rows in group order. */
export async function logitLensRanks(model: CircuitModel, rows: CircuitFact[], writers: number, signal?: AbortSignal): Promise<Int32Array> {
  const out = new Int32Array(rows.length * writers);
  let at = 0;
  for (const group of groupByLength(rows)) {
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'circuit cancelled');
    const r = await model.logitLens({ clean: group.map((f) => f.ids), answer: group.map((f) => f.answer) });
    out.set(r.ranks, at * writers);
    at += group.length;
  }
  return out;
}
