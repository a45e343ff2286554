/**
 * Circuits on the native core: the model's component graph, edge scores (EAP, EAP-IG), runs with
 * edges ablated and the logit lens. Types and the checks at the API boundary; Model's circuit methods
 * call these (lib/model.ts).
 *
 * The graph (Hanna et al. 2024; Conmy et al. 2023): writers are `input` (token and position
 * embeddings), every attention head `a{l}.h{h}` (its output z_h W_O[:, h]; the output bias is part of
 * no head) and every MLP `m{l}`; readers are each head's q, k and v inputs `a{l}.h{h}<q>` / `<k>` /
 * `<v>`, every MLP `m{l}` and `logits`. An edge u->v exists when u writes before v reads; with a
 * parallel residual (GPT-NeoX) m{l} reads the stream layer l's attention reads. Grouped-query models
 * have q, k and v inputs per query head. Mamba has no heads: E_SITE.
 */
import { NeuropruneError } from './errors';
import { checkTokenIds, describeValue } from './validate';

export interface CircuitGraph {
  /** Writer (forward) nodes in topological order: input, a{l}.h{h}..., m{l}, ... */
  writers: string[];
  /** Reader (backward) nodes: a{l}.h{h}<q>, <k>, <v> per head, m{l}, ...; logits last. */
  readers: string[];
  /** [writers x readers] row-major, 1 where an edge exists. */
  edges: Uint8Array;
}

export const CIRCUIT_METRICS = ['logit_diff', 'logprob', 'kl'] as const;
export type CircuitMetricKind = (typeof CIRCUIT_METRICS)[number];

/**
 * Per row, at the last position: logit_diff = logit(answer) - logit(wrong); logprob = log p(answer)
 * (the paper's MatchNLL is its negative); kl = KL(clean distribution || this run's).
 */
export interface CircuitMetric {
  kind: CircuitMetricKind;
  /** Per row token ids. */
  answer: number[];
  /** Per row token ids; logit_diff only. */
  wrong?: number[];
}

export interface EdgeScoreOptions {
  /** Rows of token ids, all of one length. */
  clean: number[][];
  /** One row per clean row, of the same length (e.g. another subject of the same relation). */
  corrupted: number[][];
  metric: CircuitMetric;
  /** eap: the gradient at the clean input; eap-ig: averaged over `steps` inputs interpolated from corrupted to clean. */
  method: 'eap' | 'eap-ig';
  /** EAP-IG steps m (default 5); eap is one. */
  steps?: number;
  /** For what the gradient passes keep (default 2 GiB); rows and steps are micro-batched to it. */
  memoryBudgetBytes?: number;
  signal?: AbortSignal;
  /** (row, step) pairs done of rows x steps. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * score(u->v) = sum over rows and positions of (z~_u - z_u) . mean_k dM/d(input_v)(e_k), with M the
 * metric averaged over rows, z the clean and z~ the corrupted outputs, e_k = e~ + (k/m)(e - e~):
 * to first order M(edge u->v ablated with the corrupted value) - M(clean). EAP with the kl metric
 * scores 0 everywhere (KL has zero gradient at the clean run); use eap-ig.
 */
export interface EdgeScores {
  /** [writers x readers] row-major; non-edges exactly 0. */
  scores: Float32Array;
  graph: CircuitGraph;
  /** The metric averaged over rows on the clean and on the corrupted input. */
  metricClean: number;
  metricCorrupted: number;
  ms: number;
  /** Gradient passes run. */
  microBatches: number;
}

export type AblationKind = 'corrupted' | 'mean' | 'zero';

export interface AblatedRunOptions {
  clean: number[][];
  /**
   * [writers x readers]: 1 = the edge is kept (carries the clean value), 0 = ablated. Non-edges are
   * ignored. Several masks back to back ([masks x writers x readers]) run in one call on every row, the
   * ablation values computed once; the results are then mask-major [masks x rows].
   */
  kept: Uint8Array;
  /** What an ablated edge u->v carries: u's output on the row's corrupted input, its mean over `corrupted` (per position), or zero. */
  ablation: AblationKind;
  /** corrupted: one row per clean row; mean: the rows to average over. Same length as clean. */
  corrupted?: number[][];
  metric: CircuitMetric;
  /** Tokens per row in topTokens (default 10). */
  topK?: number;
  memoryBudgetBytes?: number;
  signal?: AbortSignal;
}

/** Per row (with several masks: [masks x rows], mask-major). */
export interface AblatedRun {
  /** Per row metric of the ablated run (kl: to the clean run). */
  metric: Float32Array;
  /** [rows x topK] at the last position, best first. */
  topTokens: Int32Array;
  /** Per row rank of answer[row] (0 = top). */
  answerRank: Int32Array;
}

export interface LogitLensOptions {
  clean: number[][];
  answer: number[];
  memoryBudgetBytes?: number;
}

export interface LogitLens {
  /** [rows x writers]: rank of the answer when the writer's output at the last position goes through the final norm and the unembedding. */
  ranks: Int32Array;
  graph: CircuitGraph;
}

/** The native form of a metric. */
export interface NativeCircuitMetric {
  kind: CircuitMetricKind;
  answer: Int32Array;
  wrong?: Int32Array;
}

/** Rows flattened for the native core: equal lengths (E_ARG naming the row), ids in range (E_RANGE). */
export function circuitRows(rows: unknown, vocab: number, what: string): { ids: Int32Array; rows: number; seqLen: number } {
  if (!Array.isArray(rows) || rows.length === 0) throw new NeuropruneError('E_ARG', `${what} must be a non-empty array of rows of token ids`);
  rows.forEach((row, i) => {
    if (!Array.isArray(row) || row.length === 0) throw new NeuropruneError('E_ARG', `${what}[${i}] must be a non-empty array of token ids, got ${describeValue(row)}`);
  });
  const seqLen = (rows[0] as unknown[]).length;
  rows.forEach((row: unknown[], i) => {
    if (row.length !== seqLen) {
      throw new NeuropruneError('E_ARG', `${what}[${i}] has ${row.length} tokens but ${what}[0] has ${seqLen}: all rows of one call must have the same length`);
    }
    checkTokenIds(row, vocab, `${what}[${i}]`);
  });
  const ids = new Int32Array(rows.length * seqLen);
  rows.forEach((row: number[], i) => ids.set(row, i * seqLen));
  return { ids, rows: rows.length, seqLen };
}

/** Checks a metric for `rows` rows: E_ARG naming the field, E_RANGE for ids. */
export function circuitMetric(metric: unknown, rows: number, vocab: number): NativeCircuitMetric {
  if (metric === null || typeof metric !== 'object') throw new NeuropruneError('E_ARG', `metric must be an object {kind, answer, wrong?}, got ${describeValue(metric)}`);
  const m = metric as Partial<CircuitMetric>;
  if (!CIRCUIT_METRICS.includes(m.kind as CircuitMetricKind)) {
    throw new NeuropruneError('E_ARG', `metric.kind must be one of ${CIRCUIT_METRICS.join(', ')}, got ${describeValue(m.kind)}`);
  }
  const ids = (field: 'answer' | 'wrong'): Int32Array => {
    const v = m[field];
    if (!Array.isArray(v)) throw new NeuropruneError('E_ARG', `metric.${field} must be an array of token ids (one per row), got ${describeValue(v)}`);
    if (v.length !== rows) throw new NeuropruneError('E_ARG', `metric.${field} holds ${v.length} ids for ${rows} rows (one per row)`);
    checkTokenIds(v, vocab, `metric.${field}`);
    return Int32Array.from(v);
  };
  const out: NativeCircuitMetric = { kind: m.kind as CircuitMetricKind, answer: ids('answer') };
  if (m.kind === 'logit_diff') out.wrong = ids('wrong');
  return out;
}

/** A positive integer option, or its default. */
export function positiveInt(value: unknown, fallback: number, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new NeuropruneError('E_ARG', `${what} must be an integer in [1, ${max}], got ${describeValue(value)}`);
  }
  return value;
}

/** The memory budget in bytes (default 2 GiB). */
export function memoryBudget(value: unknown): number {
  if (value === undefined) return 2 ** 31;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1 || value > 2 ** 50) {
    throw new NeuropruneError('E_ARG', `memoryBudgetBytes must be a positive number of bytes, got ${describeValue(value)}`);
  }
  return Math.floor(value);
}

/** Index of edge (writer, reader) in a [writers x readers] array. */
export function edgeIndex(graph: CircuitGraph, writer: string, reader: string): number {
  const w = graph.writers.indexOf(writer), r = graph.readers.indexOf(reader);
  if (w < 0) throw new NeuropruneError('E_ARG', `no writer ${describeValue(writer)} in the graph`);
  if (r < 0) throw new NeuropruneError('E_ARG', `no reader ${describeValue(reader)} in the graph`);
  return w * graph.readers.length + r;
}

/**
 * Node attribution patching from edge scores: per writer, the sum of its outgoing edge scores. The
 * stream reaches the output only through readers, so dM/dz_u = sum over readers v of u of dM/d(input_v)
 * and the sum is (z~_u - z_u) . dM/dz_u: the first-order effect of patching node u (all its outgoing
 * edges) with its corrupted output.
 */
export function nodeScores(result: { scores: Float32Array; graph: CircuitGraph }): Float32Array {
  const W = result.graph.writers.length, R = result.graph.readers.length;
  if (result.scores.length !== W * R) throw new NeuropruneError('E_SHAPE', `scores hold ${result.scores.length} values; the graph has ${W} x ${R}`);
  const out = new Float32Array(W);
  for (let w = 0; w < W; w++) {
    let sum = 0;
    for (let r = 0; r < R; r++) sum += result.scores[w * R + r];
    out[w] = sum;
  }
  return out;
}
