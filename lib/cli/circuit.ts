/**
 * `neuroprune circuit`: a relation's knowledge circuit with progress bars, written to DIR whole or not
 * at all. Edge scores of each prompt-length group go to DIR.partial as they finish; `--resume` after a
 * kill (or Ctrl-C) continues from them, and the folder goes once DIR is in place.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';
import { DType, Model } from '../model';
import { circuitShard, discoverCircuit } from '../pipelines/circuit';
import { isSharded, resolveShard, Shard, shardDir } from '../shards';
import { parseCircuitConfig, CircuitConfig } from '../pipelines/circuit-config';
import { writeCircuitOutputs } from '../pipelines/circuit-output';
import { mergeConfig, readConfigFile } from '../pipelines/config';
import { stagingDir } from '../staging';
import { stagedProgress } from './progress';
import { withModel } from './session';
import { runShardStage } from './shard';

export interface CircuitFlags {
  relation?: string[];
  out: string;
  config?: string;
  template?: string;
  method?: string;
  topN?: number;
  threshold?: number;
  steps?: number;
  metric?: string;
  ablation?: string;
  seed?: number;
  perRelation?: number;
  randomDraws?: number;
  tau?: number[];
  acdcMaxEdges?: number;
  memoryBudget?: number;
  resume?: boolean;
  /** i/N: this process does shard i of N of the edge scores (default from the environment). */
  shard?: string;
  force?: boolean;
  device: string;
  dtype: DType;
}

/** Flags over the config file, validated (E_CONFIG names the field). */
export function circuitConfigFromFlags(o: CircuitFlags): CircuitConfig {
  const acdc: Record<string, unknown> = {};
  if (o.tau) acdc.taus = o.tau;
  if (o.acdcMaxEdges !== undefined) acdc.maxEdges = o.acdcMaxEdges;
  const raw = mergeConfig(o.config ? readConfigFile(o.config) : {}, {
    relations: o.relation, template: o.template, method: o.method, topN: o.topN, threshold: o.threshold, steps: o.steps, metric: o.metric,
    ablation: o.ablation, seed: o.seed, perRelation: o.perRelation, randomDraws: o.randomDraws, memoryBudgetMB: o.memoryBudget,
    acdc: Object.keys(acdc).length ? acdc : undefined,
  });
  if (raw.relations === undefined) throw new NeuropruneError('E_ARG', 'circuit needs --relation FILE (or relations in --config)');
  return parseCircuitConfig(raw, o.config ?? 'flags');
}

export async function runCircuit(id: string, o: CircuitFlags): Promise<void> {
  const config = circuitConfigFromFlags(o);
  const out = path.resolve(o.out);
  const shard = resolveShard(o.shard);
  if (isSharded(shard)) {
    await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => runShard(model, signal, out, shard, config, o));
    return;
  }
  const existing = fs.existsSync(out) ? fs.readdirSync(out) : undefined;
  if (existing?.length && !o.force) throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);
  await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => run(model, signal, out, existing !== undefined, config, Boolean(o.resume)));
}

/**
 * Shard i of N: the edge scores of its length groups into DIR/shards/<i>-of-<N>; `neuroprune merge DIR`
 * finds the circuit and evaluates it from every shard's scores (it loads the model for that).
 */
async function runShard(model: Model, signal: AbortSignal, out: string, shard: Shard, config: CircuitConfig, o: CircuitFlags) {
  const dir = shardDir(out, shard);
  await runShardStage('circuit', 'edge scores', shard, dir, (progress) =>
    circuitShard(model, { ...config, resume: Boolean(o.resume), signal, onProgress: (p) => progress(p.stage, p.done, p.total) }, shard, dir, { device: o.device, dtype: o.dtype }));
}

async function run(model: Model, signal: AbortSignal, out: string, existing: boolean, config: CircuitConfig, resume: boolean) {
  const chunkDir = `${out}.partial`;
  const bar = stagedProgress(14);
  const started = performance.now();
  let tmp: string | undefined;
  try {
    const r = await discoverCircuit(model, {
      ...config,
      chunkDir,
      resume,
      signal,
      onProgress: (p) => {
        const label = p.detail ? `${p.stage} ${p.detail}` : p.stage;
        bar.update(label, p.done, p.total);
      },
    });
    bar.stop();
    tmp = stagingDir(out);
    await writeCircuitOutputs(tmp, r, model.info, performance.now() - started);
    // Ctrl-C while the files were written: nothing is renamed into place.
    if (signal.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled (Ctrl-C); nothing was written');
    if (existing) fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    tmp = undefined;
    fs.rmSync(chunkDir, { recursive: true, force: true });
    const t = r.evaluation.test, v = r.evaluation.validation;
    const f = (x: number | null) => (x === null || !Number.isFinite(x) ? 'n/a' : (Math.abs(x) < 5e-4 ? 0 : x).toFixed(3));
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    const c = r.data.counts;
    process.stdout.write(
      [
        `${c.facts} facts, ${c.known} known (top ${r.config.knownTopK}), ${c.paired} with a corrupted partner: ${c.validation} validation, ${c.test} test`,
        `${r.config.method} circuit: ${r.circuit.edges} edges (${r.circuit.chosen} chosen, dead nodes pruned) of ${r.curve[r.curve.length - 1].edges}, ${r.circuit.nodes.length} nodes; metric ${r.config.metric}, ablation ${r.ablation}`,
        ...[t, v].map((e) => `  ${e.split.padEnd(10)} faithfulness ${f(e.circuit.faithfulness.ratio)} (ratio), ${f(e.circuit.faithfulness.normalized)} (normalized; random ${f(e.random.faithfulness.normalized)})  Hit@${r.config.hitK} full ${pct(e.full.hit.delta)}  circuit ${pct(e.circuit.hit.delta)} [${pct(e.circuit.hit.low)}, ${pct(e.circuit.hit.high)}]  random ${pct(e.random.hit.delta)}`),
        ...(r.acdc ?? []).map((a) => `  ACDC tau ${a.tau}: ${a.edges} edges, ${a.evaluations} forward passes, overlap with EAP-IG ${pct(a.overlapWithEapIg)}, ROC-AUC ${f(a.aucEapIg)}`),
        `report: ${path.join(out, 'report.html')}`,
      ].join('\n') + '\n',
    );
  } catch (error) {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if ((error as NeuropruneError).code === 'E_ABORTED' && fs.existsSync(chunkDir)) {
      process.stderr.write(`stopped; the edge scores done so far are in ${chunkDir} (continue with --resume)\n`);
    }
    throw error;
  } finally {
    bar.stop();
  }
}
