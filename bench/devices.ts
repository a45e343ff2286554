/**
 * Attribution throughput on one device against one replica per device (--devices):
 *   npm run bench -- devices [--model random:gpt2-small] [--devices cpu,cpu] [--prompts 24] [--prompt-len 32] [--steps 8] [--quick]
 * Default devices: every visible GPU (`all`) on a CUDA machine, else cpu,cpu. Prints one JSON object:
 * per arm (one model in one call; the pool over the devices) the time, prompts per second, what each
 * replica took from the queue, the speedup over one device, and the largest relative difference of
 * the pool's scores from the single device's. On a CPU machine the replicas share the same cores, so
 * expect no speedup there; the arm shows the queue's overhead, not a GPU's scaling.
 */
import { Command } from 'commander';
import { AttributionPrompt, environment, Model, ModelPool, parseDevices, runtime } from '../lib';

export async function runDevicesBench(argv: string[]): Promise<void> {
  process.stdout.write(JSON.stringify(await devicesBench(argv), null, 2) + '\n');
}

/** The measurement itself, for other benches (the shards bench's --devices row) to include. */
export async function devicesBench(argv: string[]): Promise<Record<string, unknown>> {
  const o = new Command('devices')
    .option('--model <id>', 'model', 'random:gpt2-small')
    .option('--devices <list>', 'replica devices (default: all GPUs, else cpu,cpu)')
    .option('--prompts <n>', 'prompts', (v) => parseInt(v, 10), 24)
    .option('--prompt-len <n>', 'tokens per prompt', (v) => parseInt(v, 10), 32)
    .option('--steps <n>', 'Riemann steps', (v) => parseInt(v, 10), 8)
    .option('--chunk-size <n>', 'prompts per chunk of the queue', (v) => parseInt(v, 10))
    .option('--dtype <dtype>', 'float32, bfloat16 or float16', 'float32')
    .option('--quick', 'a small model and few prompts (CI)')
    .parse(['node', 'devices', ...argv])
    .opts();
  if (o.quick) Object.assign(o, { model: o.model === 'random:gpt2-small' ? 'random:gpt2-tiny' : o.model, prompts: 8, promptLen: 16, steps: 4 });
  const devices = parseDevices(o.devices ?? (runtime().gpus > 0 ? 'all' : 'cpu,cpu'));
  const one = await Model.load(o.model, { device: devices[0] as 'cpu', dtype: o.dtype });
  const vocab = one.info.vocabSize;
  // Deterministic prompts of random-looking ids: no tokenizer needed.
  let x = 12345;
  const next = () => ((x = (x * 1103515245 + 12345) % 2147483648), x % vocab);
  const prompts: AttributionPrompt[] = Array.from({ length: o.prompts }, () => ({ prompt: Array.from({ length: o.promptLen }, next), target: [next()] }));
  const options = { prompts, steps: o.steps, objective: 'logprob' as const };

  await one.attribute({ ...options, prompts: prompts.slice(0, 1) });  // warm-up
  const t0 = performance.now();
  const single = await one.attribute(options);
  const singleMs = performance.now() - t0;
  one.dispose();

  const pool = await ModelPool.load(o.model, { devices, dtype: o.dtype });
  let pooled;
  let poolMs;
  try {
    await pool.attribute({ ...options, prompts: prompts.slice(0, devices.length), chunkSize: 1 });  // warm-up every replica
    const t1 = performance.now();
    pooled = await pool.attribute({ ...options, ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}) });
    poolMs = performance.now() - t1;
  } finally {
    pool.dispose();
  }
  let diff = 0, scale = 0;
  single.prompts.forEach((p, b) => p.scores.forEach((v, i) => {
    diff = Math.max(diff, Math.abs(v - pooled.prompts[b].scores[i]));
    scale = Math.max(scale, Math.abs(v));
  }));
  const rate = (ms: number) => +(prompts.length / (ms / 1000)).toFixed(3);
  return {
    bench: 'devices',
    model: o.model,
    dtype: o.dtype,
    prompts: prompts.length,
    promptLen: o.promptLen,
    steps: o.steps,
    layers: single.layers.length,
    threads: runtime().threads,
    arms: [
      { devices: [devices[0]], ms: Math.round(singleMs), promptsPerS: rate(singleMs) },
      { devices, ms: Math.round(poolMs), promptsPerS: rate(poolMs), chunkSize: pooled.chunkSize, replicas: pooled.replicas.map((r) => ({ ...r, ms: Math.round(r.ms) })) },
    ],
    speedup: +(singleMs / poolMs).toFixed(3),
    maxRelDiff: diff / scale,
    environment: environment(),
  };
}
