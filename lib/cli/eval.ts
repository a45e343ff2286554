/**
 * `neuroprune eval`: few-shot ICL accuracy and copy errors. Unsharded it prints the table and writes
 * DIR/results.json; sharded (`--shard i/N` or a Slurm/Kubernetes array) it generates its batches into
 * DIR/shards/<i>-of-<N>/ (`--resume` skips those written) and `neuroprune merge DIR` writes results.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeJson } from '../attribution';
import { environment } from '../environment';
import { NeuropruneError } from '../errors';
import { DType } from '../model';
import { readNeuronSet } from '../neurons';
import { ChunkStore } from '../pipelines/chunk-store';
import { evalChunk, evalRun } from '../pipelines/eval-chunks';
import { evaluate, formatEvalTable, planEvaluation } from '../pipelines/evaluate';
import { finishShard, runChunks, shardLine, shardManifest } from '../pipelines/shard-run';
import { chunkCount, isSharded, resolveShard, shardChunks, shardDir } from '../shards';
import { progressBar } from './progress';
import { withModel } from './session';

export interface EvalFlags {
  tasks: string;
  shots: number[];
  n: number;
  seed: number;
  dataDir?: string;
  labelWords: Record<string, string>;
  allAnswers?: boolean;
  batchSize: number;
  neurons?: string;
  scale?: number;
  out?: string;
  shard?: string;
  resume?: boolean;
  device: string;
  deviceMap?: string;
  dtype: DType;
}

export async function runEval(id: string, o: EvalFlags): Promise<void> {
  if ((o.neurons === undefined) !== (o.scale === undefined)) throw new NeuropruneError('E_ARG', '--neurons and --scale go together');
  const shard = resolveShard(o.shard);
  if (isSharded(shard) && !o.out) throw new NeuropruneError('E_ARG', `a sharded eval (shard ${shard.index}/${shard.count}) needs --out DIR: its batches go to DIR/shards/`);
  if (o.resume && !isSharded(shard)) throw new NeuropruneError('E_ARG', '--resume continues a shard of a sharded eval (--shard i/N); an unsharded eval starts again');
  const neurons = o.neurons ? await readNeuronSet(o.neurons) : undefined;
  const options = { shots: o.shots, n: o.n, seed: o.seed, dataDir: o.dataDir, labelWords: o.labelWords, singleToken: !o.allAnswers, batchSize: o.batchSize };
  await withModel(id, { device: o.device as never, dtype: o.dtype, deviceMap: o.deviceMap }, async (model, signal) => {
    if (neurons) await model.scale(neurons, o.scale!);
    if (isSharded(shard)) {
      const plan = planEvaluation(model, [o.tasks], options);
      const run = evalRun(model, id, plan, {
        tasks: o.tasks, labelWords: o.labelWords, dataDir: o.dataDir,
        scale: neurons ? { neurons: o.neurons!, factor: o.scale! } : undefined,
        neuronsText: o.neurons ? fs.readFileSync(o.neurons, 'utf8') : undefined,
      });
      const total = chunkCount(plan.work.length, plan.options.batchSize);
      const dir = shardDir(path.resolve(o.out!), shard);
      const store = ChunkStore.open(dir, shardManifest('eval', run, { size: plan.options.batchSize, total }, shard), Boolean(o.resume));
      const keys = shardChunks(total, shard);
      const bar = progressBar(`eval ${shard.index}/${shard.count}`);
      const chunks = await runChunks(store, keys, (k) => evalChunk(model, store, plan, k, signal), { signal, what: 'eval', onProgress: bar.update })
        .catch((error) => {
          if ((error as NeuropruneError).code === 'E_ABORTED') process.stderr.write(`stopped; the batches done so far are in ${dir} (continue with --resume)\n`);
          throw error;
        })
        .finally(bar.stop);
      finishShard(store, shard, keys, chunks);
      process.stdout.write(shardLine('eval', shard, dir, chunks));
      return;
    }
    const bar = progressBar('eval');
    const result = await evaluate(model, [o.tasks], { ...options, keepRecords: Boolean(o.out), onProgress: bar.update, signal }).finally(bar.stop);
    process.stdout.write(formatEvalTable(result) + '\n');
    if (o.out) {
      const { config, ...info } = model.info;
      void config;
      await writeJson(path.join(o.out, 'results.json'), {
        environment: environment(),
        model: info,
        scale: neurons ? { neurons: o.neurons, factor: o.scale } : undefined,
        ...result,
      });
      process.stdout.write(`wrote ${path.join(o.out, 'results.json')}\n`);
    }
  });
}
