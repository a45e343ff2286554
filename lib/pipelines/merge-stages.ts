/**
 * Merging the shards of eval, copybias, query-neurons and circuit runs (attribute's is in merge.ts).
 * eval needs only the shard folders. copybias, query-neurons and circuit shard their attribution (edge
 * score) stage: the model is loaded
 * (the one the shards recorded, or `options.model`) and the pipeline runs from the shards' chunks, as
 * an unsharded run resumed with every chunk done would, writing what that run writes.
 */
import fs from 'node:fs';
import { NeuropruneError } from '../errors';
import { DType, Model } from '../model';
import { discoverCircuit } from './circuit';
import { CircuitConfig } from './circuit-config';
import { writeCircuitOutputs } from './circuit-output';
import { copyBias } from './copybias';
import { CopyBiasConfig } from './copybias-config';
import { writeCopyBiasOutputs } from './copybias-output';
import { EvalRun, mergedEvalResult, writeEvalOutputs } from './eval-chunks';
import type { MergeOptions, ShardFolder } from './merge';
import { staged } from './merge';
import { queryNeurons, QueryNeuronsOptions } from './query-neurons';
import { writeQueryNeuronOutputs } from './query-neurons-output';
import type { ShardCommand } from './shard-run';

/** What a query-neurons or circuit shard records besides its chunk settings: how to finish the run. */
interface PipelineRun<O> {
  model: string;
  settings: unknown;
  options: O;
  device: string;
  dtype: DType;
}

async function withShardModel<T>(run: PipelineRun<unknown>, options: MergeOptions, use: (model: Model, id: string) => Promise<T>): Promise<T> {
  const id = options.model ?? run.model;
  if (options.dtype !== undefined && options.dtype !== run.dtype) throw new NeuropruneError('E_ARG', `merge: the shards ran in ${run.dtype}; --dtype ${options.dtype} would give other numbers`);
  const model = await Model.load(id, { device: (options.device ?? run.device) as never, dtype: run.dtype });
  try {
    return await use(model, id);
  } finally {
    model.dispose();
  }
}

export async function mergeStage(command: ShardCommand, folders: ShardFolder[], out: string, options: MergeOptions): Promise<string[]> {
  const N = folders.length;
  const storeOf = (k: number) => folders[k % N].store;
  const started = performance.now();
  switch (command) {
    case 'eval': {
      const run = folders[0].manifest.run as EvalRun;
      const result = mergedEvalResult(run, storeOf, 0);
      result.ms = performance.now() - started;
      return staged(out, options.signal, (tmp) => writeEvalOutputs(tmp, run, result));
    }
    case 'query-neurons': {
      const run = folders[0].manifest.run as PipelineRun<QueryNeuronsOptions>;
      const chunkDir = `${out}.partial`;
      const files = await withShardModel(run, options, async (model, id) => {
        const r = await queryNeurons(model, {
          ...run.options, chunkDir, resume: true, shardStores: folders.map((f) => f.store), signal: options.signal,
          onProgress: (p) => options.onProgress?.({ stage: p.stage, done: p.done, total: p.total }),
        });
        return staged(out, options.signal, (tmp) => writeQueryNeuronOutputs(tmp, r, id, model.info, performance.now() - started));
      });
      fs.rmSync(chunkDir, { recursive: true, force: true });
      return files;
    }
    case 'circuit': {
      const run = folders[0].manifest.run as PipelineRun<CircuitConfig>;
      const chunkDir = `${out}.partial`;
      const files = await withShardModel(run, options, async (model) => {
        const r = await discoverCircuit(model, {
          ...run.options, chunkDir, resume: true, shardStores: folders.map((f) => f.store), signal: options.signal,
          onProgress: (p) => options.onProgress?.({ stage: p.detail ? `${p.stage} ${p.detail}` : p.stage, done: p.done, total: p.total }),
        });
        return staged(out, options.signal, (tmp) => writeCircuitOutputs(tmp, r, model.info, performance.now() - started));
      });
      fs.rmSync(chunkDir, { recursive: true, force: true });
      return files;
    }
    case 'copybias': {
      const run = folders[0].manifest.run as PipelineRun<undefined> & { config: CopyBiasConfig; saveModel: boolean; settings: { nParams: number; dtype: string } };
      return withShardModel(run, options, async (model, id) => {
        if (model.info.nParams !== run.settings.nParams) throw new NeuropruneError('E_SHARD', `${folders[0].dir}: the shards ran ${run.model} (${run.settings.nParams} parameters); ${id} has ${model.info.nParams}`);
        const r = await copyBias(model, run.config, {
          shardStores: folders.map((f) => f.store), signal: options.signal,
          onProgress: (p) => options.onProgress?.({ stage: p.stage, done: p.done, total: p.total }),
        });
        return staged(out, options.signal, (tmp) => writeCopyBiasOutputs(tmp, model, id, run.config, r, { saveModel: run.saveModel, started }));
      });
    }
    default:
      throw new NeuropruneError('E_SHARD', `${folders[0].dir}: merging ${command} shards is not supported`);
  }
}
