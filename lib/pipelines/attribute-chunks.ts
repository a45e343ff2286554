/**
 * `attribute` in chunks: chunk k is prompts [k*C, (k+1)*C), attributed by one native call, so a
 * prompt's numbers never depend on which other prompts share its batch; a sharded run does some chunks
 * (into DIR/shards/<i>-of-<N>), an unsharded one all of them (into DIR.partial, which `--resume`
 * continues), and both write attributions.safetensors and summary.json from the same chunk records.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { AttributeOptions, AttributionPrompt, AttributionResult, attributeDefaults, meanScores, topNeurons, writeAttributions, writeJson } from '../attribution';
import { environment } from '../environment';
import { NeuropruneError } from '../errors';
import type { Model, ModelInfo } from '../model';
import { chunkCount, chunkRange } from '../shards';
import { ChunkRecord, ChunkStore } from './chunk-store';

export const DEFAULT_ATTRIBUTE_CHUNK = 16;

/** What every shard of one attribute run agrees on, and what its outputs are written from. */
export interface AttributeRun {
  model: string;
  info: Omit<ModelInfo, 'config'>;
  prompts: { count: number; sha256: string };
  options: AttributionResult['options'];
  top: number;
}

export interface AttributeChunkMeta {
  prompts: number;
  layers: number[];
  dMlp: number;
  rows: number;
  microBatches: number;
  ms: number;
}

export function promptsDigest(prompts: AttributionPrompt[]): string {
  return crypto.createHash('sha256').update(JSON.stringify(prompts)).digest('hex');
}

export function attributeRun(model: Model, id: string, prompts: AttributionPrompt[], options: Omit<AttributeOptions, 'prompts' | 'signal' | 'onProgress'>, top: number): AttributeRun {
  const resolved = attributeDefaults({ ...options, prompts }, model.info.nLayers, model.info.neuronSite);
  const { config, ...info } = model.info;
  void config;
  return { model: id, info, prompts: { count: prompts.length, sha256: promptsDigest(prompts) }, options: resolved, top };
}

/** Attributes chunk k in memory: its record (see `attributeChunk`). */
export async function attributeChunkRecord(model: Model, prompts: AttributionPrompt[], options: AttributionResult['options'], k: number, chunkSize: number, signal?: AbortSignal): Promise<ChunkRecord<AttributeChunkMeta>> {
  const [from, to] = chunkRange(k, chunkSize, prompts.length);
  const r = await model.attribute({ ...options, prompts: prompts.slice(from, to), signal });
  const P = r.prompts.length, L = r.layers.length, N = r.dMlp;
  const values = new Float32Array(P * L * N + 2 * P * L);
  r.prompts.forEach((p, j) => {
    values.set(p.scores, j * L * N);
    values.set(p.fFull, P * L * N + j * L);
    values.set(p.fBaseline, P * L * N + P * L + j * L);
  });
  return { meta: { prompts: P, layers: r.layers, dMlp: N, rows: r.rows, microBatches: r.microBatches, ms: r.ms }, values };
}

/** Attributes chunk k and writes its record: scores [P, L, N], then f_full and f_baseline [P, L]. */
export async function attributeChunk(model: Model, store: ChunkStore, prompts: AttributionPrompt[], run: AttributeRun, k: number, chunkSize: number, signal?: AbortSignal): Promise<void> {
  const rec = await attributeChunkRecord(model, prompts, run.options, k, chunkSize, signal);
  store.putRecord(k, rec.meta, rec.values);
}

/**
 * The result of `count` prompts from their chunk records, prompts in order. `prompts` may be omitted
 * (merge has no prompts file): placeholders stand in.
 */
export function assembleRecords(
  options: AttributionResult['options'],
  count: number,
  chunkSize: number,
  recordOf: (k: number) => ChunkRecord<AttributeChunkMeta> | undefined,
  where: (k: number) => string,
  prompts?: AttributionPrompt[],
): AttributionResult {
  const out: AttributionResult = { layers: [], dMlp: 0, prompts: [], options, rows: 0, microBatches: 0, ms: 0 };
  for (let k = 0; k < chunkCount(count, chunkSize); k++) {
    const rec = recordOf(k);
    if (!rec) throw new NeuropruneError('E_SHARD', `${where(k)}: chunk ${k} is missing`);
    const { prompts: P, layers, dMlp: N } = rec.meta;
    const [from, to] = chunkRange(k, chunkSize, count);
    const L = layers.length;
    if (P !== to - from || rec.values.length !== P * L * N + 2 * P * L) throw new NeuropruneError('E_SHARD', `${where(k)}: chunk ${k} holds ${P} prompts, ${to - from} expected (damaged?)`);
    out.layers = layers;
    out.dMlp = N;
    for (let j = 0; j < P; j++) {
      out.prompts.push({
        prompt: prompts?.[from + j] ?? { prompt: `#${from + j}`, target: '' },
        scores: rec.values.subarray(j * L * N, (j + 1) * L * N),
        fFull: Array.from(rec.values.subarray(P * L * N + j * L, P * L * N + (j + 1) * L)),
        fBaseline: Array.from(rec.values.subarray(P * L * N + P * L + j * L, P * L * N + P * L + (j + 1) * L)),
      });
    }
    out.rows += rec.meta.rows;
    out.microBatches += rec.meta.microBatches;
    out.ms += rec.meta.ms;
  }
  return out;
}

/** The whole attribute run from its chunk records, each read from the store that holds it. */
export function assembleAttribution(run: AttributeRun, chunkSize: number, storeOf: (k: number) => ChunkStore, prompts?: AttributionPrompt[]): AttributionResult {
  return assembleRecords(run.options, run.prompts.count, chunkSize, (k) => storeOf(k).getRecord<AttributeChunkMeta>(k), (k) => storeOf(k).dir, prompts);
}

/**
 * Attribution of `prompts` chunk by chunk (in memory), as a pipeline stage: chunks found in a sharded
 * run's shard folders (chunk k in shardStores[k mod N]) are read, the others computed.
 */
export async function attributeInChunks(
  model: Model,
  prompts: AttributionPrompt[],
  options: Omit<AttributeOptions, 'prompts' | 'signal' | 'onProgress'>,
  chunkSize: number,
  o: { shardStores?: ChunkStore[]; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<AttributionResult> {
  const resolved = attributeDefaults({ ...options, prompts }, model.info.nLayers, model.info.neuronSite);
  const total = chunkCount(prompts.length, chunkSize);
  const records: Array<ChunkRecord<AttributeChunkMeta>> = [];
  const started = performance.now();
  for (let k = 0; k < total; k++) {
    if (o.signal?.aborted) throw new NeuropruneError('E_ABORTED', `attribution cancelled after ${k} of ${total} chunks`);
    const stores = o.shardStores ?? [];
    records.push(stores.length ? stores[k % stores.length].getRecord<AttributeChunkMeta>(k) ?? (await attributeChunkRecord(model, prompts, resolved, k, chunkSize, o.signal)) : await attributeChunkRecord(model, prompts, resolved, k, chunkSize, o.signal));
    o.onProgress?.(chunkRange(k, chunkSize, prompts.length)[1], prompts.length);
  }
  const result = assembleRecords(resolved, prompts.length, chunkSize, (k) => records[k], () => 'attribution', prompts);
  result.ms = performance.now() - started;
  return result;
}

/** attributions.safetensors and summary.json, as an unsharded attribute writes them, into `dir`. */
export async function writeAttributeOutputs(dir: string, run: AttributeRun, result: AttributionResult, chunkSize: number, ms: number, extra: Record<string, unknown> = {}): Promise<void> {
  const mean = meanScores(result);
  await writeAttributions(path.join(dir, 'attributions.safetensors'), result, { model: run.model, objective: result.options.objective }, mean);
  await writeJson(path.join(dir, 'summary.json'), {
    environment: environment(),
    model: run.info,
    options: result.options,
    prompts: result.prompts.length,
    chunks: { size: chunkSize, count: chunkCount(result.prompts.length, chunkSize) },
    rows: result.rows,
    microBatches: result.microBatches,
    timing: { ms: Math.round(ms) },
    ...extra,
    topNeurons: topNeurons(result, run.top, mean),
    files: { attributions: 'attributions.safetensors' },
  });
}
