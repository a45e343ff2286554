/**
 * `mergeShards`: the shard folders of one sharded run (DIR/shards/<i>-of-<N>/, or the folders
 * themselves) checked to be all N shards, complete, made with the same settings, and put together into
 * exactly the files an unsharded run writes, with the same numbers (chunks are global and each is
 * computed the same way whichever process does it). Outputs are staged and moved into OUT whole.
 *
 * attribute and eval need nothing but the shard folders. copybias, query-neurons and circuit shard their
 * attribution stage only: merge then loads the model (the one recorded, or `model`) and runs the rest
 * of the pipeline from the merged chunks, as `--resume` would.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';
import { SHARD_DIR_PATTERN } from '../shards';
import { publishInto, stagingDir, throwIfAborted } from '../staging';
import { assembleAttribution, AttributeRun, writeAttributeOutputs } from './attribute-chunks';
import { ChunkStore } from './chunk-store';
import { mergeStage } from './merge-stages';
import { firstDifference, SHARD_FORMAT, ShardCommand, ShardCompletion, ShardManifest } from './shard-run';

export { firstDifference };

export interface MergeOptions {
  /** Where the outputs go (default: the run folder DIR holding shards/). */
  out?: string;
  /** copybias, query-neurons, circuit: the model to finish the pipeline with (default: the one the shards used). */
  model?: string;
  device?: string;
  dtype?: string;
  signal?: AbortSignal;
  /** Called with the progress of the stages merge runs itself (query-neurons, circuit). */
  onProgress?: (p: { stage: string; done: number; total: number }) => void;
}

export interface MergeResult {
  command: ShardCommand;
  out: string;
  shards: number;
  chunks: number;
  /** The files written into `out`. */
  files: string[];
  /** What may make the numbers differ from one run in their last bits (shards on other LibTorch builds or thread counts). */
  warnings: string[];
  ms: number;
}

export interface ShardFolder {
  dir: string;
  store: ChunkStore;
  manifest: ShardManifest;
}

/** Every shard folder named by `dirs`: DIR/shards/* for a run folder, or a shard folder itself. */
export function findShardFolders(dirs: string[]): ShardFolder[] {
  if (!Array.isArray(dirs) || dirs.length === 0) throw new NeuropruneError('E_ARG', 'merge needs at least one folder');
  const found: ShardFolder[] = [];
  for (const given of dirs) {
    const dir = path.resolve(given);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new NeuropruneError('E_SHARD', `${given}: no such folder`);
    const candidates = SHARD_DIR_PATTERN.test(path.basename(dir)) && fs.existsSync(path.join(dir, 'manifest.json'))
      ? [dir]
      : fs.existsSync(path.join(dir, 'shards'))
        ? fs.readdirSync(path.join(dir, 'shards')).filter((n) => SHARD_DIR_PATTERN.test(n)).sort().map((n) => path.join(dir, 'shards', n))
        : [];
    if (candidates.length === 0) throw new NeuropruneError('E_SHARD', `${given}: no shard folders (neither ${path.join(given, 'shards', '<i>-of-<N>')} nor a shard folder itself)`);
    for (const c of candidates) {
      const store = ChunkStore.read(c);
      if (!store) throw new NeuropruneError('E_SHARD', `${c}: no manifest.json (not a shard folder, or its shard never started)`);
      let manifest: ShardManifest;
      try {
        manifest = store.settings<ShardManifest>();
      } catch {
        throw new NeuropruneError('E_SHARD', `${path.join(c, 'manifest.json')}: unreadable`);
      }
      if (manifest?.format !== SHARD_FORMAT) throw new NeuropruneError('E_SHARD', `${c}: its manifest is not ${SHARD_FORMAT}`);
      found.push({ dir: c, store, manifest });
    }
  }
  return found;
}

const show = (v: unknown) => {
  const s = JSON.stringify(v);
  return s === undefined ? 'nothing' : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

function pick(v: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), v);
}

/**
 * Checks that the folders are exactly shards 0..N-1 of one run, each complete with every chunk of
 * its own; returns them in shard order. Anything else is E_SHARD naming the shard and what is wrong.
 */
export function checkShards(folders: ShardFolder[]): ShardFolder[] {
  const first = folders[0];
  const N = first.manifest.shard.count;
  for (const f of folders.slice(1)) {
    if (f.manifest.shard.count !== N) {
      throw new NeuropruneError('E_SHARD', `${f.dir} is one of ${f.manifest.shard.count} shards but ${first.dir} is one of ${N}: these are different runs (merge the folders of one run)`);
    }
    const a = { command: first.manifest.command, run: first.manifest.run, chunks: first.manifest.chunks };
    const b = { command: f.manifest.command, run: f.manifest.run, chunks: f.manifest.chunks };
    const d = firstDifference(a, b);
    if (d !== undefined) {
      throw new NeuropruneError('E_SHARD', `shard ${f.manifest.shard.index} of ${N} (${f.dir}) was made with other settings than shard ${first.manifest.shard.index} (${first.dir}): ${d} is ${show(pick(b, d))} there, ${show(pick(a, d))} here`);
    }
  }
  const byIndex = new Map<number, ShardFolder>();
  for (const f of folders) {
    const i = f.manifest.shard.index;
    const had = byIndex.get(i);
    if (had) throw new NeuropruneError('E_SHARD', `shard ${i} of ${N} appears twice: ${had.dir} and ${f.dir}`);
    byIndex.set(i, f);
  }
  const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length) {
    const where = path.dirname(first.dir);
    throw new NeuropruneError('E_SHARD', `${missing.length === 1 ? 'shard' : 'shards'} ${missing.join(', ')} of ${N} missing (no ${missing.map((i) => path.join(where, `${i}-of-${N}`)).join(', ')}); run ${missing.length === 1 ? 'it' : 'them'} with --shard i/${N}`);
  }
  const ordered = Array.from({ length: N }, (_, i) => byIndex.get(i)!);
  for (const f of ordered) {
    const i = f.manifest.shard.index;
    const mine: number[] = [];
    for (let k = i; k < f.manifest.chunks.total; k += N) mine.push(k);
    const completion = f.store.completion<ShardCompletion>();
    const written = new Set(f.store.keys());
    const absent = mine.filter((k) => !written.has(k));
    if (!completion) {
      throw new NeuropruneError('E_SHARD', `shard ${i} of ${N} (${f.dir}) is not complete: ${mine.length - absent.length} of ${mine.length} chunks written; rerun it with --shard ${i}/${N} --resume`);
    }
    if (absent.length) throw new NeuropruneError('E_SHARD', `shard ${i} of ${N} (${f.dir}) is marked complete but lacks chunk${absent.length > 1 ? 's' : ''} ${absent.slice(0, 10).join(', ')}; rerun it with --shard ${i}/${N} --resume`);
  }
  return ordered;
}

function defaultOut(dirs: string[], folders: ShardFolder[]): string {
  const first = path.resolve(dirs[0]);
  if (fs.existsSync(path.join(first, 'shards'))) return first;
  const parent = path.dirname(folders[0].dir);
  if (path.basename(parent) === 'shards') return path.dirname(parent);
  throw new NeuropruneError('E_ARG', 'merge: give --out (the shard folders are not under a DIR/shards folder)');
}

/** Merges the shards of one run into the files its unsharded run writes. */
export async function mergeShards(dirs: string[], options: MergeOptions = {}): Promise<MergeResult> {
  const started = performance.now();
  const folders = checkShards(findShardFolders(dirs));
  const out = path.resolve(options.out ?? defaultOut(dirs, folders));
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new NeuropruneError('E_ARG', `--out ${out} exists and is not a folder`);
  const { command, chunks } = folders[0].manifest;
  const N = folders.length;
  const storeOf = (k: number) => folders[k % N].store;
  let files: string[];
  switch (command) {
    case 'attribute': {
      const run = folders[0].manifest.run as AttributeRun;
      const result = assembleAttribution(run, chunks.size!, storeOf);
      files = await staged(out, options.signal, (tmp) => writeAttributeOutputs(tmp, run, result, chunks.size!, result.ms));
      break;
    }
    default:
      files = await mergeStage(command, folders, out, options);
  }
  return { command, out, shards: N, chunks: chunks.total, files, warnings: runtimeWarnings(folders), ms: performance.now() - started };
}

/** Shards that ran on other LibTorch versions or intra-op thread counts: equal to float tolerance, not bit for bit. */
export function runtimeWarnings(folders: ShardFolder[]): string[] {
  const seen = new Map<string, number[]>();
  for (const f of folders) {
    const r = f.store.completion<ShardCompletion>()?.runtime;
    if (!r) continue;
    const key = `LibTorch ${r.libtorch}, ${r.threads} threads`;
    seen.set(key, [...(seen.get(key) ?? []), f.manifest.shard.index]);
  }
  if (seen.size < 2) return [];
  return [`the shards ran with ${[...seen].map(([k, ix]) => `${k} (shard${ix.length > 1 ? 's' : ''} ${ix.join(', ')})`).join('; ')}: numbers agree with one run to float tolerance, not bit for bit (pin OMP_NUM_THREADS for bit-identity)`];
}

/** Writes into a staging folder beside OUT, then moves each file into OUT; returns their names. */
export async function staged(out: string, signal: AbortSignal | undefined, write: (tmp: string) => Promise<void>): Promise<string[]> {
  const tmp = stagingDir(out);
  try {
    await write(tmp);
    throwIfAborted(signal, 'merge');
    const names = fs.readdirSync(tmp).sort();
    publishInto(tmp, out);
    return names;
  } catch (error) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
}
