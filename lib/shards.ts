/**
 * Sharded runs: which slice of a long run this process does, and how work is cut into chunks.
 *
 * A shard is `i/N` (0-based i): from `--shard`, else from a Slurm array job (SLURM_ARRAY_TASK_ID minus
 * SLURM_ARRAY_TASK_MIN when set, of SLURM_ARRAY_TASK_COUNT), else from a Kubernetes Indexed Job
 * (JOB_COMPLETION_INDEX of NEUROPRUNE_SHARD_COUNT, which the job's yaml sets to its completions).
 * `--shard 0/1` forces an unsharded run whatever the environment says.
 *
 * Chunks are global: chunk k holds items [k*C, (k+1)*C) for a fixed chunk size C recorded with the run,
 * and an unsharded run processes the same chunks the same way, so a result never depends on which
 * other items shared its batch. Shard i of N gets chunks i, i+N, i+2N, ... (round-robin).
 */
import path from 'node:path';
import { NeuropruneError } from './errors';

export interface Shard {
  index: number;
  count: number;
  /** Where the spec came from, for messages. */
  source: 'flag' | 'slurm' | 'kubernetes' | 'none';
}

export const UNSHARDED: Shard = { index: 0, count: 1, source: 'none' };

/** The way chunks are dealt to shards; recorded in each shard's manifest. */
export const ASSIGNMENT = 'round-robin';

const nonNegative = (text: string) => /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;

/** Parses `i/N` (0 <= i < N); anything else is E_ARG naming `what`. */
export function parseShard(spec: string, what = '--shard', source: Shard['source'] = 'flag'): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(String(spec));
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index >= count) {
    throw new NeuropruneError('E_ARG', `${what} must be i/N with 0 <= i < N (e.g. 0/4), got "${spec}"`);
  }
  return { index, count, source };
}

/** The shard the environment asks for (Slurm array job, then Kubernetes Indexed Job), or undefined. */
export function shardFromEnv(env: NodeJS.ProcessEnv = process.env): Shard | undefined {
  const set = (name: string) => env[name] !== undefined && env[name] !== '';
  if (set('SLURM_ARRAY_TASK_ID')) {
    const id = nonNegative(env.SLURM_ARRAY_TASK_ID!);
    if (Number.isNaN(id)) throw new NeuropruneError('E_ARG', `SLURM_ARRAY_TASK_ID must be a non-negative integer, got "${env.SLURM_ARRAY_TASK_ID}"`);
    if (!set('SLURM_ARRAY_TASK_COUNT')) throw new NeuropruneError('E_ARG', `SLURM_ARRAY_TASK_ID is set (${id}) but SLURM_ARRAY_TASK_COUNT is not; pass --shard i/N`);
    const count = nonNegative(env.SLURM_ARRAY_TASK_COUNT!);
    if (Number.isNaN(count) || count < 1) throw new NeuropruneError('E_ARG', `SLURM_ARRAY_TASK_COUNT must be a positive integer, got "${env.SLURM_ARRAY_TASK_COUNT}"`);
    let min = 0;
    if (set('SLURM_ARRAY_TASK_MIN')) {
      min = nonNegative(env.SLURM_ARRAY_TASK_MIN!);
      if (Number.isNaN(min)) throw new NeuropruneError('E_ARG', `SLURM_ARRAY_TASK_MIN must be a non-negative integer, got "${env.SLURM_ARRAY_TASK_MIN}"`);
    }
    const index = id - min;
    if (index < 0 || index >= count) {
      throw new NeuropruneError('E_ARG', `SLURM_ARRAY_TASK_ID ${id} minus SLURM_ARRAY_TASK_MIN ${min} is not in [0, SLURM_ARRAY_TASK_COUNT ${count}); use a contiguous --array=0-${count - 1}, or pass --shard i/N`);
    }
    return { index, count, source: 'slurm' };
  }
  if (set('JOB_COMPLETION_INDEX')) {
    const index = nonNegative(env.JOB_COMPLETION_INDEX!);
    if (Number.isNaN(index)) throw new NeuropruneError('E_ARG', `JOB_COMPLETION_INDEX must be a non-negative integer, got "${env.JOB_COMPLETION_INDEX}"`);
    if (!set('NEUROPRUNE_SHARD_COUNT')) {
      throw new NeuropruneError('E_ARG', `JOB_COMPLETION_INDEX is set (${index}) but NEUROPRUNE_SHARD_COUNT is not: set it to the Indexed Job's completions, or pass --shard i/N (--shard 0/1 for one unsharded run)`);
    }
    const count = nonNegative(env.NEUROPRUNE_SHARD_COUNT!);
    if (Number.isNaN(count) || count < 1) throw new NeuropruneError('E_ARG', `NEUROPRUNE_SHARD_COUNT must be a positive integer, got "${env.NEUROPRUNE_SHARD_COUNT}"`);
    if (index >= count) throw new NeuropruneError('E_ARG', `JOB_COMPLETION_INDEX ${index} is not below NEUROPRUNE_SHARD_COUNT ${count}`);
    return { index, count, source: 'kubernetes' };
  }
  return undefined;
}

/** The flag first, then the environment, else unsharded. */
export function resolveShard(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Shard {
  if (flag !== undefined) return parseShard(flag);
  return shardFromEnv(env) ?? UNSHARDED;
}

export const isSharded = (shard: Shard) => shard.count > 1;

/** DIR/shards/<i>-of-<N>: where shard i of N writes its chunks. */
export function shardDir(out: string, shard: Shard): string {
  return path.join(out, 'shards', `${shard.index}-of-${shard.count}`);
}

export const SHARD_DIR_PATTERN = /^(\d+)-of-(\d+)$/;

export function chunkCount(items: number, chunkSize: number): number {
  return Math.ceil(items / chunkSize);
}

/** Chunk k's items: [k*C, min((k+1)*C, items)). */
export function chunkRange(k: number, chunkSize: number, items: number): [number, number] {
  return [k * chunkSize, Math.min((k + 1) * chunkSize, items)];
}

/** The chunks shard i of N does: i, i+N, i+2N, ... below `chunks`. */
export function shardChunks(chunks: number, shard: Shard): number[] {
  const out: number[] = [];
  for (let k = shard.index; k < chunks; k += shard.count) out.push(k);
  return out;
}

/** A chunk size flag: a positive integer. */
export function checkChunkSize(n: unknown, what = '--chunk-size'): number {
  if (!Number.isInteger(n) || (n as number) < 1) throw new NeuropruneError('E_ARG', `${what} must be a positive integer, got ${String(n)}`);
  return n as number;
}
