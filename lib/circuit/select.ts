/**
 * From edge scores to a circuit: the top n edges (or those above a threshold) by |score|, then dead
 * nodes pruned, so that every kept edge lies on a path input -> ... -> logits.
 */
import { NeuropruneError } from '../errors';
import { CircuitGraph, countEdges, nodeIndex } from './graph';

/** Real edges ranked by |score| (largest first; ties by flat index, so the ranking is stable). */
export function rankEdges(g: CircuitGraph, scores: Float32Array): number[] {
  checkScores(g, scores);
  const flat: number[] = [];
  for (let i = 0; i < g.edges.length; i++) if (g.edges[i]) flat.push(i);
  return flat.sort((a, b) => Math.abs(scores[b]) - Math.abs(scores[a]) || a - b);
}

/**
 * A mask [writers x readers] of the n edges of largest |score| (all of them when n exceeds the count).
 * `ranked` (rankEdges of the same scores) saves the sort when several n are taken.
 */
export function topEdges(g: CircuitGraph, scores: Float32Array, n: number, ranked = rankEdges(g, scores)): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new NeuropruneError('E_ARG', `top-n must be a non-negative integer, got ${n}`);
  const mask = new Uint8Array(g.edges.length);
  for (let i = 0; i < Math.min(n, ranked.length); i++) mask[ranked[i]] = 1;
  return mask;
}

/** A mask of the edges with |score| >= threshold. */
export function edgesAbove(g: CircuitGraph, scores: Float32Array, threshold: number): Uint8Array {
  if (!(threshold >= 0)) throw new NeuropruneError('E_ARG', `threshold must be a number >= 0, got ${threshold}`);
  checkScores(g, scores);
  const mask = new Uint8Array(g.edges.length);
  for (let i = 0; i < g.edges.length; i++) if (g.edges[i] && Math.abs(scores[i]) >= threshold) mask[i] = 1;
  return mask;
}

/**
 * Keeps only the edges on some path input -> ... -> logits through kept edges. A node is reached from
 * the input when a kept edge comes into any of its readers (q, k, v or MLP input) from a reached node;
 * it reaches the logits when a kept edge leaves its writer for a node that does. Returns a new mask.
 */
export function pruneDeadNodes(g: CircuitGraph, kept: Uint8Array): Uint8Array {
  const { nodes, writerNode, readerNode } = nodeIndex(g);
  const W = g.writers.length, R = g.readers.length;
  const inputNode = writerNode[0], logitsNode = readerNode[R - 1];
  const on = (w: number, r: number) => kept[w * R + r] === 1 && g.edges[w * R + r] === 1;
  // Forward from the input: writers are in topological order, and every edge goes forward.
  const fromInput = new Uint8Array(nodes.length);
  fromInput[inputNode] = 1;
  for (let w = 0; w < W; w++) {
    if (!fromInput[writerNode[w]]) continue;
    for (let r = 0; r < R; r++) if (on(w, r)) fromInput[readerNode[r]] = 1;
  }
  // Backward from the logits: writers in reverse order.
  const toLogits = new Uint8Array(nodes.length);
  toLogits[logitsNode] = 1;
  for (let w = W - 1; w >= 0; w--) {
    for (let r = 0; r < R; r++) {
      if (on(w, r) && toLogits[readerNode[r]]) {
        toLogits[writerNode[w]] = 1;
        break;
      }
    }
  }
  const out = new Uint8Array(kept.length);
  for (let w = 0; w < W; w++) {
    if (!fromInput[writerNode[w]]) continue;
    for (let r = 0; r < R; r++) if (on(w, r) && toLogits[readerNode[r]]) out[w * R + r] = 1;
  }
  return out;
}

export interface SelectedCircuit {
  /** [writers x readers]: 1 for the circuit's edges, after dead nodes are pruned. */
  mask: Uint8Array;
  /** Edges chosen by score, before pruning. */
  chosen: number;
  edges: number;
}

/** Top n (or threshold) then dead-node pruning; `ranked` as for topEdges. */
export function selectCircuit(g: CircuitGraph, scores: Float32Array, by: { topN: number } | { threshold: number }, ranked?: number[]): SelectedCircuit {
  const chosen = 'topN' in by ? topEdges(g, scores, by.topN, ranked) : edgesAbove(g, scores, by.threshold);
  const mask = pruneDeadNodes(g, chosen);
  return { mask, chosen: countEdges(chosen), edges: countEdges(mask) };
}

function checkScores(g: CircuitGraph, scores: Float32Array): void {
  if (scores.length !== g.edges.length) throw new NeuropruneError('E_ARG', `${scores.length} edge scores for a graph of ${g.writers.length} x ${g.readers.length}`);
}
