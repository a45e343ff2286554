/**
 * `neuroprune attribute`: Integrated Gradients over chunks of prompts. Unsharded, the chunks go to
 * DIR.partial as they finish (`--resume` continues after a kill) and DIR gets attributions.safetensors
 * and summary.json whole at the end; sharded (`--shard i/N` or a Slurm/Kubernetes array), the shard's
 * chunks go to DIR/shards/<i>-of-<N>/ and `neuroprune merge DIR` writes the outputs. With
 * `--devices` one replica per device takes the next chunk when free (the same chunks, so the same
 * numbers); `--device-map` splits one model's layers over devices.
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
import { withModel, withPool } from './session';

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
  devices?: string;
  deviceMap?: string;
}

export async function runAttribute(id: string, o: AttributeFlags): Promise<void> {
  // Refuse an unusable --out or shard spec before the computation, not after it.
  const shard = resolveShard(o.shard);
  const chunkSize = checkChunkSize(o.chunkSize ?? DEFAULT_ATTRIBUTE_CHUNK);
  const out = path.resolve(o.out);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new NeuropruneError('E_ARG', `--out ${o.out} exists and is not a folder`);
  if (o.devices && o.deviceMap) throw new NeuropruneError('E_ARG', '--devices (replicas) and --device-map (one split model) do not combine yet');
  const prompts = await readPromptsFile(o.prompts, o.objective);
  if (o.devices) await withPool(id, { devices: o.devices, dtype: o.dtype }, (pool, signal) => run(pool.models, signal, id, prompts, out, shard, chunkSize, o));
  else await withModel(id, { device: o.device as never, dtype: o.dtype, deviceMap: o.deviceMap }, (model, signal) => run([model], signal, id, prompts, out, shard, chunkSize, o));
}

/** The run on one model, or on replicas (one per device) that share out the chunks. */
async function run(models: Model[], signal: AbortSignal, id: string, prompts: AttributionPrompt[], out: string, shard: Shard, chunkSize: number, o: AttributeFlags) {
  const started = performance.now();
  const model = models[0];
  const taken = models.map((m) => ({ device: m.info.device, chunks: 0, prompts: 0 }));
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
    chunks = await runChunks(store, keys, async (k, w) => {
      await attributeChunk(models[w], store, prompts, spec, k, chunkSize, signal);
      taken[w].chunks++;
      taken[w].prompts += Math.min(chunkSize, prompts.length - k * chunkSize);
    }, { signal, what: 'attribute', onProgress: bar.update, workers: models.length });
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
    // With replicas, what each took from the queue (this process's chunks; resumed ones count for none).
    const extra = models.length > 1 ? { devices: { replicas: taken, chunkSize } } : {};
    await writeAttributeOutputs(tmp, spec, result, chunkSize, performance.now() - started, extra);
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
