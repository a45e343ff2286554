export { Model } from './model';
export { ModelPool, parseDevices } from './model-pool';
export type { PoolLoadOptions, PoolAttributeOptions, PoolAttributionResult, ReplicaStats } from './model-pool';
export type { Device, DType, LoadOptions, ModelInfo, ModelInput, TokenBatch, Logits, GenerateOptions, Generation, Edit, Activations, Residuals, ResidualsAll, NextTokenScores, PatchedGenerateOptions } from './model';
export { CIRCUIT_METRICS, edgeIndex, nodeScores } from './circuit';
export type { CircuitGraph, CircuitMetric, CircuitMetricKind, EdgeScoreOptions, EdgeScores, AblationKind, AblatedRunOptions, AblatedRun, LogitLensOptions, LogitLens } from './circuit';
export { neuronSet, readNeuronSet, writeNeuronSet, NEURON_SET_FORMAT, NEURON_SITES, UNIT_SET_SITES } from './neurons';
export type { NeuronRef, NeuronSet, NeuronSite, UnitSetSite } from './neurons';
export { NeuropruneError } from './errors';
export type { ErrorCode } from './errors';
export { TextTokenizer } from './tokenizer';
export { initCheckpoint, readSafetensors, writeSafetensors } from './checkpoint';
export type { InitOptions, RawTensor } from './checkpoint';
export { configFor, presetNames, familyNames } from './presets';
export { resolveModel, hubCacheDir } from './resolve';
export { environment, versionLine } from './environment';
export type { Environment } from './environment';
import { native } from './native';

/** The LibTorch this build runs on: version, CUDA, threads, and the model types it knows. */
export function runtime() {
  return native().runtime();
}

/** LibTorch's intra-op threads for every model in this process (default: all cores, or OMP_NUM_THREADS). */
export function setThreads(n: number): void {
  native().setThreads(n);
}
export { layerSums, meanScores, topNeurons, readPromptsFile, writeAttributions, OBJECTIVES, RULES, POSITIONS } from './attribution';
export type { Objective, Rule, Positions, Method, AttributionPrompt, AttributeOptions, AttributionResult, PromptAttribution } from './attribution';
export { evaluate, formatEvalTable } from './pipelines/evaluate';
export type { EvaluateOptions, EvalResult, TaskScore, EvalRecord } from './pipelines/evaluate';
export * as tasks from './tasks';
export { buildFacts, FACT_RELATIONS, factsTokenizerJson, factsTokenizerConfig, factsTexts, factsQrneuron, choicePrompt, CHOICE_LETTERS } from './tasks/facts';
export type { Fact, FactRelation, FactEvalSets, FactsBuild, FactsOptions, RecallItem, ChoiceItem, QrneuronQuery, FactSource, FactRelationSpec } from './tasks/facts';
export { evaluateFacts, formatFactsTable, recallCorrect, rankedCorrect, choiceCorrect } from './pipelines/facts';
export type { FactScore, FactsEvalResult, FactsEvalOptions, FactRecord } from './pipelines/facts';
export { readCorpus } from './training';
export type { TrainOptions, TrainPoint, TrainResult } from './training';
export { copyBias, copyScores, selectNeurons, guardRails, randomNeuronsLike, compareEvaluations, verdicts } from './pipelines/copybias';
export type { CopyBiasResult, DevPoint, StageProgress, Changes, ControlDraw, Verdict } from './pipelines/copybias';
export { pairedBootstrap, quantile } from './stats';
export type { Interval, PairedSample } from './stats';
export { parseCopyBiasConfig, GENERATED_SUITE } from './pipelines/copybias-config';
export { readConfigFile, mergeConfig } from './pipelines/config';
export type { CopyBiasConfig, CopyBiasConfigInput } from './pipelines/copybias-config';
export { copyBiasReport } from './report/copybias';
export { taskVectors, formatTaskVectorTable } from './pipelines/task-vectors';
export type { TaskVectorsResult, TaskVectorTaskResult, TaskVectorProgress, TaskVectorHooks, LayerScore } from './pipelines/task-vectors';
export { parseTaskVectorsConfig, taskVectorsConfigSchema } from './pipelines/task-vectors-config';
export type { TaskVectorsConfig, TaskVectorsConfigInput } from './pipelines/task-vectors-config';
export { taskVectorsReport, taskVectorCurveSvg } from './report/task-vectors';
export type { TaskVectorCurve } from './report/task-vectors';
export { queryNeurons, queryNeuronsDefaults, QUERY_NEURON_METHODS } from './pipelines/query-neurons';
export type { QueryNeuronsOptions, QueryNeuronsResult, QueryNeuronMethod, QueryNeuronEntry, ResolvedQueryNeuronsOptions } from './pipelines/query-neurons';
export { writeQueryNeuronOutputs, domainFileName } from './pipelines/query-neurons-output';
export { prepareData } from './pipelines/query-neurons-data';
export type { QueryItem, SkippedItem, PreparedData } from './pipelines/query-neurons-data';
export type { PcrRow } from './pipelines/query-neurons-eval';
export { readMcqa, resolveLetters, MCQA_LETTERS } from './tasks/mcqa';
export type { McqaQuery, McqaTemplate, ResolvedQuery } from './tasks/mcqa';
export { readFillInFacts } from './tasks/fill-in';
export type { FillInFact } from './tasks/fill-in';
export { aboveThreshold, neuronAttribution, inverseClusterAttribution, selectQueryNeurons, knowledgeNeurons, knowledgeNeuronRanking, jaccard } from './qrnca';
export { queryNeuronsReport } from './report/query-neurons';
export { checkSetSite } from './neurons';
export { relearn } from './pipelines/relearn';
export type { RelearnOptions, Ranking, PruneMode, Checkpoint as RelearnCheckpoint, RunResult as RelearnRun } from './pipelines/relearn';
export type { RelearnSite } from './relearn/tokens';
export { readConceptFile, applyWordList, readWordList, buildLocationConcept, conceptJsonl } from './tasks/concept';
export type { ConceptText } from './tasks/concept';
export type { UnitKind } from './training';
export { discoverCircuit, topNodes } from './pipelines/circuit';
export type { CircuitResult, CircuitRunOptions, CircuitEdge, CircuitNode, AcdcRun, CircuitStage, FactRow } from './pipelines/circuit';
export { parseCircuitConfig, circuitConfigSchema, CIRCUIT_METHODS, ABLATIONS } from './pipelines/circuit-config';
export type { CircuitConfig, CircuitConfigInput } from './pipelines/circuit-config';
export { writeCircuitOutputs, CIRCUIT_FILES, CIRCUIT_DEFINITIONS } from './pipelines/circuit-output';
export { circuitReport, circuitSvg } from './report/circuit';
export { prepareCircuitData, relationFormat, zeroShotTemplate, groupByLength, KNOWLEDGE_TEMPLATES } from './tasks/circuit-data';
export type { CircuitData, CircuitFact, CircuitRelation, CircuitDataOptions, SkippedFact } from './tasks/circuit-data';
export { readRelationFile, plainText } from './tasks/facts';
export type { RelationFile } from './tasks/facts';
export * as circuits from './circuit/index';
export type { EdgeRef } from './circuit/graph';
export type { CircuitModel } from './circuit/model-api';
export { bootstrapMean } from './stats';
