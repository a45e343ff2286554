/**
 * Integrated Gradients, fast path against the per-layer reference on the same prompts:
 *   npm run bench -- ig [--model random:gpt2-small] [--prompt-len 64] [--steps 20] [--device cpu] [--quick]
 * Prints one JSON object: timings, speedup, the largest relative difference, and each path's FLOPs
 * counted from the shapes (matmuls and attention; the backward pass computes activation gradients
 * only, since weights never require grad, so it costs about one forward).
 */
import { Command } from 'commander';
import { AttributionResult, Model, ModelInfo } from '../lib';

interface Shape {
  layerParams: number; // matmul weights per layer
  d: number;
  vocab: number;
  layers: number;
}

function shapeOf(info: ModelInfo): Shape {
  const c = info.config as Record<string, number | boolean>;
  const embeddings = info.vocabSize * info.dModel * (c.tie_word_embeddings === false ? 2 : 1) + Number(c.n_positions ?? 0) * info.dModel;
  return { layerParams: (info.nParams - embeddings) / info.nLayers, d: info.dModel, vocab: info.vocabSize, layers: info.nLayers };
}

/** Forward FLOPs of `layers` blocks for `queries` positions attending to `keys` positions. */
const blockFlops = (s: Shape, layers: number, queries: number, keys: number) => layers * queries * (2 * s.layerParams + 4 * s.d * keys);
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

export async function runIgBench(argv: string[]): Promise<void> {
  const o = new Command('ig')
    .option('--model <id>', 'model', 'random:gpt2-small')
    .option('--prompt-len <n>', 'prompt tokens', (v) => parseInt(v, 10), 64)
    .option('--steps <n>', 'Riemann steps', (v) => parseInt(v, 10), 20)
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--dtype <dtype>', 'float32 or bfloat16', 'float32')
    .option('--quick', 'a short prompt and 5 steps: under 30 s')
    .parse(argv, { from: 'user' })
    .opts();
  if (o.quick) Object.assign(o, { promptLen: 32, steps: 5 }); // gpt2-small still: the speedup is about real shapes
  const model = await Model.load(o.model, { device: o.device, dtype: o.dtype, seed: 0 });
  const T = o.promptLen;
  const ids = Array.from({ length: T }, (_, i) => (i * 7919 + 13) % Math.min(model.info.vocabSize, 256));
  const options = { prompts: [{ prompt: ids, target: [ids[3]] }], objective: 'logprob' as const, steps: o.steps, rule: 'riemann_right' as const, positions: 'last' as const };
  await model.attribute({ ...options, steps: 1 }); // warm-up: allocator, thread pool, kernels
  // The fast path is short enough to be noisy: the median of three runs.
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await model.attribute({ ...options, method: 'fast' }));
  const fast = runs.sort((a, b) => a.ms - b.ms)[1];
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
