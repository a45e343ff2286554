/**
 * ACDC (Conmy et al. 2023, "Towards Automated Circuit Discovery for Mechanistic Interpretability"):
 * start from the full graph; visit the readers from the logits back to the first layer (reverse
 * topological order); for each edge into the reader, from the latest writer to the input, ablate it
 * tentatively and keep it ablated when the metric (lower is better: KL to the clean output, or the
 * negative log-probability of the answer, MatchNLL) rises by less than tau over its current value;
 * otherwise restore it. The current value follows every accepted removal.
 *
 * A reader whose node has no kept outgoing edge left cannot change the output: its incoming edges are
 * removed without evaluating each (on a model each evaluation would return the current value, a rise
 * of 0 < tau); the current value is measured again before the next edge is tried, so that the
 * comparison is always against the graph as it is.
 *
 * The model is reached only through `evaluate(kept)`, the metric with every edge where kept is 0
 * ablated, so that the algorithm runs on a hand-made graph in tests.
 */
import { NeuropruneError } from '../errors';
import { CircuitGraph, countEdges, nodeIndex } from './graph';

export interface AcdcOptions {
  /** The threshold tau (the paper's sweeps use values such as 0.02, 0.01, 0.005). */
  tau: number;
  signal?: AbortSignal;
  /** Edges decided so far (evaluated or skipped) of every edge in the graph. */
  onProgress?: (done: number, total: number) => void;
}

export interface AcdcResult {
  /** [writers x readers]: 1 for the edges ACDC keeps. */
  kept: Uint8Array;
  edges: number;
  /** The metric of the full graph and of the final circuit. */
  metricFull: number;
  metricCircuit: number;
  /** Calls of evaluate, the first (full graph) included. */
  evaluations: number;
  /** Edges removed without a try because their reader's node no longer writes anywhere. */
  skipped: number;
}

export async function acdc(g: CircuitGraph, evaluate: (kept: Uint8Array) => Promise<number>, o: AcdcOptions): Promise<AcdcResult> {
  if (!(o.tau >= 0) || !Number.isFinite(o.tau)) throw new NeuropruneError('E_ARG', `ACDC's tau must be a finite number >= 0, got ${o.tau}`);
  const W = g.writers.length, R = g.readers.length;
  const { writerNode, readerNode } = nodeIndex(g);
  // The writer of each node (logits has none).
  const writerOfNode = new Map<number, number>();
  writerNode.forEach((node, w) => writerOfNode.set(node, w));
  const kept = Uint8Array.from(g.edges);
  const total = countEdges(g.edges);
  let done = 0, evaluations = 0, skipped = 0;
  const check = () => {
    if (o.signal?.aborted) throw new NeuropruneError('E_ABORTED', 'ACDC cancelled');
  };
  const run = async () => {
    check();
    evaluations++;
    const m = await evaluate(kept);
    if (!Number.isFinite(m)) throw new NeuropruneError('E_ARG', `ACDC: the metric is ${m}`);
    return m;
  };
  const metricFull = await run();
  let current = metricFull;
  let stale = false;
  for (let r = R - 1; r >= 0; r--) {
    const w0 = writerOfNode.get(readerNode[r]);
    const alive = w0 === undefined || kept.subarray(w0 * R, (w0 + 1) * R).some((x) => x === 1);
    for (let w = W - 1; w >= 0; w--) {
      const flat = w * R + r;
      if (!g.edges[flat]) continue;
      if (!alive) {
        kept[flat] = 0;
        skipped++;
        stale = true;
      } else {
        if (stale) (current = await run()), (stale = false);
        kept[flat] = 0;
        const m = await run();
        if (m - current < o.tau) current = m;
        else kept[flat] = 1;
      }
      o.onProgress?.(++done, total);
    }
  }
  if (stale) current = await run();
  return { kept, edges: countEdges(kept), metricFull, metricCircuit: current, evaluations, skipped };
}
