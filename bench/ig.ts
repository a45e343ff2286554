/**
 * Integrated Gradients, fast path against the per-layer reference on the same prompts:
 *   npm run bench -- ig [--model random:gpt2-small] [--prompt-len 64] [--steps 20] [--device cpu] [--quick]
 * Prints one JSON object: timings, speedup, the largest relative difference, and each path's FLOPs
 * counted from the shapes (matmuls and attention; the backward pass computes activation gradients
 * only, since weights never require grad, so it costs about one forward).
 *
 *   npm run bench -- ig --vs-captum [--prompt-len 64,256]
 * times the same job in HF transformers + Captum's LayerIntegratedGradients (bench/captum_ig.py, in
 * the project's .venv or --python) on the same checkpoint, ids and target, and prints both times,
 * their ratio and the largest relative difference of the scores, per prompt length.
 */
import { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AttributionResult, environment, initCheckpoint, Model, ModelInfo, readSafetensors } from '../lib';
import { packageRoot } from '../lib/native';

interface Shape {
  layerParams: number; // matmul weights per layer
  d: number;
  vocab: number;
  layers: number;
  /** Per position and layer: FLOPs that grow with the keys attended (4 d per key), or of a Mamba scan. */
  perKey: number;
  scan: number;
}

function shapeOf(info: ModelInfo): Shape {
  const c = info.config as Record<string, number | boolean>;
  const embeddings = info.vocabSize * info.dModel * (c.tie_word_embeddings === false ? 2 : 1) + Number(c.n_positions ?? 0) * info.dModel;
  const recurrent = info.neuronSite === 'mixer.hook_post'; // Mamba: no attention; exp(dt A), dt B x, the update and C h per unit and state
  return {
    layerParams: (info.nParams - embeddings) / info.nLayers, d: info.dModel, vocab: info.vocabSize, layers: info.nLayers,
    perKey: recurrent ? 0 : 4 * info.dModel, scan: recurrent ? 7 * info.dMlp * Number(c.state_size ?? 16) : 0,
  };
}

/** Forward FLOPs of `layers` blocks for `queries` positions attending to `keys` positions. */
const blockFlops = (s: Shape, layers: number, queries: number, keys: number) => layers * queries * (2 * s.layerParams + s.perKey * keys + s.scan);
const headFlops = (s: Shape, positions: number) => 2 * positions * s.vocab * s.d;

/** Reference: per layer l, rows x (full forward over T, backward from the head down to layer l). */
function referenceFlops(s: Shape, T: number, rows: number): number {
  let total = 0;
  for (let l = 0; l < s.layers; l++) {
    const forward = blockFlops(s, s.layers, T, T) + headFlops(s, T);
    const backward = blockFlops(s, s.layers - l - 1, T, T) + headFlops(s, T);
    total += rows * (forward + backward);
  }
  return total + blockFlops(s, s.layers, T, T) + headFlops(s, T); // the clean run
}

/** Fast: one clean run, then per layer l, rows x (one position through layers above l, forward and backward). */
function fastFlops(s: Shape, T: number, rows: number): number {
  let total = blockFlops(s, s.layers, T, T) + headFlops(s, 1);
  for (let l = 0; l < s.layers; l++) total += rows * 2 * (blockFlops(s, s.layers - l - 1, 1, T) + headFlops(s, 1));
  return total;
}

function maxRelDiff(a: AttributionResult, b: AttributionResult): number {
  let diff = 0, scale = 0;
  a.prompts[0].scores.forEach((v, i) => {
    diff = Math.max(diff, Math.abs(v - b.prompts[0].scores[i]));
    scale = Math.max(scale, Math.abs(b.prompts[0].scores[i]));
  });
  return diff / scale;
}

/** Prompt ids and a target that every vocabulary has. */
function promptIds(T: number, vocab: number): number[] {
  return Array.from({ length: T }, (_, i) => (i * 7919 + 13) % Math.min(vocab, 256));
}

const median = (runs: AttributionResult[]) => [...runs].sort((a, b) => a.ms - b.ms)[Math.floor(runs.length / 2)];

/** The same IG job in HF transformers + Captum, per prompt length; one JSON object. */
async function runVsCaptum(o: { model: string; promptLen: string; steps: number; python?: string; captumModes: string[] }): Promise<void> {
  const python = o.python ?? path.join(packageRoot(), '.venv', 'bin', 'python');
  const check = spawnSync(python, ['-c', 'import captum, transformers, safetensors, torch'], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw Object.assign(new Error(`${python} cannot import captum, transformers, safetensors and torch (npm test's setup installs them into .venv): ${check.stderr?.trim().split('\n').pop() ?? check.error}`), { code: 'E_BENCH' });
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroprune-vs-captum-'));
  try {
    // Captum needs the weights on disk: a random: preset is written once as an HF checkpoint.
    let dir = o.model;
    if (o.model.startsWith('random:')) {
      dir = path.join(work, 'model');
      await initCheckpoint(o.model.slice('random:'.length), dir, { seed: 0 });
    }
    const model = await Model.load(dir);
    const runs = [];
    let versions: Record<string, unknown> = {};
    for (const T of String(o.promptLen).split(',').map(Number)) {
      const ids = promptIds(T, model.info.vocabSize);
      const target = ids[3];
      const options = { prompts: [{ prompt: ids, target: [target] }], objective: 'logprob' as const, steps: o.steps, rule: 'riemann_right' as const, positions: 'last' as const };
      await model.attribute({ ...options, steps: 1 }); // warm-up
      const fastRuns = [];
      for (let i = 0; i < 3; i++) fastRuns.push(await model.attribute({ ...options, method: 'fast' }));
      const fast = median(fastRuns);

      const run: Record<string, unknown> = { prompt_len: T, fast_ms: Math.round(fast.ms), fast_runs_ms: fastRuns.map((x) => Math.round(x.ms)) };
      for (const mode of o.captumModes) {
        const job = path.join(work, `job-${T}-${mode}.json`), out = path.join(work, `captum-${T}-${mode}.safetensors`);
        fs.writeFileSync(job, JSON.stringify({ ids, target, steps: o.steps, layers: null, threads: os.availableParallelism(), mode }));
        const r = spawnSync(python, [path.join(packageRoot(), 'bench', 'captum_ig.py'), dir, job, out], { encoding: 'utf8', maxBuffer: 1 << 26 });
        if (r.status !== 0) throw Object.assign(new Error(`captum_ig.py failed: ${r.stderr.slice(-2000)}`), { code: 'E_BENCH' });
        const captum = JSON.parse(r.stdout.trim().split('\n').pop()!);
        const tensor = (await readSafetensors(out)).tensors.scores;
        const theirs = new Float32Array(tensor.data.buffer.slice(tensor.data.byteOffset, tensor.data.byteOffset + tensor.data.byteLength));
        let diff = 0, scale = 0;
        fast.prompts[0].scores.forEach((v, i) => {
          diff = Math.max(diff, Math.abs(v - theirs[i]));
          scale = Math.max(scale, Math.abs(theirs[i]));
        });
        run[`captum_${mode}_ms`] = captum.captum_ms;
        run[`captum_${mode}_per_layer_ms`] = captum.captum_per_layer_ms;
        run[`speedup_vs_captum_${mode}`] = Number((captum.captum_ms / fast.ms).toFixed(1));
        run[`max_rel_diff_${mode}`] = Number((diff / scale).toExponential(2));
        const { captum_ms: _ms, captum_per_layer_ms: _perLayer, mode: _mode, ...rest } = captum;
        versions = rest;
      }
      runs.push(run);
    }
    process.stdout.write(JSON.stringify({
      bench: 'ig-vs-captum',
      model: o.model,
      device: model.info.device,
      dtype: model.info.dtype,
      cpu: os.cpus()[0]?.model, cores: os.availableParallelism(),
      steps: o.steps, rule: 'riemann_right', positions: 'last', objective: 'logprob', layers: model.info.nLayers,
      neurons_per_layer: model.info.dMlp,
      captum_job: 'LayerIntegratedGradients on a gate before each down projection (baseline 0 at the last position), one layer at a time, internal_batch_size = steps',
      captum_modes: {
        best: 'weights frozen, logits_to_keep=1: the least work Captum can be asked to do',
        default: 'the model as from_pretrained returns it, model(input_ids).logits[:, -1], as the Captum tutorials call it',
      },
      reference_tools: versions,
      neuroprune: environment(),
      runs,
    }) + '\n');
    model.dispose();
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export async function runIgBench(argv: string[]): Promise<void> {
  const o = new Command('ig')
    .option('--model <id>', 'model', 'random:gpt2-small')
    .option('--prompt-len <n>', 'prompt tokens (with --vs-captum a list; default 64,256 there)')
    .option('--steps <n>', 'Riemann steps', (v) => parseInt(v, 10), 20)
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--dtype <dtype>', 'float32 or bfloat16', 'float32')
    .option('--quick', 'a short prompt and 5 steps: under 30 s')
    .option('--vs-captum', 'time HF transformers + Captum LayerIntegratedGradients on the same job (CPU, float32)')
    .option('--python <path>', 'the Python with torch, transformers and captum for --vs-captum (default .venv/bin/python)')
    .option('--captum-mode <modes>', 'best, default or best,default (see bench/captum_ig.py)', 'best,default')
    .parse(argv, { from: 'user' })
    .opts();
  if (o.vsCaptum) {
    return runVsCaptum({ model: o.model, promptLen: o.promptLen ?? '64,256', steps: Number(o.steps), python: o.python, captumModes: String(o.captumMode).split(',') });
  }
  o.promptLen = Number(o.promptLen ?? 64);
  if (o.quick) Object.assign(o, { promptLen: 32, steps: 5 }); // gpt2-small still: the speedup is about real shapes
  const model = await Model.load(o.model, { device: o.device, dtype: o.dtype, seed: 0 });
  const T = o.promptLen;
  const ids = promptIds(T, model.info.vocabSize);
  const options = { prompts: [{ prompt: ids, target: [ids[3]] }], objective: 'logprob' as const, steps: o.steps, rule: 'riemann_right' as const, positions: 'last' as const };
  await model.attribute({ ...options, steps: 1 }); // warm-up: allocator, thread pool, kernels
  // The fast path is short enough to be noisy: the median of three runs.
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await model.attribute({ ...options, method: 'fast' }));
  const fast = median(runs);
  const reference = await model.attribute({ ...options, method: 'reference' });
  const rowsPerLayer = o.steps + 1; // steps plus the F(0) row
  const shape = shapeOf(model.info);
  const result = {
    bench: 'ig',
    model: o.model,
    device: model.info.device,
    dtype: model.info.dtype,
    prompt_len: T,
    steps: o.steps,
    rule: options.rule,
    positions: options.positions,
    layers: model.info.nLayers,
    neurons_per_layer: model.info.dMlp,
    rows: fast.rows,
    micro_batches: fast.microBatches,
    fast_ms: Math.round(fast.ms),
    fast_runs_ms: runs.map((r) => Math.round(r.ms)),
    reference_ms: Math.round(reference.ms),
    speedup: Number((reference.ms / fast.ms).toFixed(1)),
    max_rel_diff: Number(maxRelDiff(fast, reference).toExponential(2)),
    fast_gflop: Number((fastFlops(shape, T, rowsPerLayer) / 1e9).toFixed(1)),
    reference_gflop: Number((referenceFlops(shape, T, rowsPerLayer) / 1e9).toFixed(1)),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  model.dispose();
}
