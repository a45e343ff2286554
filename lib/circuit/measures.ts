/**
 * What a circuit is worth: node scores from edge scores, faithfulness (plain and normalised), random
 * circuits of the same size as the control, Hit@k of the answer token, agreement between two circuits.
 */
import { nodeScores as nativeNodeScores } from '../circuit';
import { NeuropruneError } from '../errors';
import { Rng } from '../tasks/random';
import { CircuitGraph, countEdges, nodeIndex } from './graph';

export interface NodeScore {
  node: string;
  /** Attribution patching of the node: the sum of its writer's outgoing edge scores. */
  score: number;
  /** The sum of |score| over those edges. */
  absScore: number;
}

/**
 * Node attribution patching (lib/circuit.ts nodeScores: the sum of a writer's outgoing edge scores, the
 * first-order effect of patching the node's output), named and sorted by |score|, largest first.
 */
export function nodeScores(g: CircuitGraph, scores: Float32Array): NodeScore[] {
  const sums = nativeNodeScores({ scores, graph: g });
  const R = g.readers.length;
  return g.writers
    .map((w, i) => {
      let a = 0;
      for (let r = 0; r < R; r++) a += Math.abs(scores[i * R + r]);
      return { node: w, score: sums[i], absScore: a };
    })
    .sort((x, y) => Math.abs(y.score) - Math.abs(x.score) || (x.node < y.node ? -1 : 1));
}

/** The nodes a mask touches (writers of kept edges and the nodes of their readers), in topological order. */
export function circuitNodes(g: CircuitGraph, mask: Uint8Array): string[] {
  const { nodes, writerNode, readerNode } = nodeIndex(g);
  const used = new Uint8Array(nodes.length);
  const R = g.readers.length;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    used[writerNode[Math.floor(i / R)]] = 1;
    used[readerNode[i % R]] = 1;
  }
  return nodes.filter((_, k) => used[k]);
}

export interface Faithfulness {
  /** metric(circuit) / metric(full model): Yao et al.'s and the issue's definition. */
  ratio: number | null;
  /**
   * (metric(circuit) - metric(empty circuit)) / (metric(full) - metric(empty)) (Hanna et al. 2024):
   * 1 when the circuit recovers the full model, 0 when it is no better than ablating every edge.
   */
  normalized: number | null;
}

/** Both faithfulness measures from three mean metrics; null where the denominator is 0. */
export function faithfulness(m: { circuit: number; full: number; empty: number }): Faithfulness {
  const ratio = m.full === 0 ? null : m.circuit / m.full;
  const normalized = m.full === m.empty ? null : (m.circuit - m.empty) / (m.full - m.empty);
  return { ratio, normalized };
}

/** `count` edges drawn without replacement from the graph's real edges, seeded: a random circuit of that size. */
export function randomCircuit(g: CircuitGraph, count: number, seed: number): Uint8Array {
  const real: number[] = [];
  for (let i = 0; i < g.edges.length; i++) if (g.edges[i]) real.push(i);
  if (count > real.length) throw new NeuropruneError('E_ARG', `a random circuit of ${count} edges from a graph of ${real.length}`);
  const rng = new Rng(seed);
  // Partial Fisher-Yates: the first `count` places are a uniform draw.
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(real.length - i);
    [real[i], real[j]] = [real[j], real[i]];
  }
  const mask = new Uint8Array(g.edges.length);
  for (let i = 0; i < count; i++) mask[real[i]] = 1;
  return mask;
}

/** 1 where the answer's rank (0 = top) is below k, per row. */
export function hits(answerRank: ArrayLike<number>, k = 10): Float64Array {
  return Float64Array.from(answerRank, (r) => (r < k ? 1 : 0));
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : NaN;
}

/** |A and B| / |B|: the share of circuit B's edges that circuit A holds too. */
export function overlap(a: Uint8Array, b: Uint8Array): number {
  let both = 0;
  for (let i = 0; i < b.length; i++) if (b[i] && a[i]) both++;
  const nb = countEdges(b);
  return nb === 0 ? NaN : both / nb;
}

/**
 * ROC-AUC of `scores` (higher = more likely positive) against `positive` over the items where
 * `among` is 1: the chance that a random positive outscores a random negative, ties counting half.
 */
export function rocAuc(scores: ArrayLike<number>, positive: Uint8Array, among: Uint8Array): number | null {
  const items: Array<[number, number]> = [];
  for (let i = 0; i < among.length; i++) if (among[i]) items.push([scores[i], positive[i]]);
  const nPos = items.filter((x) => x[1]).length, nNeg = items.length - nPos;
  if (nPos === 0 || nNeg === 0) return null;
  items.sort((a, b) => a[0] - b[0]);
  // Rank-sum (Mann-Whitney U) with mid-ranks for ties.
  let rankSum = 0;
  for (let i = 0; i < items.length; ) {
    let j = i;
    while (j + 1 < items.length && items[j + 1][0] === items[i][0]) j++;
    const midRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (items[k][1]) rankSum += midRank;
    i = j + 1;
  }
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
