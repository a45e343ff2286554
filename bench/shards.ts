/**
 * Sharded attribute on this machine, and the merge:
 *   npm run bench -- shards [--shards 2] [--prompts 48] [--steps 8] [--chunk-size 4] [--layers 4] [--hidden 128]
 *                          [--merge-prompts 1000] [--merge-layers 12] [--merge-dmlp 3072]
 * 1. Throughput (prompts/s, wall time from process start to exit, model load included) of `attribute`
 *    on a small random GPT-2 as one process, and as N shard processes run at once (each with
 *    max(1, cores / N) LibTorch threads, the one process with all cores), plus the merge of those
 *    shards; the merged file is checked to equal the one process's byte for byte.
 * 2. With GPUs, `--devices` on every GPU lent (the devices bench's arms, bfloat16).
 * 3. The merge of 1000 prompts' attributions (synthetic shard folders of GPT-2 small's size by
 *    default: 12 layers x 3072 neurons), the goal being under a second.
 * Prints one JSON object. On a machine with few cores N shards cannot beat one process that already
 * uses every core: the numbers say so rather than hide it.
 */
import { Command } from 'commander';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { environment, initCheckpoint, mergeShards, readSafetensors, runtime } from '../lib';
import { devicesBench } from './devices';
import { packageRoot } from '../lib/native';
import { AttributeRun } from '../lib/pipelines/attribute-chunks';
import { ChunkStore } from '../lib/pipelines/chunk-store';
import { finishShard, shardManifest } from '../lib/pipelines/shard-run';
import { chunkCount, chunkRange, shardChunks, shardDir } from '../lib/shards';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
const int = (v: string) => parseInt(v, 10);

function exec(args: string[], threads: number): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
  for (const k of ['SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_COUNT', 'JOB_COMPLETION_INDEX', 'NEUROPRUNE_SHARD_COUNT']) delete env[k];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`neuroprune ${args[0]} exited ${code}: ${err}`))));
  });
}

/** Shard folders holding `prompts` prompts' attributions of [layers, dMlp] each, as N shards would leave them. */
export function syntheticShards(dir: string, prompts: number, layers: number, dMlp: number, N: number, chunkSize: number) {
  const run: AttributeRun = {
    model: 'synthetic',
    info: { id: 'synthetic', architecture: 'GPT2LMHeadModel', modelType: 'gpt2', nLayers: layers, dModel: dMlp / 4, nHeads: 12, dMlp, neuronSite: 'mlp.hook_post', neuronSites: ['mlp.hook_post'], vocabSize: 50257, maxPositions: 1024, nParams: 0, dtype: 'float32', device: 'cpu', sites: [] },
    prompts: { count: prompts, sha256: 'synthetic' },
    options: { objective: 'prob', steps: 20, rule: 'riemann_right', positions: 'last', layers: Array.from({ length: layers }, (_, l) => l), method: 'fast', memoryBudgetMB: 2048, site: 'mlp.hook_post' },
    top: 50,
  };
  const total = chunkCount(prompts, chunkSize);
  for (let i = 0; i < N; i++) {
    const shard = { index: i, count: N, source: 'flag' as const };
    const store = ChunkStore.open(shardDir(dir, shard), shardManifest('attribute', run, { size: chunkSize, total }, shard), false);
    const keys = shardChunks(total, shard);
    for (const k of keys) {
      const [from, to] = chunkRange(k, chunkSize, prompts);
      const P = to - from;
      const values = new Float32Array(P * layers * dMlp + 2 * P * layers);
      for (let j = 0; j < values.length; j++) values[j] = Math.sin(k * 7919 + j);
      store.putRecord(k, { prompts: P, layers: run.options.layers, dMlp, rows: P * 20, microBatches: 1, ms: 1 }, values);
    }
    finishShard(store, shard, keys, { computed: keys, resumed: [] });
  }
}

/** The largest |a - b| / max |a| over the float tensors of two safetensors files. */
async function maxRelDiff(a: string, b: string): Promise<number> {
  const x = await readSafetensors(a), y = await readSafetensors(b);
  let diff = 0, scale = 0;
  for (const [name, t] of Object.entries(x.tensors)) {
    if (t.dtype !== 'F32') continue;
    const p = new Float32Array(Uint8Array.from(t.data).buffer), q = new Float32Array(Uint8Array.from(y.tensors[name].data).buffer);
    for (let i = 0; i < p.length; i++) (diff = Math.max(diff, Math.abs(p[i] - q[i]))), (scale = Math.max(scale, Math.abs(p[i])));
  }
  return scale ? diff / scale : diff;
}

export async function runShardsBench(argv: string[]): Promise<void> {
  const o = new Command('shards')
    .option('--shards <n>', 'shard processes run at once', int, 2)
    .option('--prompts <n>', 'attribution prompts', int, 48)
    .option('--steps <n>', 'IG steps', int, 8)
    .option('--chunk-size <n>', 'prompts per chunk', int, 4)
    .option('--layers <n>', 'layers of the random GPT-2', int, 4)
    .option('--hidden <n>', 'hidden size of the random GPT-2', int, 128)
    .option('--merge-prompts <n>', 'prompts in the merge timing', int, 1000)
    .option('--merge-layers <n>', 'layers in the merge timing', int, 12)
    .option('--merge-dmlp <n>', 'neurons per layer in the merge timing', int, 3072)
    .parse(argv, { from: 'user' })
    .opts();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroprune-bench-shards-'));
  try {
    const model = path.join(dir, 'model');
    await initCheckpoint('gpt2', model, { layers: o.layers, hidden: o.hidden, heads: 4, seed: 0 });
    const prompts = path.join(dir, 'prompts.jsonl');
    const words = ['river', 'stone', 'cloud', 'garden', 'window', 'mountain', 'letter', 'silver'];
    fs.writeFileSync(prompts, Array.from({ length: o.prompts }, (_, i) => JSON.stringify({ prompt: `The ${words[i % 8]} near the ${words[(i * 3 + 1) % 8]} was ${'very '.repeat(i % 5)}close to the`, target: ` ${words[(i * 5 + 2) % 8]}` })).join('\n') + '\n');
    const cores = os.cpus().length;
    const args = (out: string, ...more: string[]) => ['attribute', model, '--prompts', prompts, '--out', out, '--steps', String(o.steps), '--chunk-size', String(o.chunkSize), ...more];

    const oneMs = await exec(args(path.join(dir, 'one')), cores);
    const shardThreads = Math.max(1, Math.floor(cores / o.shards));
    const started = performance.now();
    const perShard = await Promise.all(Array.from({ length: o.shards }, (_, i) => exec(args(path.join(dir, 'sharded'), '--shard', `${i}/${o.shards}`), shardThreads)));
    const shardedMs = performance.now() - started;
    const merge = await mergeShards([path.join(dir, 'sharded')]);
    const equal = fs.readFileSync(path.join(dir, 'one', 'attributions.safetensors')).equals(fs.readFileSync(path.join(dir, 'sharded', 'attributions.safetensors')));
    const relDiff = await maxRelDiff(path.join(dir, 'one', 'attributions.safetensors'), path.join(dir, 'sharded', 'attributions.safetensors'));

    const synthetic = path.join(dir, 'synthetic');
    syntheticShards(synthetic, o.mergePrompts, o.mergeLayers, o.mergeDmlp, o.shards, 16);
    const mergeRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await mergeShards([synthetic]);
      mergeRuns.push(performance.now() - t0);
    }
    const bytes = fs.statSync(path.join(synthetic, 'attributions.safetensors')).size;
    // --devices on every GPU lent (one process, a replica per GPU); on a CPU machine `npm run bench --
    // devices` times cpu,cpu replicas, which share the same cores.
    const gpus = runtime().gpus;
    const devices = gpus > 0 ? await devicesBench(['--devices', 'all', '--dtype', 'bfloat16']) : { skipped: 'no GPU here: this row times --devices on every GPU lent (npm run bench -- devices times cpu,cpu)' };
    const round = (x: number) => Math.round(x * 100) / 100;
    process.stdout.write(JSON.stringify({
      bench: 'shards',
      environment: environment(),
      cores,
      model: { arch: 'gpt2', layers: o.layers, hidden: o.hidden, dMlp: 4 * o.hidden },
      prompts: o.prompts, steps: o.steps, chunkSize: o.chunkSize,
      oneProcess: { threads: cores, ms: Math.round(oneMs), promptsPerSecond: round(o.prompts / (oneMs / 1000)) },
      shards: {
        n: o.shards, threadsEach: shardThreads, ms: Math.round(shardedMs), perShardMs: perShard.map(Math.round),
        promptsPerSecond: round(o.prompts / (shardedMs / 1000)), speedup: round(oneMs / shardedMs),
        mergeMs: Math.round(merge.ms), mergedEqualsOneProcess: equal, maxRelDiff: relDiff,
      },
      devices,
      merge1000: {
        prompts: o.mergePrompts, layers: o.mergeLayers, dMlp: o.mergeDmlp, shards: o.shards, fileMB: round(bytes / 2 ** 20),
        ms: mergeRuns.map(Math.round), medianMs: Math.round([...mergeRuns].sort((a, b) => a - b)[1]), underOneSecond: [...mergeRuns].sort((a, b) => a - b)[1] < 1000,
      },
      note: `wall time per run includes starting node and loading the model; ${o.shards} shards share ${cores} cores (${shardThreads} LibTorch threads each) against one process with ${cores} threads. ` +
        'Bit-identity needs the same intra-op thread count in every process (the tests run them so); with other thread counts the float sums split differently and the merge equals the one process to maxRelDiff.',
    }, null, 2) + '\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
