/**
 * `eval` in chunks: chunk k is batch k of the evaluation's prompts ([k*B, (k+1)*B) for the batch size
 * B, exactly the batches an unsharded eval generates), its records kept in one file. A sharded eval
 * writes its chunks into DIR/shards/<i>-of-<N>; `merge` puts the records back in order and writes the
 * results.json an unsharded `eval --out DIR` writes.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { writeJson } from '../attribution';
import { environment } from '../environment';
import { NeuropruneError } from '../errors';
import type { Model, ModelInfo } from '../model';
import { chunkCount, chunkRange } from '../shards';
import { ChunkStore } from './chunk-store';
import { EvalPlan, EvalRecord, EvalResult, evaluateBatch, summarizeEvaluation } from './evaluate';

/** What every shard of one eval run agrees on, and what results.json is written from. */
export interface EvalRun {
  model: string;
  info: Omit<ModelInfo, 'config'>;
  /** The --tasks argument, and how it was read. */
  tasks: string;
  labelWords: Record<string, string>;
  dataDir: string | null;
  /** As results.json records it; `neuronsSha256` guards against a changed neuron file between shards. */
  scale: { neurons: string; factor: number } | undefined;
  neuronsSha256: string | null;
  plan: Omit<EvalPlan, 'work'>;
  prompts: { count: number; sha256: string };
}

export function evalRun(model: Model, id: string, plan: EvalPlan, o: { tasks: string; labelWords: Record<string, string>; dataDir?: string; scale?: { neurons: string; factor: number }; neuronsText?: string }): EvalRun {
  const { config, ...info } = model.info;
  void config;
  const { work, ...rest } = plan;
  const digest = crypto.createHash('sha256').update(JSON.stringify(work.map((w) => [w.task.name, w.prompt.shots, w.prompt.text, w.prompt.expected]))).digest('hex');
  return {
    model: id, info, tasks: o.tasks, labelWords: o.labelWords, dataDir: o.dataDir ?? null, scale: o.scale,
    neuronsSha256: o.neuronsText === undefined ? null : crypto.createHash('sha256').update(o.neuronsText).digest('hex'),
    plan: rest, prompts: { count: work.length, sha256: digest },
  };
}

export async function evalChunk(model: Model, store: ChunkStore, plan: EvalPlan, k: number, signal?: AbortSignal): Promise<void> {
  const [from, to] = chunkRange(k, plan.options.batchSize, plan.work.length);
  const records = await evaluateBatch(model, plan, from, to, signal);
  store.putRecord(k, { records });
}

/** Every record in order, from the stores holding each chunk. */
export function assembleEvalRecords(run: EvalRun, storeOf: (k: number) => ChunkStore): EvalRecord[] {
  const B = run.plan.options.batchSize, total = chunkCount(run.prompts.count, B);
  const records: EvalRecord[] = [];
  for (let k = 0; k < total; k++) {
    const store = storeOf(k);
    const rec = store.getRecord<{ records: EvalRecord[] }>(k);
    const [from, to] = chunkRange(k, B, run.prompts.count);
    if (!rec || !Array.isArray(rec.meta.records) || rec.meta.records.length !== to - from) throw new NeuropruneError('E_SHARD', `${store.dir}: chunk ${k} is missing or damaged`);
    records.push(...rec.meta.records);
  }
  return records;
}

/** results.json as `eval --out` writes it. */
export async function writeEvalOutputs(dir: string, run: EvalRun, result: EvalResult): Promise<void> {
  await writeJson(path.join(dir, 'results.json'), { environment: environment(), model: run.info, scale: run.scale, ...result });
}

export function mergedEvalResult(run: EvalRun, storeOf: (k: number) => ChunkStore, ms: number): EvalResult {
  return summarizeEvaluation(run.plan, assembleEvalRecords(run, storeOf), true, ms);
}
