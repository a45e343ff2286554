/**
 * What every sharded pipeline shares: the manifest a shard folder is made with, the loop that does a
 * shard's chunks (skipping those already written, so that `--resume` after a kill repeats nothing),
 * and the `complete.json` mark written when the shard's last chunk is in.
 */
import { NeuropruneError } from '../errors';
import { native } from '../native';
import { ASSIGNMENT, Shard, shardChunks } from '../shards';
import { ChunkStore } from './chunk-store';

export const SHARD_FORMAT = 'neuroprune.shard/1';
export type ShardCommand = 'attribute' | 'eval' | 'query-neurons' | 'circuit' | 'copybias';

/**
 * A shard folder's manifest.json. `run` is everything every shard of one run must agree on (model,
 * data, options, and what `merge` needs to write the outputs); `chunks` says how work was cut.
 */
export interface ShardManifest<R = unknown> {
  format: typeof SHARD_FORMAT;
  command: ShardCommand;
  run: R;
  /** size: items per chunk (null where a chunk is one natural unit: an item, a length group). */
  chunks: { size: number | null; total: number; assignment: typeof ASSIGNMENT };
  shard: { index: number; count: number };
}

/** complete.json of a shard folder. */
export interface ShardCompletion {
  format: typeof SHARD_FORMAT;
  shard: { index: number; count: number };
  chunks: number[];
  /** This process's work: chunks computed, and chunks found already written (a resumed run). */
  computed: number;
  resumed: number;
  finishedAt: string;
  /** What the numbers' last bits depend on besides the settings: the LibTorch and its intra-op threads. */
  runtime?: { libtorch: string; threads: number };
}

export function shardManifest<R>(command: ShardCommand, run: R, chunks: { size: number | null; total: number }, shard: Shard): ShardManifest<R> {
  return { format: SHARD_FORMAT, command, run, chunks: { ...chunks, assignment: ASSIGNMENT }, shard: { index: shard.index, count: shard.count } };
}

export interface ChunkRun {
  /** The chunks this process did, and those it found written. */
  computed: number[];
  resumed: number[];
}

/**
 * Runs `compute(k, worker)` (which writes chunk k into the store) for each chunk of `keys` not yet in
 * the store; cancellable between chunks. With `workers` > 1 (one per model replica, `--devices`) each
 * worker takes the next chunk when it is free; a chunk's numbers do not depend on which worker made it.
 * After a failure no worker starts another chunk, and the first error is thrown once all have stopped.
 */
export async function runChunks(
  store: ChunkStore,
  keys: number[],
  compute: (k: number, worker: number) => Promise<void>,
  o: { signal?: AbortSignal; what: string; onProgress?: (done: number, total: number) => void; workers?: number } = { what: 'run' },
): Promise<ChunkRun> {
  const run: ChunkRun = { computed: [], resumed: [] };
  o.onProgress?.(0, keys.length);
  let next = 0, done = 0, failed = false;
  const work = async (worker: number) => {
    while (next < keys.length && !failed) {
      if (o.signal?.aborted) throw new NeuropruneError('E_ABORTED', `${o.what} cancelled after ${done} of ${keys.length} chunks; the chunks done are kept (continue with --resume)`);
      const k = keys[next++];
      if (store.has(k)) {
        run.resumed.push(k);
      } else {
        await compute(k, worker);
        run.computed.push(k);
      }
      o.onProgress?.(++done, keys.length);
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.max(1, o.workers ?? 1) }, (_, w) => work(w).catch((error) => ((failed = true), Promise.reject(error)))));
  const error = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (error) throw error.reason;
  return run;
}

/** The chunks of shard `shard` among `total`. */
export const chunksOf = (total: number, shard: Shard) => shardChunks(total, shard);

/** Writes complete.json: the shard is done. */
export function finishShard(store: ChunkStore, shard: Shard, keys: number[], run: ChunkRun): ShardCompletion {
  const completion: ShardCompletion = {
    format: SHARD_FORMAT,
    shard: { index: shard.index, count: shard.count },
    chunks: keys,
    computed: run.computed.length,
    resumed: run.resumed.length,
    finishedAt: new Date().toISOString(),
    runtime: { libtorch: native().runtime().torchVersion, threads: native().runtime().threads },
  };
  store.markComplete(completion);
  return completion;
}

/** The line a finished shard prints. */
export function shardLine(command: string, shard: Shard, dir: string, run: ChunkRun): string {
  return `${command} shard ${shard.index}/${shard.count}${shard.source === 'flag' || shard.source === 'none' ? '' : ` (from ${shard.source})`}: ${run.computed.length} chunks computed, ${run.resumed.length} resumed; wrote ${dir} (merge with: neuroprune merge ${dir.replace(/[/\\]shards[/\\][^/\\]+$/, '')})\n`;
}

/** The first place where two JSON values differ, as a dotted path; undefined when they are equal. */
export function firstDifference(a: unknown, b: unknown, at = ''): string | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
      if (d !== undefined) return d;
    }
  }
  return at || '(the whole manifest)';
}
