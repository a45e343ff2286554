/**
 * A model seen as a circuit graph (Yao et al. 2024; Hanna et al. 2024): writers (the input embeddings,
 * every attention head, every MLP) write into the residual stream; readers (each head's q, k and v
 * inputs, each MLP's input, the logits) read it. An edge is a (writer, reader) pair where the reader
 * comes after the writer. Masks and scores are flat [writers x readers] row-major arrays.
 *
 * Names in TransformerLens style: writers `input`, `a{l}.h{h}`, `m{l}`; readers `a{l}.h{h}<q>`,
 * `<k>`, `<v>`, `m{l}`, `logits`. A reader belongs to its writer's node: `a3.h5<q>` and `a3.h5` are one
 * node, `a3.h5`; the MLP `m7` is one node for both roles.
 */

import type { CircuitGraph } from '../circuit';

export type { CircuitGraph };

/** One edge, by its place in the flat [writers x readers] arrays. */
export interface EdgeRef {
  writer: number;
  reader: number;
  /** writer * readers.length + reader */
  flat: number;
}

/** The node a writer or reader name belongs to: `a3.h5<q>` -> `a3.h5`. */
export function nodeOf(name: string): string {
  return name.replace(/<[qkv]>$/, '');
}

/** The layer of a node or reader name: `a3.h5<q>` and `m3` -> 3; `input` -> -1; `logits` -> Infinity. */
export function layerOf(name: string): number {
  if (name === 'input') return -1;
  if (name === 'logits') return Infinity;
  const m = /^[am](\d+)/.exec(name);
  return m ? Number(m[1]) : NaN;
}

/** The edge's name as EAP-IG writes it: `a0.h1->m2`, `m1->a2.h0<q>`. */
export function edgeName(g: CircuitGraph, e: { writer: number; reader: number }): string {
  return `${g.writers[e.writer]}->${g.readers[e.reader]}`;
}

/** Every edge of the graph, in flat order. */
export function allEdges(g: CircuitGraph): EdgeRef[] {
  const out: EdgeRef[] = [];
  const R = g.readers.length;
  for (let flat = 0; flat < g.edges.length; flat++) if (g.edges[flat]) out.push({ writer: Math.floor(flat / R), reader: flat % R, flat });
  return out;
}

export function countEdges(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
  return n;
}

/** Checks that a graph's arrays agree; a native graph that does not is a bug worth a clear message. */
export function checkGraph(g: CircuitGraph): void {
  if (g.edges.length !== g.writers.length * g.readers.length) {
    throw new Error(`circuit graph: ${g.edges.length} edge flags for ${g.writers.length} writers x ${g.readers.length} readers`);
  }
  if (g.writers[0] !== 'input' || g.readers[g.readers.length - 1] !== 'logits') {
    throw new Error(`circuit graph: writers must start with input and readers end with logits (got ${g.writers[0]}, ${g.readers[g.readers.length - 1]})`);
  }
}

/**
 * The graph of a model with `nLayers` layers and `nHeads` query heads, as the native core builds it:
 * every writer feeds every reader of a later layer, the heads of a layer feed their layer's MLP, the
 * input feeds everything, and everything feeds the logits. For tests and for reports of saved runs.
 */
export function standardGraph(nLayers: number, nHeads: number): CircuitGraph {
  const writers = ['input'], readers: string[] = [];
  for (let l = 0; l < nLayers; l++) {
    for (let h = 0; h < nHeads; h++) writers.push(`a${l}.h${h}`);
    writers.push(`m${l}`);
    for (let h = 0; h < nHeads; h++) readers.push(`a${l}.h${h}<q>`, `a${l}.h${h}<k>`, `a${l}.h${h}<v>`);
    readers.push(`m${l}`);
  }
  readers.push('logits');
  const edges = new Uint8Array(writers.length * readers.length);
  writers.forEach((w, i) => {
    readers.forEach((r, j) => {
      const lw = layerOf(w), lr = layerOf(r);
      const before = lw < lr || (lw === lr && w.startsWith('a') && r.startsWith('m'));
      if (before) edges[i * readers.length + j] = 1;
    });
  });
  return { writers, readers, edges };
}

/**
 * Per node, its writer index and its reader indices: the join between the two sides of the graph that
 * dead-node pruning and ACDC walk over.
 */
export interface NodeIndex {
  /** Node names in topological order (input first, logits last). */
  nodes: string[];
  /** writer index -> node index */
  writerNode: Int32Array;
  /** reader index -> node index */
  readerNode: Int32Array;
}

export function nodeIndex(g: CircuitGraph): NodeIndex {
  const nodes: string[] = [];
  const at = new Map<string, number>();
  const add = (n: string) => {
    if (!at.has(n)) at.set(n, nodes.push(n) - 1);
    return at.get(n)!;
  };
  // Writers come in topological order; logits, the only reader-only node, comes last.
  const writerNode = Int32Array.from(g.writers, (w) => add(nodeOf(w)));
  const readerNode = Int32Array.from(g.readers, (r) => add(nodeOf(r)));
  return { nodes, writerNode, readerNode };
}
