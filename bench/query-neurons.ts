/**
 * One QRNCA query's attribution, fast path against the per-layer reference loop the paper's code runs
 * (for each layer: the whole model over the whole prompt, the m steps batched, one backward):
 *   npm run bench -- query-neurons [--model random:gpt2-small] [--data FILE] [--query N] [--steps 16]
 *                                  [--tokenizer DIR] [--device cpu] [--dtype float32] [--reference-layers all|N]
 * Three templates of one query from the qrneuron data, IG of p(gold letter) at the last position at
 * mlp.hook_pre, every layer. Prompt lengths: the model's tokenizer when it is a real one (--tokenizer
 * DIR or the model folder's); a random: model's byte-level tokenizer would make them about four times
 * too long, so there each template is as many tokens as GPT-2's BPE gives English on average (one per
 * four characters), and the JSON says so. --reference-layers N times the reference on the first N
 * layers only and reports the per-layer mean times the layer count beside the measured time (on a
 * small CPU the full reference takes many minutes); the score comparison then covers those layers.
 * Prints one JSON object.
 */
import { Command } from 'commander';
import os from 'node:os';
import path from 'node:path';
import { environment, Model, readMcqa, TextTokenizer } from '../lib';
import { packageRoot } from '../lib/native';

export async function runQueryNeuronsBench(argv: string[]): Promise<void> {
  const o = new Command('query-neurons')
    .option('--model <id>', 'model', 'random:gpt2-small')
    .option('--data <file>', 'qrneuron MCQA file', path.join(packageRoot(), '..', 'shared', 'data', 'qrneuron', 'subject_qa.json'))
    .option('--query <n>', 'which query of the file', (v) => parseInt(v, 10), 0)
    .option('--steps <n>', 'Riemann steps m', (v) => parseInt(v, 10), 16)
    .option('--tokenizer <dir>', 'a folder with the tokenizer.json whose lengths to use')
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--dtype <dtype>', 'float32 or bfloat16', 'float32')
    .option('--reference-layers <n>', 'time the reference on all layers (default) or the first N', 'all')
    .parse(argv, { from: 'user' })
    .opts();
  const model = await Model.load(o.model, { device: o.device, dtype: o.dtype, seed: 0 });
  const query = readMcqa(o.data)[o.query];
  const real = o.tokenizer ? await TextTokenizer.fromDir(o.tokenizer) : model.info.dir ? model.tokenizer : undefined;
  const vocab = Math.min(model.info.vocabSize, 256);
  // Ids for a random model: any ids do; only the lengths matter for time, and equality is checked on them.
  const prompts = query.templates.map((tpl, k) => {
    const ids = real ? real.encode(tpl.prompt) : Array.from({ length: Math.ceil(tpl.prompt.length / 4) }, (_, i) => (i * 7919 + 13 + k) % vocab);
    return { prompt: ids.map((id) => id % model.info.vocabSize), target: [(65 + k) % vocab] };
  });
  const lengths = prompts.map((p) => p.prompt.length);
  const all = Array.from({ length: model.info.nLayers }, (_, l) => l);
  const refLayers = o.referenceLayers === 'all' ? all : all.slice(0, Number(o.referenceLayers));
  const options = { prompts, objective: 'prob' as const, steps: o.steps, rule: 'riemann_right' as const, positions: 'last' as const, site: 'mlp.hook_pre' as const };
  await model.attribute({ ...options, steps: 1, layers: [model.info.nLayers - 1] }); // warm-up
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await model.attribute({ ...options, layers: all, method: 'fast' }));
  const fast = [...runs].sort((a, b) => a.ms - b.ms)[1];
  const reference = await model.attribute({ ...options, layers: refLayers, method: 'reference' });
  // Compare on the layers both computed.
  const N = model.info.dMlp;
  let diff = 0, scale = 0;
  fast.prompts.forEach((p, b) =>
    refLayers.forEach((l, r) => {
      for (let i = 0; i < N; i++) {
        const f = p.scores[l * N + i], x = reference.prompts[b].scores[r * N + i];
        diff = Math.max(diff, Math.abs(f - x));
        scale = Math.max(scale, Math.abs(x));
      }
    }),
  );
  const referenceAllMs = (reference.ms / refLayers.length) * all.length;
  process.stdout.write(
    JSON.stringify({
      bench: 'query-neurons',
      model: o.model,
      device: model.info.device,
      dtype: model.info.dtype,
      cpu: os.cpus()[0]?.model,
      cores: os.availableParallelism(),
      query: query.id,
      domain: query.domain,
      templates: prompts.length,
      prompt_lens: lengths,
      length_source: real ? 'tokenizer' : 'GPT-2 BPE estimate: one token per four characters of the template',
      steps: o.steps,
      rule: options.rule,
      site: options.site,
      objective: 'prob of the gold letter, last position',
      layers: all.length,
      neurons_per_layer: N,
      fast_ms: Math.round(fast.ms),
      fast_runs_ms: runs.map((r) => Math.round(r.ms)),
      fast_micro_batches: fast.microBatches,
      reference_layers_timed: refLayers.length,
      reference_ms: Math.round(reference.ms),
      reference_all_layers_ms: Math.round(referenceAllMs),
      reference_all_layers_measured: refLayers.length === all.length,
      speedup: Number((referenceAllMs / fast.ms).toFixed(1)),
      max_rel_diff: Number((diff / scale).toExponential(2)),
      neuroprune: environment(),
    }) + '\n',
  );
  model.dispose();
}
