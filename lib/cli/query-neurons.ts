/**
 * `neuroprune query-neurons`: QRNCA or knowledge neurons with progress bars, written to DIR whole or
 * not at all. Per-query attributions go to DIR.partial as they finish; `--resume` after a kill (or
 * Ctrl-C) continues from them, and the folder goes once DIR is in place.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';
import { DType, Model } from '../model';
import { NeuronSite } from '../neurons';
import { queryNeurons, QueryNeuronMethod, QueryNeuronsOptions, queryNeuronsShard } from '../pipelines/query-neurons';
import { isSharded, resolveShard, Shard, shardDir } from '../shards';
import { writeQueryNeuronOutputs } from '../pipelines/query-neurons-output';
import { stagingDir } from '../staging';
import { stagedProgress } from './progress';
import { withModel } from './session';
import { runShardStage } from './shard';

export interface QueryNeuronsFlags {
  data: string;
  out: string;
  method: QueryNeuronMethod;
  site?: NeuronSite;
  steps?: number;
  t?: number;
  u?: number;
  v?: number;
  p?: number;
  clusters?: 'queries' | 'domains';
  domains?: string[];
  perDomain?: number;
  scalePositions?: 'last' | 'all';
  unrelated?: number;
  evaluate: boolean;
  seed?: number;
  memoryBudget?: number;
  resume?: boolean;
  /** i/N: this process does shard i of N of the attribution stage (default from the environment). */
  shard?: string;
  force?: boolean;
  device: string;
  dtype: DType;
}

export async function runQueryNeurons(id: string, o: QueryNeuronsFlags): Promise<void> {
  const out = path.resolve(o.out);
  const shard = resolveShard(o.shard);
  if (isSharded(shard)) {
    await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => runShard(model, signal, out, shard, o));
    return;
  }
  const existing = fs.existsSync(out) ? fs.readdirSync(out) : undefined;
  if (existing?.length && !o.force) throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);
  await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => run(model, signal, id, out, existing !== undefined, o));
}

/** The pipeline's options from the flags (without the run-time ones). */
function pipelineOptions(o: QueryNeuronsFlags) {
  return {
    data: o.data,
    method: o.method,
    site: o.site,
    steps: o.steps,
    t: o.t,
    u: o.u,
    v: o.v,
    p: o.p,
    clusters: o.clusters,
    domains: o.domains,
    perDomain: o.perDomain,
    scalePositions: o.scalePositions,
    unrelated: o.unrelated,
    evaluate: o.evaluate,
    seed: o.seed,
    memoryBudgetMB: o.memoryBudget,
  };
}

/**
 * Shard i of N: the attribution stage for its queries into DIR/shards/<i>-of-<N>; `neuroprune merge
 * DIR` runs selection and evaluation from every shard's chunks (it loads the model for that).
 */
async function runShard(model: Model, signal: AbortSignal, out: string, shard: Shard, o: QueryNeuronsFlags) {
  const dir = shardDir(out, shard);
  await runShardStage('query-neurons', 'queries', shard, dir, (progress) =>
    queryNeuronsShard(model, { ...pipelineOptions(o), resume: o.resume, signal, onProgress: (p) => progress('attribution', p.done, p.total) }, shard, dir, {
      options: pipelineOptions(o), device: o.device, dtype: o.dtype,
    }));
}

async function run(model: Model, signal: AbortSignal, id: string, out: string, existing: boolean, o: QueryNeuronsFlags) {
  const chunkDir = `${out}.partial`;
  const bar = stagedProgress(12);
  const options: QueryNeuronsOptions = {
    ...pipelineOptions(o),
    chunkDir,
    resume: o.resume,
    signal,
    onProgress: (p) => {
      bar.update(p.stage, p.done, p.total);
    },
  };
  const started = performance.now();
  let tmp: string | undefined;
  try {
    const r = await queryNeurons(model, options);
    bar.stop();
    tmp = stagingDir(out);
    await writeQueryNeuronOutputs(tmp, r, id, model.info, performance.now() - started);
    if (existing) fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    tmp = undefined;
    fs.rmSync(chunkDir, { recursive: true, force: true });
    const lines = [
      `${r.queries.length} ${r.kind === 'mcqa' ? 'queries' : 'facts'} in ${Object.keys(r.domains).length} domains (${r.skipped.length} skipped), ${r.options.method} at blocks.{l}.${r.options.site}`,
      ...r.pcr.map((row) => `  ${row.method.padEnd(20)} x${String(row.factor).padEnd(3)} related ${(100 * row.related).toFixed(1).padStart(7)}%  unrelated ${(100 * row.unrelated).toFixed(1).padStart(7)}%  PCR ${row.pcr === null ? 'n/a' : row.pcr.toPrecision(3)}  flips ${(100 * row.flipRelated).toFixed(0)}%/${(100 * row.flipUnrelated).toFixed(0)}%`),
      r.prediction ? `domain prediction accuracy: ${r.prediction.accuracy === null ? 'n/a' : `${(100 * r.prediction.accuracy).toFixed(1)}%`}` : '',
      `report: ${path.join(out, 'report.html')}`,
    ];
    process.stdout.write(lines.filter(Boolean).join('\n') + '\n');
  } catch (error) {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if ((error as NeuropruneError).code === 'E_ABORTED' && fs.existsSync(chunkDir)) {
      process.stderr.write(`stopped; the queries done so far are in ${chunkDir} (continue with --resume)\n`);
    }
    throw error;
  } finally {
    bar.stop();
  }
}
