/**
 * What the circuit pipeline needs of a model: the native graph calls (circuitGraph, edgeScores,
 * ablatedRun, logitLens) beside logits and the tokenizer. `Model` has them; tests can pass a stand-in.
 */
import type { Logits, ModelInfo, ModelInput } from '../model';
import type { TextTokenizer } from '../tokenizer';
import type { CircuitGraph } from './graph';

/** What a row's metric is: log p(answer) (logprob), logit(answer) - logit(wrong) (logit_diff), or KL to the clean output. */
export interface CircuitMetric {
  kind: 'logprob' | 'logit_diff' | 'kl';
  /** Per row, the answer's token id. */
  answer: number[];
  /** Per row, the wrong answer's token id (logit_diff). */
  wrong?: number[];
}

export interface EdgeScoresOptions {
  clean: number[][];
  corrupted: number[][];
  metric: CircuitMetric;
  method: 'eap' | 'eap-ig';
  steps?: number;
  memoryBudgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface EdgeScoresResult {
  /** [writers x readers]: the first-order effect on the metric of ablating the edge with its corrupted value. */
  scores: Float32Array;
  graph: CircuitGraph;
  metricClean: number;
  metricCorrupted: number;
  ms: number;
  microBatches: number;
}

export type Ablation = 'corrupted' | 'mean' | 'zero';

export interface AblatedRunOptions {
  clean: number[][];
  /** [writers x readers]: 1 kept, 0 ablated. */
  kept: Uint8Array;
  ablation: Ablation;
  corrupted?: number[][];
  metric: CircuitMetric;
  topK?: number;
  signal?: AbortSignal;
}

export interface AblatedRunResult {
  /** Per row. */
  metric: Float32Array;
  /** [rows x topK] */
  topTokens: Int32Array;
  /** Per row, the answer's rank (0 = top). */
  answerRank: Int32Array;
}

export interface CircuitModel {
  readonly info: ModelInfo;
  readonly tokenizer: TextTokenizer;
  logits(input: ModelInput, options?: { lastOnly?: boolean }): Promise<Logits>;
  circuitGraph(): CircuitGraph;
  edgeScores(options: EdgeScoresOptions): Promise<EdgeScoresResult>;
  ablatedRun(options: AblatedRunOptions): Promise<AblatedRunResult>;
  /** Per row and writer, the answer's rank when the writer's output is read through the final norm and unembedding. */
  logitLens(options: { clean: number[][]; answer: number[] }): Promise<{ ranks: Int32Array; graph: CircuitGraph }>;
}
