/**
 * `neuroprune attribute`: Integrated Gradients over chunks of prompts. Unsharded, the chunks go to
 * DIR.partial as they finish (`--resume` continues after a kill) and DIR gets attributions.safetensors
 * and summary.json whole at the end; sharded (`--shard i/N` or a Slurm/Kubernetes array), the shard's
 * chunks go to DIR/shards/<i>-of-<N>/ and `neuroprune merge DIR` writes the outputs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AttributionPrompt, Objective, Positions, readPromptsFile, Rule, Method } from '../attribution';
import { NeuropruneError } from '../errors';
import { DType, Model } from '../model';
import { ChunkStore } from '../pipelines/chunk-store';
import { assembleAttribution, attributeChunk, attributeRun, DEFAULT_ATTRIBUTE_CHUNK, writeAttributeOutputs } from '../pipelines/attribute-chunks';
import { finishShard, runChunks, shardLine, shardManifest } from '../pipelines/shard-run';
import { checkChunkSize, chunkCount, isSharded, resolveShard, Shard, shardChunks, shardDir } from '../shards';
import { publishInto, stagingDir } from '../staging';
import { progressBar } from './progress';
import { withModel } from './session';

export interface AttributeFlags {
  prompts: string;
  out: string;
  objective: Objective;
  steps: number;
  rule: Rule;
  positions: Positions;
  layers?: number[];
  method: Method;
  memoryBudgetMb: number;
  top: number;
  chunkSize?: number;
  shard?: string;
  resume?: boolean;
  device: string;
  dtype: DType;
}

export async function runAttribute(id: string, o: AttributeFlags): Promise<void> {
  // Refuse an unusable --out or shard spec before the computation, not after it.
  const shard = resolveShard(o.shard);
  const chunkSize = checkChunkSize(o.chunkSize ?? DEFAULT_ATTRIBUTE_CHUNK);
  const out = path.resolve(o.out);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new NeuropruneError('E_ARG', `--out ${o.out} exists and is not a folder`);
  const prompts = await readPromptsFile(o.prompts, o.objective);
  await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => run(model, signal, id, prompts, out, shard, chunkSize, o));
}

async function run(model: Model, signal: AbortSignal, id: string, prompts: AttributionPrompt[], out: string, shard: Shard, chunkSize: number, o: AttributeFlags) {
  const started = performance.now();
  const spec = attributeRun(model, id, prompts, {
    objective: o.objective, steps: o.steps, rule: o.rule, positions: o.positions, layers: o.layers, method: o.method, memoryBudgetMB: o.memoryBudgetMb,
  }, o.top);
  const total = chunkCount(prompts.length, chunkSize);
  const sharded = isSharded(shard);
  const dir = sharded ? shardDir(out, shard) : `${out}.partial`;
  const store = ChunkStore.open(dir, shardManifest('attribute', spec, { size: chunkSize, total }, shard), Boolean(o.resume));
  const keys = shardChunks(total, shard);
  const bar = progressBar(sharded ? `attribute ${shard.index}/${shard.count}` : 'attribute');
  let chunks;
  try {
    chunks = await runChunks(store, keys, (k) => attributeChunk(model, store, prompts, spec, k, chunkSize, signal), { signal, what: 'attribute', onProgress: bar.update });
  } catch (error) {
    if ((error as NeuropruneError).code === 'E_ABORTED') process.stderr.write(`stopped; the chunks done so far are in ${dir} (continue with --resume)\n`);
    throw error;
  } finally {
    bar.stop();
  }
  if (sharded) {
    finishShard(store, shard, keys, chunks);
    process.stdout.write(shardLine('attribute', shard, dir, chunks));
    return;
  }
  const result = assembleAttribution(spec, chunkSize, () => store, prompts);
  const tmp = stagingDir(out);
  try {
    await writeAttributeOutputs(tmp, spec, result, chunkSize, performance.now() - started);
    if (signal.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled (Ctrl-C); nothing was written');
    publishInto(tmp, out);
  } catch (error) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  store.remove();
  const resumed = chunks.resumed.length ? ` (${chunks.resumed.length} of ${total} chunks resumed)` : '';
  process.stdout.write(`attributed ${result.prompts.length} prompts x ${result.layers.length} layers x ${result.dMlp} neurons in ${((performance.now() - started) / 1000).toFixed(1)} s${resumed}; wrote ${o.out}\n`);
}
