/** `neuroprune copybias`: the pipeline with progress bars, written to DIR whole or not at all. */
import fs from 'node:fs';
import path from 'node:path';
import { stagingDir } from '../staging';
import { NeuropruneError } from '../errors';
import { DType, Model } from '../model';
import { CopyBiasConfig } from '../pipelines/copybias-config';
import { withModel } from './session';
import { runShardStage } from './shard';
import { copyBias, copyBiasShard, StageProgress } from '../pipelines/copybias';
import { writeCopyBiasOutputs } from '../pipelines/copybias-output';
import { isSharded, resolveShard, Shard, shardDir } from '../shards';
import { mergeConfig, readConfigFile } from '../pipelines/config';
import { parseCopyBiasConfig } from '../pipelines/copybias-config';
import { formatEvalTable } from '../pipelines/evaluate';
import { summaryLine } from '../report/copybias';
import { formatTaskVectorTable } from '../pipelines/task-vectors';
import { stagedProgress } from './progress';

export interface CopyBiasFlags {
  out: string;
  config?: string;
  seed?: number;
  steps?: number;
  attributionPrompts?: number;
  devPrompts?: number;
  fractions?: number[];
  tasks?: string[];
  shots?: number[];
  n?: number;
  dataDir?: string;
  allAnswers?: boolean;
  labelWords?: Record<string, string>;
  draws?: number;
  taskVectors?: boolean;
  saveModel?: boolean;
  /** i/N: this process does shard i of N of the attribution stage (default from the environment). */
  shard?: string;
  resume?: boolean;
  chunkSize?: number;
  force?: boolean;
  device: string;
  dtype: DType;
}

export async function runCopyBias(id: string, o: CopyBiasFlags): Promise<void> {
  const raw = mergeConfig(o.config ? readConfigFile(o.config) : {}, {
    seed: o.seed,
    proxy: { attributionPrompts: o.attributionPrompts, devPrompts: o.devPrompts },
    attribution: { steps: o.steps, chunkSize: o.chunkSize },
    selection: { fractions: o.fractions },
    evaluation: { tasks: o.tasks, shots: o.shots, n: o.n, dataDir: o.dataDir, allAnswers: o.allAnswers, labelWords: o.labelWords },
    control: { draws: o.draws },
    taskVectors: { enabled: o.taskVectors },
  });
  const config = parseCopyBiasConfig(raw, o.config ?? 'config');
  const out = path.resolve(o.out);
  const shard = resolveShard(o.shard);
  if (isSharded(shard)) {
    await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => runShard(model, signal, id, config, out, shard, o));
    return;
  }
  const existing = fs.existsSync(out) ? fs.readdirSync(out) : undefined;
  if (existing?.length && !o.force) throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);

  await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => run(model, signal, id, config, out, existing, o));
}

/**
 * Shard i of N: the attribution chunks of its share of the proxy prompts into DIR/shards/<i>-of-<N>;
 * `neuroprune merge DIR` runs the rest of the pipeline from every shard's chunks (it loads the model).
 */
async function runShard(model: Model, signal: AbortSignal, id: string, config: CopyBiasConfig, out: string, shard: Shard, o: CopyBiasFlags) {
  const dir = shardDir(out, shard);
  await runShardStage('copybias', 'chunks', shard, dir, (progress) =>
    copyBiasShard(model, config, shard, dir, { model: id, device: o.device, dtype: o.dtype, saveModel: Boolean(o.saveModel) }, {
      signal, resume: o.resume, onProgress: (p) => progress('attribution', p.done, p.total),
    }));
}

/** Runs the pipeline and writes DIR through a temporary folder renamed into place at the end. */
async function run(model: Model, signal: AbortSignal, id: string, config: CopyBiasConfig, out: string, existing: string[] | undefined, o: CopyBiasFlags) {
  const bar = stagedProgress(12);
  const onProgress = (p: StageProgress) => {
    bar.update(p.stage, p.done, p.total);
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = stagingDir(out);
  try {
    const started = performance.now();
    const r = await copyBias(model, config, { onProgress, signal });
    bar.stop();
    await writeCopyBiasOutputs(tmp, model, id, config, r, { saveModel: Boolean(o.saveModel), started });
    if (existing) fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    const fmt = (e: typeof r.before) => formatEvalTable(e);
    const tv = r.taskVectors ? `\n\ntask vectors before pruning:\n${formatTaskVectorTable(r.taskVectors.before)}${r.chosen ? `\n\ntask vectors after pruning:\n${formatTaskVectorTable(r.taskVectors.after)}` : ''}` : '';
    const summary = r.chosen
      ? `pruned ${r.neurons.length} neurons (top ${(100 * r.chosen.fraction).toPrecision(3)}% by copying score)\n\nbefore:\n${fmt(r.before)}\n\nafter:\n${fmt(r.after)}\n\n${r.verdicts.map((v) => v.text).join('\n')}\n${summaryLine(r)}`
      : `no fraction passed the guard rails; nothing was pruned\n${r.devSearch.map((p) => `  ${(100 * p.fraction).toPrecision(2)}%: ${p.rejected}`).join('\n')}\n\nICL suite:\n${fmt(r.before)}`;
    process.stdout.write(`${summary}${tv}\n\nreport: ${path.join(out, 'report.html')}\n`);
  } catch (error) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw error;
  } finally {
    bar.stop();
  }
}
