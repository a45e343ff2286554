/**
 * The files of a circuit run, written into a folder (the CLI's staging folder, renamed into place
 * afterwards): circuit.json, edges.safetensors, circuit.dot, report.html.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeJson } from '../attribution';
import { writeSafetensors } from '../checkpoint';
import { circuitDot } from '../circuit/dot';
import { countEdges } from '../circuit/graph';
import { environment } from '../environment';
import type { ModelInfo } from '../model';
import { circuitReport } from '../report/circuit';
import { CircuitResult } from './circuit';

export const CIRCUIT_FILES = ['circuit.dot', 'circuit.json', 'edges.safetensors', 'report.html'];

/** What the numbers mean, written beside them. */
export const CIRCUIT_DEFINITIONS = {
  graph: 'writers: input, a{l}.h{h} (each query head), m{l}; readers: a{l}.h{h}<q>/<k>/<v>, m{l}, logits; an edge is a (writer, reader) pair through the residual stream',
  score:
    "an edge's score is the first-order effect on the mean metric of ablating it with its corrupted value (EAP: one gradient at the clean input; EAP-IG: gradients averaged over m inputs interpolated between the corrupted and the clean embeddings); negative means ablating the edge lowers the metric",
  ablation: "what an ablated edge carries: corrupted = the writer's output on the row's partner prompt; mean = that output averaged over the partner prompts of the same length; zero = nothing",
  nodeScore: "the sum of a writer's outgoing edge scores (attribution patching of the node)",
  circuit: 'the top-n edges by |score| (or |score| >= threshold; ACDC: the edges it keeps), then only edges on a path input -> ... -> logits (dead nodes pruned)',
  faithfulness: 'ratio = metric(circuit, every other edge ablated) / metric(full model) (Yao et al. 2024); normalized = (m_circuit - m_empty) / (m_full - m_empty) (Hanna et al. 2024): 1 = as the full model, 0 = as with every edge ablated',
  hit: 'Hit@k: share of facts whose answer token is among the top k next tokens (Yao et al. report Hit@10); intervals are bootstrap 95% percentile intervals over facts; an answer tied with other tokens ranks below all of them (with every edge into the logits zero-ablated all logits tie, and no answer is a hit)',
  random: 'random circuits: the circuit\'s edge count drawn uniformly from the graph\'s edges (seeded), not pruned',
  splits: 'edge scores (and ACDC) use the validation split; each split is evaluated against its own answers',
  logitLens: "a node's output at the last position read through the final norm and the unembedding; the answer's rank (0 = top)",
};

export async function writeCircuitOutputs(dir: string, r: CircuitResult, info: ModelInfo, totalMs: number): Promise<void> {
  const g = r.graph, W = g.writers.length, R = g.readers.length;
  await writeSafetensors(
    path.join(dir, 'edges.safetensors'),
    [
      { name: 'scores', dtype: 'F32', shape: [W, R], data: Buffer.from(r.scores.buffer, r.scores.byteOffset, r.scores.byteLength) },
      { name: 'circuit', dtype: 'U8', shape: [W, R], data: Buffer.from(r.mask) },
      { name: 'edges', dtype: 'U8', shape: [W, R], data: Buffer.from(g.edges) },
    ],
    {
      format: 'pt',
      model: r.model,
      method: r.config.method,
      scores: r.scoring.method,
      metric: r.config.metric,
      writers: JSON.stringify(g.writers),
      readers: JSON.stringify(g.readers),
      layout: 'scores[writer, reader]: edge score (0 where no edge); circuit: 1 for the circuit\'s edges; edges: 1 where the graph has an edge',
    },
  );
  fs.writeFileSync(path.join(dir, 'circuit.dot'), circuitDot(g, r.mask, r.scores, `${r.config.method} circuit of ${r.data.relations.map((x) => x.name).join(', ')}`));
  const { config: _config, ...model } = info;
  void _config;
  await writeJson(path.join(dir, 'circuit.json'), {
    environment: environment(),
    model,
    settings: { ...r.config, ablation: r.ablation, scoreMethod: r.scoring.method },
    definitions: CIRCUIT_DEFINITIONS,
    counts: { ...r.data.counts, graphEdges: countEdges(g.edges), circuitEdges: r.circuit.edges, chosenEdges: r.circuit.chosen },
    relations: r.data.relations,
    graph: { writers: W, readers: R, edges: countEdges(g.edges) },
    circuit: { nodes: r.circuit.nodes, edges: r.circuit.edgeList },
    nodes: r.nodes,
    faithfulness: {
      test: { circuit: r.evaluation.test.circuit.faithfulness, random: r.evaluation.test.random.faithfulness },
      validation: { circuit: r.evaluation.validation.circuit.faithfulness, random: r.evaluation.validation.random.faithfulness },
    },
    hit: Object.fromEntries(
      (['test', 'validation'] as const).map((s) => [s, { k: r.config.hitK, full: r.evaluation[s].full.hit, circuit: r.evaluation[s].circuit.hit, random: r.evaluation[s].random.hit, circuitMinusRandom: r.evaluation[s].hitCircuitMinusRandom }]),
    ),
    evaluation: r.evaluation,
    curve: r.curve,
    acdc: r.acdc,
    scoring: r.scoring,
    facts: { validation: r.data.validation, test: r.data.test },
    skipped: r.data.skipped,
    files: { 'edges.safetensors': 'scores, circuit and edges [writers x readers]; writer and reader names in the metadata', 'circuit.dot': 'Graphviz: dot -Tsvg circuit.dot', 'report.html': 'the report' },
    timings: { ...Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, Math.round(v)])), scoringNativeMs: Math.round(r.scoring.ms), totalMs: Math.round(totalMs) },
  });
  fs.writeFileSync(path.join(dir, 'report.html'), circuitReport(r));
}
