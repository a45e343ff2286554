/**
 * One process, several devices (`--devices cuda:0,cuda:1,...`): one model replica per device, each
 * running its native calls on its own worker thread, with prompts handed out dynamically: the prompts
 * are cut into chunks in a shared queue and each replica takes the next chunk when it is free, so a
 * fast device takes more of them. Results come back in prompt order.
 */
import { attributeDefaults, AttributeOptions, AttributionResult } from './attribution';
import { NeuropruneError } from './errors';
import { DType, LoadOptions, Model, ModelInfo } from './model';
import { native } from './native';
import { describeValue } from './validate';

export interface PoolLoadOptions {
  /** One replica per entry: `['cuda:0', 'cuda:1']`, `'cpu,cpu'`, or `'all'` (every visible GPU). */
  devices: string[] | string;
  dtype?: DType;
  /** Seed for `random:` models (every replica gets the same weights). */
  seed?: number;
}

export interface PoolAttributeOptions extends AttributeOptions {
  /**
   * Prompts per chunk of the queue (default: the prompts over 4 chunks per replica, at most 64).
   * A chunk is one native call, so results equal one model's run over the same chunks bit for bit;
   * against one call over every prompt they agree to float tolerance (a batch's padding and matrix
   * shapes change the order of float sums).
   */
  chunkSize?: number;
}

export interface ReplicaStats {
  device: string;
  chunks: number;
  prompts: number;
  /** Time this replica spent in native calls. */
  ms: number;
}

export interface PoolAttributionResult extends AttributionResult {
  /** Per replica, what it took from the queue. */
  replicas: ReplicaStats[];
  chunkSize: number;
}

/** The device list of `--devices`: comma-separated names, or `all` for every visible GPU. */
export function parseDevices(value: string[] | string): string[] {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',').map((d) => d.trim()) : undefined;
  if (!list || list.length === 0 || list.some((d) => typeof d !== 'string' || d === '')) {
    throw new NeuropruneError('E_ARG', `devices must be a comma-separated list of devices (cpu, cuda:N) or all, got ${describeValue(value)}`);
  }
  if (list.length === 1 && list[0] === 'all') {
    const gpus = native().runtime().gpus;
    if (!gpus) throw new NeuropruneError('E_DEVICE', '--devices all: no CUDA device is visible');
    return Array.from({ length: gpus }, (_, i) => `cuda:${i}`);
  }
  return list;
}

export class ModelPool {
  private disposed = false;

  private constructor(readonly models: Model[]) {}

  /** Loads one replica per device (in parallel); if one fails, the others are disposed. */
  static async load(source: string, options: PoolLoadOptions): Promise<ModelPool> {
    if (options === null || typeof options !== 'object') throw new NeuropruneError('E_ARG', 'ModelPool.load needs options {devices}');
    const devices = parseDevices(options.devices);
    // Each replica's call holds one libuv worker thread (4 unless UV_THREADPOOL_SIZE says more, read
    // when the pool first starts): with fewer threads than replicas plus one, replicas wait in turn.
    const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    if (devices.length + 1 > threads) {
      process.emitWarning(`${devices.length} replicas but UV_THREADPOOL_SIZE=${threads}: set UV_THREADPOOL_SIZE=${devices.length + 2} before the first asynchronous call so that they all run at once`, 'NeuropruneWarning');
    }
    const settled = await Promise.allSettled(
      devices.map((device) => Model.load(source, { device: device as LoadOptions['device'], dtype: options.dtype, seed: options.seed })),
    );
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      for (const s of settled) if (s.status === 'fulfilled') s.value.dispose();
      throw failed.reason;
    }
    return new ModelPool(settled.map((s) => (s as PromiseFulfilledResult<Model>).value));
  }

  get info(): ModelInfo {
    return this.models[0].info;
  }

  get devices(): string[] {
    return this.models.map((m) => m.info.device);
  }

  /** `model.attribute` over every replica: the same options and result, plus per-replica stats. */
  async attribute(options: PoolAttributeOptions): Promise<PoolAttributionResult> {
    if (this.disposed) throw new NeuropruneError('E_DISPOSED', 'the model pool has been disposed');
    const info = this.info;
    const resolved = attributeDefaults(options, info.nLayers, info.neuronSite);  // E_ARG before any work
    const prompts = options.prompts;
    const replicas = this.models.length;
    const chunkSize = options.chunkSize ?? Math.max(1, Math.min(64, Math.ceil(prompts.length / (replicas * 4))));
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new NeuropruneError('E_ARG', `chunkSize must be a positive integer, got ${describeValue(chunkSize)}`);
    const chunks: number[] = [];
    for (let start = 0; start < prompts.length; start += chunkSize) chunks.push(start);

    // Progress over every replica: rows per prompt are known up front, so the total is exact.
    const points = resolved.rule === 'riemann_trapezoid' ? resolved.steps + 1 : resolved.steps;
    const total = prompts.length * resolved.layers.length * (points + 1);
    const inFlight = new Map<number, number>();
    const settled = new Set<number>();  // a chunk's late progress (queued before it finished) is not counted again
    let finishedRows = 0;
    const report = () => {
      if (!options.onProgress) return;
      let done = finishedRows;
      for (const d of inFlight.values()) done += d;
      options.onProgress(done, total);
    };

    // One cancel for every replica: the caller's signal, or the first replica that fails.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const results: AttributionResult[] = new Array(chunks.length);
    const stats: ReplicaStats[] = this.models.map((m) => ({ device: m.info.device, chunks: 0, prompts: 0, ms: 0 }));
    let next = 0;
    let firstError: unknown;
    const started = performance.now();
    const worker = async (r: number) => {
      const model = this.models[r];
      while (next < chunks.length && !signal.aborted) {
        const i = next++;  // the shared queue: JS is single-threaded, so no chunk is taken twice
        const start = chunks[i];
        const part = prompts.slice(start, start + chunkSize);
        const t0 = performance.now();
        try {
          results[i] = await model.attribute({
            ...options, prompts: part, signal,
            onProgress: options.onProgress && ((done) => {
              if (settled.has(i)) return;
              inFlight.set(i, done);
              report();
            }),
          });
        } catch (error) {
          if (firstError === undefined) firstError = error;
          stop.abort();
          return;
        } finally {
          settled.add(i);
          inFlight.delete(i);
        }
        finishedRows += results[i].rows;
        stats[r].chunks += 1;
        stats[r].prompts += part.length;
        stats[r].ms += performance.now() - t0;
        report();
      }
    };
    await Promise.all(this.models.map((_, r) => worker(r)));
    if (firstError !== undefined) throw firstError;
    if (signal.aborted) throw new NeuropruneError('E_ABORTED', 'attribution cancelled');
    const first = results[0];
    return {
      layers: first.layers,
      dMlp: first.dMlp,
      prompts: results.flatMap((r) => r.prompts),
      options: first.options,
      rows: results.reduce((s, r) => s + r.rows, 0),
      microBatches: results.reduce((s, r) => s + r.microBatches, 0),
      ms: performance.now() - started,
      replicas: stats,
      chunkSize,
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const m of this.models) m.dispose();
  }
}
