// Shard specs and environments (flag, Slurm array jobs, Kubernetes Indexed Jobs, precedence), chunk
// assignment, the chunk store's records and completion mark, and merge's checks on the shard folders:
// a missing, incomplete, duplicated or differently-made shard is E_SHARD naming it.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../lib/errors';
import { ChunkStore, decodeRecord, encodeRecord } from '../lib/pipelines/chunk-store';
import { checkShards, findShardFolders, mergeShards, runtimeWarnings } from '../lib/pipelines/merge';
import { finishShard, firstDifference, runChunks, shardManifest } from '../lib/pipelines/shard-run';
import { chunkCount, chunkRange, parseShard, resolveShard, shardChunks, shardDir, shardFromEnv } from '../lib/shards';
import { tempDir } from './helpers';

const codeAndMessage = (f: () => unknown) => {
  try {
    f();
  } catch (error) {
    if (!(error instanceof NeuropruneError)) throw error;
    return `${error.code}: ${error.message}`;
  }
  throw new Error('expected an error');
};

test('--shard i/N: 0-based, i < N; anything else is E_ARG naming the flag', (t) => {
  t.deepEqual(parseShard('0/3'), { index: 0, count: 3, source: 'flag' });
  t.deepEqual(parseShard(' 2 / 3 '), { index: 2, count: 3, source: 'flag' });
  t.deepEqual(parseShard('0/1'), { index: 0, count: 1, source: 'flag' });
  for (const bad of ['3/3', '1/0', '-1/3', '1', '1/3/4', 'a/b', '1.5/3', '', '/3']) {
    t.regex(codeAndMessage(() => parseShard(bad)), /^E_ARG: --shard must be i\/N/, bad);
  }
});

test('Slurm array jobs: SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT', (t) => {
  t.deepEqual(shardFromEnv({ SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 2, count: 4, source: 'slurm' });
  t.deepEqual(shardFromEnv({ SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '3', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 2, count: 4, source: 'slurm' });
  t.regex(codeAndMessage(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: '1' })), /^E_ARG: .*SLURM_ARRAY_TASK_COUNT is not/);
  t.regex(codeAndMessage(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '2' })), /^E_ARG: SLURM_ARRAY_TASK_ID must be/);
  t.regex(codeAndMessage(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_COUNT: '4' })), /^E_ARG: SLURM_ARRAY_TASK_ID 4 minus SLURM_ARRAY_TASK_MIN 0/);
  t.regex(codeAndMessage(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '0' })), /^E_ARG: SLURM_ARRAY_TASK_COUNT must be/);
  t.regex(codeAndMessage(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: 'a', SLURM_ARRAY_TASK_COUNT: '2' })), /^E_ARG: SLURM_ARRAY_TASK_MIN/);
});

test('Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX of NEUROPRUNE_SHARD_COUNT', (t) => {
  t.deepEqual(shardFromEnv({ JOB_COMPLETION_INDEX: '1', NEUROPRUNE_SHARD_COUNT: '3' }), { index: 1, count: 3, source: 'kubernetes' });
  t.regex(codeAndMessage(() => shardFromEnv({ JOB_COMPLETION_INDEX: '1' })), /^E_ARG: .*NEUROPRUNE_SHARD_COUNT is not/);
  t.regex(codeAndMessage(() => shardFromEnv({ JOB_COMPLETION_INDEX: '3', NEUROPRUNE_SHARD_COUNT: '3' })), /^E_ARG: JOB_COMPLETION_INDEX 3 is not below NEUROPRUNE_SHARD_COUNT 3/);
  t.regex(codeAndMessage(() => shardFromEnv({ JOB_COMPLETION_INDEX: '0', NEUROPRUNE_SHARD_COUNT: 'many' })), /^E_ARG: NEUROPRUNE_SHARD_COUNT must be/);
  t.is(shardFromEnv({}), undefined);
  t.is(shardFromEnv({ SLURM_ARRAY_TASK_ID: '', JOB_COMPLETION_INDEX: '' }), undefined);
});

test('precedence: the flag, then Slurm, then Kubernetes, else unsharded; --shard 0/1 forces one run', (t) => {
  const both = { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '2', JOB_COMPLETION_INDEX: '2', NEUROPRUNE_SHARD_COUNT: '5' };
  t.deepEqual(resolveShard(undefined, both), { index: 1, count: 2, source: 'slurm' });
  t.deepEqual(resolveShard(undefined, { JOB_COMPLETION_INDEX: '2', NEUROPRUNE_SHARD_COUNT: '5' }), { index: 2, count: 5, source: 'kubernetes' });
  t.deepEqual(resolveShard('0/1', both), { index: 0, count: 1, source: 'flag' });
  t.deepEqual(resolveShard('3/4', both), { index: 3, count: 4, source: 'flag' });
  t.deepEqual(resolveShard(undefined, {}), { index: 0, count: 1, source: 'none' });
  // A bad environment is not looked at when the flag is given.
  t.deepEqual(resolveShard('0/2', { SLURM_ARRAY_TASK_ID: 'bad' }), { index: 0, count: 2, source: 'flag' });
});

test('chunks are global and dealt round-robin: every chunk to exactly one shard', (t) => {
  t.is(chunkCount(10, 4), 3);
  t.deepEqual(chunkRange(2, 4, 10), [8, 10]);
  for (const N of [1, 2, 3, 5, 7]) {
    const all = Array.from({ length: N }, (_, i) => shardChunks(11, { index: i, count: N, source: 'flag' })).flat().sort((a, b) => a - b);
    t.deepEqual(all, Array.from({ length: 11 }, (_, k) => k), `N=${N}`);
  }
  t.deepEqual(shardChunks(7, { index: 1, count: 3, source: 'flag' }), [1, 4]);
  t.is(shardDir('/x/run', { index: 1, count: 3, source: 'flag' }), path.join('/x/run', 'shards', '1-of-3'));
});

test('chunk records round-trip whole; a damaged one is E_IO', (t) => {
  const values = Float32Array.from([1.5, -2, Math.PI, 0]);
  for (const meta of [{}, { a: 1 }, { records: ['xyz'] }, { long: 'x'.repeat(13) }]) {
    const r = decodeRecord(encodeRecord(meta, values), 'f');
    t.deepEqual(r.meta, meta);
    t.deepEqual(Array.from(r.values), Array.from(values));
  }
  t.throws(() => decodeRecord(encodeRecord({ a: 1 }, values).subarray(0, 9), 'f'), { code: 'E_IO' } as never);
});

/** A fake sharded run: N shard folders with `total` chunks, each written as records. */
async function fakeRun(dir: string, N: number, total: number, run: unknown = { model: 'm', steps: 3 }, complete = true) {
  for (let i = 0; i < N; i++) {
    const shard = { index: i, count: N, source: 'flag' as const };
    const store = ChunkStore.open(shardDir(dir, shard), shardManifest('eval', run, { size: 2, total }, shard), false);
    const keys = shardChunks(total, shard);
    const chunks = await runChunks(store, keys, async (k) => store.putRecord(k, { records: [k] }));
    if (complete) finishShard(store, shard, keys, chunks);
  }
}

test('runChunks skips chunks written before (a resumed shard repeats nothing); complete.json records it', async (t) => {
  const dir = tempDir();
  const shard = { index: 0, count: 1, source: 'flag' as const };
  const settings = shardManifest('eval', { a: 1 }, { size: 1, total: 4 }, shard);
  let store = ChunkStore.open(path.join(dir, 's'), settings, false);
  const done: number[] = [];
  await runChunks(store, [0, 1], async (k) => (done.push(k), store.putRecord(k, { k })));
  // "Killed" here; resumed:
  fs.writeFileSync(path.join(dir, 's', 'chunk-2.bin.tmp-999999'), 'half');
  store = ChunkStore.open(path.join(dir, 's'), settings, true);
  const run = await runChunks(store, [0, 1, 2, 3], async (k) => (done.push(k), store.putRecord(k, { k })));
  t.deepEqual(done, [0, 1, 2, 3]);
  t.deepEqual(run, { computed: [2, 3], resumed: [0, 1] });
  const c = finishShard(store, shard, [0, 1, 2, 3], run);
  t.like(store.completion(), { computed: 2, resumed: 2, chunks: [0, 1, 2, 3] });
  t.is(c.computed, 2);
  t.false(fs.readdirSync(path.join(dir, 's')).some((n) => n.includes('.tmp-')), 'a killed writer\'s half file is removed on resume');
  // Other settings on resume: E_ARG.
  t.is((t.throws(() => ChunkStore.open(path.join(dir, 's'), { ...settings, run: { a: 2 } }, true)) as NeuropruneError).code, 'E_ARG');
});

test('merge finds the shards of a run and checks they are all there, complete and alike', async (t) => {
  const dir = path.join(tempDir(), 'run');
  await fakeRun(dir, 3, 7);
  const folders = checkShards(findShardFolders([dir]));
  t.deepEqual(folders.map((f) => f.manifest.shard.index), [0, 1, 2]);
  // The shard folders themselves, in any order, are the same run.
  t.deepEqual(checkShards(findShardFolders([2, 0, 1].map((i) => path.join(dir, 'shards', `${i}-of-3`)))).map((f) => f.dir), folders.map((f) => f.dir));

  // A missing shard.
  const missing = path.join(tempDir(), 'run');
  await fakeRun(missing, 3, 7);
  fs.rmSync(path.join(missing, 'shards', '1-of-3'), { recursive: true });
  const e1 = await t.throwsAsync(mergeShards([missing]));
  t.is((e1 as NeuropruneError).code, 'E_SHARD');
  t.regex(e1!.message, /shard 1 of 3 missing .*1-of-3/);

  // An incomplete shard (killed): named, with how to finish it.
  const partial = path.join(tempDir(), 'run');
  await fakeRun(partial, 2, 5);
  fs.rmSync(path.join(partial, 'shards', '0-of-2', 'complete.json'));
  fs.rmSync(path.join(partial, 'shards', '0-of-2', 'chunk-2.bin'));
  const e2 = await t.throwsAsync(mergeShards([partial]));
  t.is((e2 as NeuropruneError).code, 'E_SHARD');
  t.regex(e2!.message, /shard 0 of 2 .* is not complete: 2 of 3 chunks written; rerun it with --shard 0\/2 --resume/);

  // A shard made with other settings: the field is named.
  const other = path.join(tempDir(), 'other');
  await fakeRun(other, 3, 7, { model: 'm', steps: 4 });
  const e3 = t.throws(() => checkShards(findShardFolders([path.join(dir, 'shards', '0-of-3'), path.join(dir, 'shards', '1-of-3'), path.join(other, 'shards', '2-of-3')])));
  t.is((e3 as NeuropruneError).code, 'E_SHARD');
  t.regex(e3!.message, /shard 2 of 3 .* other settings .*: run\.steps is 4 there, 3 here/);

  // Shards of runs with other shard counts, and a shard given twice.
  const two = path.join(tempDir(), 'two');
  await fakeRun(two, 2, 7);
  t.regex(t.throws(() => checkShards(findShardFolders([dir, two])))!.message, /one of 2 shards but .* one of 3/);
  t.regex(t.throws(() => checkShards(findShardFolders([dir, path.join(dir, 'shards', '1-of-3')])))!.message, /shard 1 of 3 appears twice/);

  // No shards at all.
  const empty = tempDir();
  t.is((await t.throwsAsync(mergeShards([empty])) as NeuropruneError).code, 'E_SHARD');
});

test('merge warns when shards ran with other intra-op thread counts (float tolerance, not bit for bit)', async (t) => {
  const dir = path.join(tempDir(), 'run');
  await fakeRun(dir, 2, 4);
  t.deepEqual(runtimeWarnings(checkShards(findShardFolders([dir]))), []);
  const file = path.join(dir, 'shards', '1-of-2', 'complete.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify({ ...c, runtime: { ...c.runtime, threads: c.runtime.threads + 7 } }));
  const [w] = runtimeWarnings(checkShards(findShardFolders([dir])));
  t.regex(w, new RegExp(`${c.runtime.threads + 7} threads \\(shard 1\\).*float tolerance`));
});

test('firstDifference names the first field that differs', (t) => {
  t.is(firstDifference({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 3] } }), 'b.c.1');
  t.is(firstDifference({ a: 1 }, { a: 1 }), undefined);
  t.is(firstDifference({ a: 1 }, { a: 1, z: 2 }), 'z');
});
