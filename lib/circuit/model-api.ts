/**
 * What the circuit pipeline needs of a model: the native graph calls (lib/circuit.ts: circuitGraph,
 * edgeScores, ablatedRun, logitLens) beside logits and the tokenizer. `Model` has them; tests pass a
 * stand-in whose answer runs through known edges.
 */
import type { AblatedRun, AblatedRunOptions, AblationKind, CircuitGraph, CircuitMetric, EdgeScoreOptions, EdgeScores, LogitLens, LogitLensOptions } from '../circuit';
import type { Logits, ModelInfo, ModelInput } from '../model';
import type { TextTokenizer } from '../tokenizer';

export type { CircuitMetric };
export type Ablation = AblationKind;

export interface CircuitModel {
  readonly info: ModelInfo;
  readonly tokenizer: TextTokenizer;
  logits(input: ModelInput, options?: { lastOnly?: boolean }): Promise<Logits>;
  circuitGraph(): CircuitGraph;
  edgeScores(options: EdgeScoreOptions): Promise<EdgeScores>;
  ablatedRun(options: AblatedRunOptions): Promise<AblatedRun>;
  logitLens(options: LogitLensOptions): Promise<LogitLens>;
}
