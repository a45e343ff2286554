/**
 * circuit: the knowledge circuit of a relation (Yao et al. 2024, "Knowledge Circuits in Pretrained
 * Transformers"), found by edge attribution (EAP-IG, Hanna et al. 2024; EAP, Syed et al. 2023) or ACDC
 * (Conmy et al. 2023).
 *
 *   1. Facts: known facts of the relation(s), each with a corrupted partner of the same length, split
 *      1:1 into validation and test (lib/tasks/circuit-data.ts).
 *   2. Scores on the validation split: every edge's first-order effect on the metric of ablating it
 *      with its corrupted value (EAP/EAP-IG); ACDC instead prunes edges one by one with zero ablation
 *      and MatchNLL, and the EAP-IG scores of the same facts are kept to compare with.
 *   3. The circuit: the top n edges by |score| (or above a threshold), dead nodes pruned.
 *   4. Evaluation on each split against its own labels: faithfulness (plain ratio and normalised),
 *      Hit@10 for the full model, the circuit and random circuits of the same size, with bootstrap
 *      intervals; the faithfulness-vs-edges curve on the test split; the logit lens of the top nodes.
 */
import { acdc, AcdcResult } from '../circuit/acdc';
import { checkGraph, CircuitGraph, countEdges } from '../circuit/graph';
import { circuitNodes, mean, nodeScores, overlap, rocAuc } from '../circuit/measures';
import type { CircuitModel } from '../circuit/model-api';
import { pruneDeadNodes, selectCircuit, topEdges } from '../circuit/select';
import { NeuropruneError } from '../errors';
import { CircuitData, prepareCircuitData } from '../tasks/circuit-data';
import { Shard, shardChunks } from '../shards';
import { groupByLength } from '../tasks/circuit-data';
import { ChunkStore } from './chunk-store';
import { ChunkRun, finishShard, firstDifference, shardManifest } from './shard-run';
import { CircuitConfig, CircuitConfigInput, DEFAULT_CURVE, parseCircuitConfig, resolvedAblation } from './circuit-config';
import { curveSizes, CurvePoint, evaluateSplit, faithfulnessCurve, runsPerSplit, SplitEvaluation } from './circuit-eval';
import { ablatedRows, edgeScoresOver, logitLensRanks, rowOrder, ScoredEdges } from './circuit-runs';

export type CircuitStage = 'facts' | 'scores' | 'acdc' | 'evaluation';

export interface CircuitRunOptions {
  signal?: AbortSignal;
  onProgress?: (p: { stage: CircuitStage; done: number; total: number; detail?: string }) => void;
  /** Folder of per-length-group edge scores; with `resume`, groups already there are reused. The caller removes it. */
  chunkDir?: string;
  resume?: boolean;
  /** The chunk folders of a sharded run's shards (merge): groups not in chunkDir are taken from them. */
  shardStores?: ChunkStore[];
}

export interface CircuitEdge {
  writer: string;
  reader: string;
  score: number;
}

export interface CircuitNode {
  node: string;
  /** Sum of the writer's outgoing edge scores (node attribution patching); logits has none. */
  score: number | null;
  /** Logit lens on the test facts: the answer's mean rank (0 = top) and the share in the top k. */
  lens: { meanRank: number; hit: number } | null;
  inCircuit: boolean;
}

export interface AcdcRun {
  tau: number;
  edges: number;
  metricFull: number;
  metricCircuit: number;
  evaluations: number;
  skipped: number;
  /** Share of ACDC's edges among EAP-IG's top edges of the same count. */
  overlapWithEapIg: number;
  /** ROC-AUC of EAP-IG's |score| against ACDC's kept edges, over every edge of the graph. */
  aucEapIg: number | null;
}

export interface CircuitResult {
  config: CircuitConfig;
  /** The ablation actually used (config.ablation may be null = the method's default). */
  ablation: 'corrupted' | 'mean' | 'zero';
  model: string;
  data: Omit<CircuitData, 'validation' | 'test'> & { validation: FactRow[]; test: FactRow[] };
  graph: CircuitGraph;
  /** Edge scores [writers x readers] (EAP-IG's for acdc). */
  scores: Float32Array;
  /** The circuit's edges [writers x readers]. */
  mask: Uint8Array;
  scoring: { method: 'eap' | 'eap-ig'; metricClean: number; metricCorrupted: number; ms: number; microBatches: number; groups: number; resumedGroups: number };
  acdc: AcdcRun[] | null;
  circuit: { chosen: number; edges: number; nodes: string[]; edgeList: CircuitEdge[] };
  /** Every node of the graph (writers, then logits). */
  nodes: CircuitNode[];
  evaluation: { validation: SplitEvaluation; test: SplitEvaluation };
  curve: CurvePoint[];
  timings: { factsMs: number; scoresMs: number; acdcMs: number; evaluationMs: number };
}

export interface FactRow {
  relation: string;
  subject: string;
  object: string;
  prompt: string;
  answer: number;
  answerText: string;
  corrupted: string;
}

/** Finds a relation's circuit and measures it: everything circuit.json, edges.safetensors and the report hold. */
export async function discoverCircuit(model: CircuitModel, options: CircuitConfigInput & CircuitRunOptions): Promise<CircuitResult> {
  const { signal, onProgress, chunkDir, resume, shardStores, ...input } = options;
  const config = parseCircuitConfig(input, 'options');
  const ablation = resolvedAblation(config);
  if (config.method === 'eap' && config.metric === 'kl') {
    throw new NeuropruneError('E_ARG', 'EAP with the kl metric scores every edge 0 (KL has zero gradient at the clean run); use --method eap-ig or another metric');
  }
  const progress = (stage: CircuitStage, done: number, total: number, detail?: string) => onProgress?.({ stage, done, total, detail });

  let started = performance.now();
  progress('facts', 0, 1);
  const data = await prepareCircuitData(model, { relations: config.relations, template: config.template ?? undefined, seed: config.seed, knownTopK: config.knownTopK, perRelation: config.perRelation }, signal);
  progress('facts', 1, 1);
  const factsMs = performance.now() - started;

  const graph = model.circuitGraph();
  checkGraph(graph);
  const totalEdges = countEdges(graph.edges);
  if (config.method === 'acdc' && totalEdges > config.acdc.maxEdges) {
    throw new NeuropruneError(
      'E_ARG',
      `ACDC evaluates the model once per edge: ${model.info.id} has ${totalEdges} edges, above acdc.maxEdges = ${config.acdc.maxEdges} (raise it to run anyway, or use --method eap-ig, which scores every edge from ${config.steps} forward and backward passes)`,
    );
  }

  // Edge scores on the validation split (EAP-IG beside ACDC, to compare with).
  started = performance.now();
  const scoreMethod = config.method === 'eap' ? 'eap' : 'eap-ig';
  const settings = scoreSettings(model, config, data);
  const store = chunkDir ? ChunkStore.open(chunkDir, settings, resume ?? false) : undefined;
  for (const st of shardStores ?? []) {
    const d = firstDifference({ ...(st.settings<{ run: { settings: object } }>().run?.settings ?? {}), model: undefined }, { ...settings, model: undefined });
    if (d !== undefined) throw new NeuropruneError('E_SHARD', `${st.dir} was made with other settings than this run's (${d} differs): merge with the model and relations the shards used`);
  }
  const scored: ScoredEdges = await edgeScoresOver(model, data.validation, {
    method: scoreMethod, metric: config.metric, steps: config.steps, memoryBudgetMB: config.memoryBudgetMB, store, shardStores, signal,
    onProgress: (done, total) => progress('scores', done, total, scoreMethod),
  });
  const scoresMs = performance.now() - started;

  // The circuit.
  started = performance.now();
  let mask: Uint8Array, chosen: number, acdcRuns: AcdcRun[] | null = null;
  if (config.method === 'acdc') {
    const rows = data.validation;
    const evaluate = async (kept: Uint8Array) => {
      const r = await ablatedRows(model, rows, kept, { ablation, metric: config.acdc.metric === 'kl' ? 'kl' : 'logprob', hitK: config.hitK, memoryBudgetMB: config.memoryBudgetMB, signal });
      return config.acdc.metric === 'kl' ? mean(r.metric) : -mean(r.metric);
    };
    acdcRuns = [];
    let last: AcdcResult | undefined;
    for (const [k, tau] of config.acdc.taus.entries()) {
      last = await acdc(graph, evaluate, { tau, signal, onProgress: (done, total) => progress('acdc', done, total, `tau ${tau} (${k + 1}/${config.acdc.taus.length})`) });
      acdcRuns.push({
        tau,
        edges: last.edges,
        metricFull: last.metricFull,
        metricCircuit: last.metricCircuit,
        evaluations: last.evaluations,
        skipped: last.skipped,
        overlapWithEapIg: overlap(topEdges(graph, scored.scores, last.edges), last.kept),
        aucEapIg: rocAuc(Float32Array.from(scored.scores, Math.abs), last.kept, graph.edges),
      });
    }
    chosen = last!.edges;
    mask = pruneDeadNodes(graph, last!.kept);
  } else {
    const selected = selectCircuit(graph, scored.scores, config.threshold === null ? { topN: config.topN } : { threshold: config.threshold });
    mask = selected.mask;
    chosen = selected.chosen;
  }
  const acdcMs = config.method === 'acdc' ? performance.now() - started : 0;

  // Evaluation on both splits, the curve on the test split, the logit lens of the nodes.
  started = performance.now();
  const sizes = curveSizes(config.curve ?? DEFAULT_CURVE, totalEdges);
  const evalTotal = 2 * runsPerSplit(config) + 2 * sizes.length + 1;
  let runs = 0;
  const evalSettings = { ablation, metric: config.metric, hitK: config.hitK, memoryBudgetMB: config.memoryBudgetMB, randomDraws: config.randomDraws, seed: config.seed, resamples: config.resamples, signal, onRun: () => progress('evaluation', ++runs, evalTotal) };
  const validation = await evaluateSplit(model, graph, data.validation, mask, 'validation', evalSettings);
  const test = await evaluateSplit(model, graph, data.test, mask, 'test', evalSettings);
  const curve = await faithfulnessCurve(model, graph, scored.scores, data.test, sizes, { full: test.full.metric, empty: test.empty.metric }, evalSettings);
  const testRows = rowOrder(data.test);
  const lens = await logitLensRanks(model, testRows, graph.writers.length, signal);
  progress('evaluation', ++runs, evalTotal);
  const evaluationMs = performance.now() - started;

  const W = graph.writers.length;
  const lensOf = (w: number) => {
    let sum = 0, hit = 0;
    for (let i = 0; i < testRows.length; i++) {
      const r = lens[i * W + w];
      sum += r;
      hit += r < config.hitK ? 1 : 0;
    }
    return { meanRank: sum / testRows.length, hit: hit / testRows.length };
  };
  const byNode = new Map(nodeScores(graph, scored.scores).map((n) => [n.node, n.score]));
  const members = circuitNodes(graph, mask);
  const inCircuit = new Set(members);
  const nodes: CircuitNode[] = [...graph.writers, 'logits'].map((node, w) => ({
    node, score: byNode.get(node) ?? null, lens: w < W ? lensOf(w) : null, inCircuit: inCircuit.has(node),
  }));
  const R = graph.readers.length;
  const edgeList: CircuitEdge[] = [];
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) edgeList.push({ writer: graph.writers[Math.floor(i / R)], reader: graph.readers[i % R], score: scored.scores[i] });
  }
  edgeList.sort((a, b) => Math.abs(b.score) - Math.abs(a.score));
  const factRow = (f: CircuitData['test'][number]): FactRow => ({
    relation: f.relation, subject: f.subject, object: f.object, prompt: f.prompt, answer: f.answer, answerText: model.tokenizer.decode([f.answer]), corrupted: f.corrupted.subject,
  });
  return {
    config,
    ablation,
    model: model.info.id,
    data: { relations: data.relations, skipped: data.skipped, counts: data.counts, validation: data.validation.map(factRow), test: data.test.map(factRow) },
    graph,
    scores: scored.scores,
    mask,
    scoring: { method: scoreMethod, metricClean: scored.metricClean, metricCorrupted: scored.metricCorrupted, ms: scored.ms, microBatches: scored.microBatches, groups: scored.groups, resumedGroups: scored.resumedGroups },
    acdc: acdcRuns,
    circuit: { chosen, edges: countEdges(mask), nodes: members, edgeList },
    nodes,
    evaluation: { validation, test },
    curve,
    timings: { factsMs, scoresMs, acdcMs, evaluationMs },
  };
}

/** What the edge-score chunks depend on: a resumed or merged chunk must have been made with these. */
function scoreSettings(model: CircuitModel, config: CircuitConfig, data: CircuitData) {
  const scoreMethod: 'eap' | 'eap-ig' = config.method === 'eap' ? 'eap' : 'eap-ig';
  return { model: model.info.id, relations: config.relations, template: config.template, seed: config.seed, knownTopK: config.knownTopK, perRelation: config.perRelation, method: scoreMethod, steps: config.steps, metric: config.metric, facts: data.validation.map((f) => `${f.relation}/${f.subject}`) };
}

/**
 * Shard i of N of the edge-score stage: the validation facts' length groups k with k % N == i (a group
 * is a chunk), written into `dir` (DIR/shards/<i>-of-<N>) with a manifest holding the config, device
 * and dtype; `merge` runs the circuit, ACDC and the evaluation from every shard's groups.
 */
export async function circuitShard(
  model: CircuitModel,
  options: CircuitConfigInput & Pick<CircuitRunOptions, 'signal' | 'onProgress' | 'resume'>,
  shard: Shard,
  dir: string,
  run: { device: string; dtype: string },
): Promise<{ run: ChunkRun; keys: number[] }> {
  const { signal, onProgress, resume, ...input } = options;
  const config = parseCircuitConfig(input, 'options');
  if (config.method === 'eap' && config.metric === 'kl') {
    throw new NeuropruneError('E_ARG', 'EAP with the kl metric scores every edge 0 (KL has zero gradient at the clean run); use --method eap-ig or another metric');
  }
  const data = await prepareCircuitData(model, { relations: config.relations, template: config.template ?? undefined, seed: config.seed, knownTopK: config.knownTopK, perRelation: config.perRelation }, signal);
  const settings = scoreSettings(model, config, data);
  const total = groupByLength(data.validation).length;
  const store = ChunkStore.open(dir, shardManifest('circuit', { model: model.info.id, settings, options: config, ...run }, { size: null, total }, shard), resume ?? false);
  const keys = shardChunks(total, shard);
  const scored = await edgeScoresOver(model, data.validation, {
    method: settings.method, metric: config.metric, steps: config.steps, memoryBudgetMB: config.memoryBudgetMB, store, groups: keys, signal,
    onProgress: (done, n) => onProgress?.({ stage: 'scores', done, total: n, detail: settings.method }),
  });
  const chunks: ChunkRun = { computed: keys.slice(0, keys.length - scored.resumedGroups), resumed: keys.slice(keys.length - scored.resumedGroups) };
  finishShard(store, shard, keys, chunks);
  return { run: chunks, keys };
}

/** Top nodes by |score| with their logit lens: what the report lists. */
export function topNodes(r: CircuitResult, n: number): CircuitNode[] {
  return r.nodes.filter((x) => x.score !== null).sort((a, b) => Math.abs(b.score!) - Math.abs(a.score!)).slice(0, n);
}
