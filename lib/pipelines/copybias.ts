/**
 * Ali, Wolf & Titov (2024), "Mitigating Copy Bias in In-Context Learning through Neuron Pruning":
 * 1. proxy prompts (vowel counting; the right answer is never an example label), split into an
 *    attribution part and a dev part;
 * 2. Integrated Gradients, copy objective, MLP neurons of every layer;
 * 3. per-prompt min-max normalisation, mean over prompts: a copying score per neuron;
 * 4. the top fraction (and optionally a layer range) chosen on the dev part by accuracy, copy-error
 *    rate breaking ties;
 * 5. prune, and evaluate the ICL suite before and after on the same prompts.
 */
import { AttributionResult } from '../attribution';
import { NeuropruneError } from '../errors';
import { Edit, Model } from '../model';
import { NeuronRef } from '../neurons';
import { buildPrompts, IclPrompt, scorePrediction, singleTokenPairs, vowelCountTask } from '../tasks';
import { CopyBiasConfig } from './copybias-config';
import { evaluate, EvalResult } from './evaluate';

export interface StageProgress {
  stage: 'attribution' | 'dev-search' | 'eval-before' | 'eval-after';
  done: number;
  total: number;
}

export interface DevPoint {
  fraction: number;
  layerRange: [number, number] | null;
  neurons: number;
  accuracy: number;
  copyErrorRate: number;
}

export interface CopyBiasResult {
  config: CopyBiasConfig;
  proxy: { task: string; source: string; pairs: number; attributionPrompts: number; devPrompts: number; shots: number; balanced: boolean; answers: Record<string, number> };
  attribution: AttributionResult;
  /** [layers, dMlp]: the mean over prompts of per-prompt min-max normalised scores. */
  copyScores: Float32Array;
  baselineDev: DevPoint;
  devSearch: DevPoint[];
  chosen: DevPoint;
  neurons: NeuronRef[];
  before: EvalResult;
  after: EvalResult;
  timings: Record<string, number>;
}

/** Per prompt, scores scaled to [0, 1] over every neuron; then the mean over prompts. */
export function copyScores(result: AttributionResult): Float32Array {
  const out = new Float32Array(result.layers.length * result.dMlp);
  for (const p of result.prompts) {
    let lo = Infinity, hi = -Infinity;
    for (const v of p.scores) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    const span = hi - lo || 1;
    p.scores.forEach((v, i) => (out[i] += (v - lo) / span / result.prompts.length));
  }
  return out;
}

/** The top `fraction` of the scored neurons (within a layer range), best first; at least one. */
export function selectNeurons(scores: Float32Array, layers: number[], dMlp: number, fraction: number, range: [number, number] | null): NeuronRef[] {
  const candidates: NeuronRef[] = [];
  layers.forEach((layer, r) => {
    if (range && (layer < range[0] || layer > range[1])) return;
    for (let i = 0; i < dMlp; i++) candidates.push({ layer, index: i, score: scores[r * dMlp + i] });
  });
  candidates.sort((a, b) => b.score! - a.score!);
  return candidates.slice(0, Math.max(1, Math.round(fraction * layers.length * dMlp)));
}

/** Accuracy and copy-error rate of greedy one-token answers on prompts. */
async function proxyScore(model: Model, prompts: IclPrompt[], signal?: AbortSignal): Promise<{ accuracy: number; copyErrorRate: number }> {
  let correct = 0, copies = 0;
  for (let start = 0; start < prompts.length; start += 32) {
    const batch = prompts.slice(start, start + 32);
    const out = await model.generate(batch.map((p) => p.text), { maxNewTokens: 1, signal });
    batch.forEach((p, i) => {
      const v = scorePrediction(out[i].text, p.expected, p.labels, 'exact');
      correct += Number(v.correct);
      copies += Number(v.copyError);
    });
  }
  return { accuracy: correct / prompts.length, copyErrorRate: copies / prompts.length };
}

/** Better = higher accuracy, then fewer copy errors, then fewer neurons. */
const better = (a: DevPoint, b: DevPoint) =>
  a.accuracy !== b.accuracy ? a.accuracy > b.accuracy : a.copyErrorRate !== b.copyErrorRate ? a.copyErrorRate < b.copyErrorRate : a.neurons < b.neurons;

export async function copyBias(
  model: Model,
  config: CopyBiasConfig,
  hooks: { onProgress?: (p: StageProgress) => void; signal?: AbortSignal } = {},
): Promise<CopyBiasResult> {
  const { signal } = hooks;
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await f();
    timings[name] = Math.round(performance.now() - t0);
    return out;
  };

  // 1. The proxy set.
  const task = vowelCountTask(model.tokenizer, model.info.vocabSize);
  const pairs = singleTokenPairs(task.pairs, model.tokenizer);
  const { shots, attributionPrompts, devPrompts, balanced } = config.proxy;
  const prompts = buildPrompts(task, pairs, shots, attributionPrompts + devPrompts, config.seed, undefined, { balanceAnswers: balanced });
  const attributionSet = prompts.slice(0, attributionPrompts);
  const devSet = prompts.slice(attributionPrompts);

  // 2. Integrated Gradients with the copy objective.
  const attribution = await time('attribution', () =>
    model.attribute({
      prompts: attributionSet.map((p) => ({ prompt: p.text, target: p.expected, labels: p.labels })),
      objective: 'copy',
      steps: config.attribution.steps,
      rule: config.attribution.rule as never,
      positions: config.attribution.positions as never,
      layers: config.attribution.layers ?? undefined,
      memoryBudgetMB: config.attribution.memoryBudgetMB,
      onProgress: (done, total) => hooks.onProgress?.({ stage: 'attribution', done, total }),
      signal,
    }),
  );

  // 3. One copying score per neuron.
  const scores = copyScores(attribution);

  // 4. Search fraction (and layer range) on the dev prompts; every candidate is undone before the next.
  const ranges: Array<[number, number] | null> = [null, ...(config.selection.layerRanges ?? [])];
  const total = ranges.length * config.selection.fractions.length;
  const devSearch: DevPoint[] = [];
  let edit: Edit | undefined;
  const baselineDev = await time('dev-search', async () => {
    const base: DevPoint = { fraction: 0, layerRange: null, neurons: 0, ...(await proxyScore(model, devSet, signal)) };
    try {
      for (const range of ranges) {
        for (const fraction of config.selection.fractions) {
          const chosen = selectNeurons(scores, attribution.layers, attribution.dMlp, fraction, range);
          edit = await model.prune(chosen, { full: config.selection.full });
          devSearch.push({ fraction, layerRange: range, neurons: chosen.length, ...(await proxyScore(model, devSet, signal)) });
          await model.restore(edit);
          edit = undefined;
          hooks.onProgress?.({ stage: 'dev-search', done: devSearch.length, total });
        }
      }
    } finally {
      if (edit) await model.restore(edit);
    }
    return base;
  });
  const chosen = devSearch.reduce((best, p) => (better(p, best) ? p : best));
  const neurons = selectNeurons(scores, attribution.layers, attribution.dMlp, chosen.fraction, chosen.layerRange);

  // 5. The ICL suite before and after pruning, on the same prompts.
  const evalOptions = {
    shots: config.evaluation.shots,
    n: config.evaluation.n,
    seed: config.seed,
    dataDir: config.evaluation.dataDir ?? undefined,
    batchSize: config.evaluation.batchSize,
    signal,
  };
  const before = await time('eval-before', () =>
    evaluate(model, config.evaluation.tasks, { ...evalOptions, onProgress: (done, n) => hooks.onProgress?.({ stage: 'eval-before', done, total: n }) }),
  );
  const pruned = await model.prune(neurons, { full: config.selection.full });
  let after: EvalResult;
  try {
    after = await time('eval-after', () =>
      evaluate(model, config.evaluation.tasks, { ...evalOptions, onProgress: (done, n) => hooks.onProgress?.({ stage: 'eval-after', done, total: n }) }),
    );
  } catch (error) {
    await model.restore(pruned);
    throw error;
  }
  if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'copybias cancelled');
  return {
    config,
    proxy: {
      task: task.name, source: task.source, pairs: pairs.length, attributionPrompts, devPrompts, shots, balanced,
      answers: prompts.reduce<Record<string, number>>((count, p) => ((count[p.expected] = (count[p.expected] ?? 0) + 1), count), {}),
    },
    attribution,
    copyScores: scores,
    baselineDev,
    devSearch,
    chosen,
    neurons,
    before,
    after,
    timings,
  };
}
