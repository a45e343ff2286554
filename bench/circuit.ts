/**
 * EAP-IG on the circuit graph against its two references:
 *   npm run bench -- circuit [--model random:gpt2-small] [--len 16] [--steps 5] [--batch 8]
 *                            [--patch-sample 24] [--device cpu] [--dtype float32] [--budget-mb 4096]
 * (1) time per EAP-IG step (the whole edgeScores call over m, so the clean and corrupted runs count
 *     too) against one plain forward+backward of the same batch (goal: at most 8x);
 * (2) against patching every edge one ablatedRun at a time: a seeded sample of edges is timed and the
 *     mean extrapolated to every edge of the graph; the JSON gives the ratio.
 * Prints one JSON object.
 */
import { Command } from 'commander';
import os from 'node:os';
import { environment, Model } from '../lib';
import type { CircuitMetric } from '../lib';

export async function runCircuitBench(argv: string[]): Promise<void> {
  const o = new Command('circuit')
    .option('--model <id>', 'model', 'random:gpt2-small')
    .option('--len <n>', 'tokens per row T', (v) => parseInt(v, 10), 16)
    .option('--steps <n>', 'EAP-IG steps m', (v) => parseInt(v, 10), 5)
    .option('--batch <n>', 'rows', (v) => parseInt(v, 10), 8)
    .option('--patch-sample <n>', 'edges whose single-edge patching is timed', (v) => parseInt(v, 10), 24)
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--dtype <dtype>', 'float32, bfloat16 or float16', 'float32')
    .option('--budget-mb <n>', 'memory budget of edgeScores in MiB', (v) => parseInt(v, 10), 4096)
    .parse(argv, { from: 'user' })
    .opts();
  const model = await Model.load(o.model, { device: o.device, dtype: o.dtype, seed: 0 });
  const vocab = Math.min(model.info.vocabSize, 50000);
  const row = (b: number, shift: number) => Array.from({ length: o.len }, (_, i) => (i * 7919 + 13 * b + shift * (i === 2 ? 101 : 0)) % vocab);
  const clean = Array.from({ length: o.batch }, (_, b) => row(b, 0));
  const corrupted = Array.from({ length: o.batch }, (_, b) => row(b, 1));
  const metric: CircuitMetric = { kind: 'logit_diff', answer: clean.map((_, b) => (b * 31 + 7) % vocab), wrong: clean.map((_, b) => (b * 17 + 3) % vocab) };
  const graph = model.circuitGraph();
  let edges = 0;
  graph.edges.forEach((e) => (edges += e));
  const memoryBudgetBytes = o.budgetMb * 2 ** 20;

  // Warm-up, then the median of three.
  await model.forwardBackwardMs({ clean, metric });
  const plain: number[] = [];
  for (let i = 0; i < 3; i++) plain.push(await model.forwardBackwardMs({ clean, metric }));
  const plainMs = median(plain);
  const runs = [];
  for (let i = 0; i < 2; i++) runs.push(await model.edgeScores({ clean, corrupted, metric, method: 'eap-ig', steps: o.steps, memoryBudgetBytes }));
  const eapIg = runs.sort((a, b) => a.ms - b.ms)[0];
  const perStep = eapIg.ms / o.steps;

  // Patching: one ablatedRun per edge (that edge ablated with the corrupted value), a seeded sample.
  const edgeIds: number[] = [];
  graph.edges.forEach((e, i) => e && edgeIds.push(i));
  let seed = 12345;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
  const sample = Array.from({ length: Math.min(o.patchSample, edgeIds.length) }, () => edgeIds[Math.floor(next() * edgeIds.length)]);
  const kept = new Uint8Array(graph.edges.length).fill(1);
  await model.ablatedRun({ clean, kept, ablation: 'corrupted', corrupted, metric }); // warm-up
  const started = performance.now();
  for (const e of sample) {
    kept[e] = 0;
    await model.ablatedRun({ clean, kept, ablation: 'corrupted', corrupted, metric });
    kept[e] = 1;
  }
  const patchEdgeMs = (performance.now() - started) / sample.length;
  const patchAllMs = patchEdgeMs * edges;

  process.stdout.write(
    JSON.stringify({
      bench: 'circuit',
      model: o.model,
      device: model.info.device,
      dtype: model.info.dtype,
      cpu: os.cpus()[0]?.model,
      cores: os.availableParallelism(),
      seq_len: o.len,
      batch: o.batch,
      steps: o.steps,
      writers: graph.writers.length,
      readers: graph.readers.length,
      edges,
      eap_ig_ms: Math.round(eapIg.ms),
      eap_ig_runs_ms: runs.map((r) => Math.round(r.ms)),
      eap_ig_micro_batches: eapIg.microBatches,
      eap_ig_step_ms: Math.round(perStep),
      plain_forward_backward_ms: Math.round(plainMs),
      plain_runs_ms: plain.map(Math.round),
      step_vs_plain: Number((perStep / plainMs).toFixed(2)),
      step_goal: 8,
      patch_sample_edges: sample.length,
      patch_edge_ms: Math.round(patchEdgeMs),
      patch_all_edges_ms_extrapolated: Math.round(patchAllMs),
      patching_vs_eap_ig: Number((patchAllMs / eapIg.ms).toFixed(1)),
      metric_clean: eapIg.metricClean,
      metric_corrupted: eapIg.metricCorrupted,
      neuroprune: environment(),
    }) + '\n',
  );
  model.dispose();
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}
