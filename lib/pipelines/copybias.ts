/**
 * Ali, Wolf & Titov (2024), "Mitigating Copy Bias in In-Context Learning through Neuron Pruning":
 * 1. proxy prompts (vowel counting; the right answer is never an example label) from a balanced word
 *    list, split into an attribution part and a dev part with disjoint words;
 * 2. Integrated Gradients, copy objective, MLP neurons of every layer;
 * 3. per-prompt min-max normalisation, mean over prompts: a copying score per neuron;
 * 4. the top fraction (and optionally a layer range) chosen on the dev part by accuracy, copy-error
 *    rate breaking ties, among the fractions that pass the guard rails: dev accuracy above the best
 *    constant answer's and a dev copy-error rate below the unpruned model's (a fraction that only
 *    shifts the answer prior passes neither); none passing means nothing is pruned;
 * 5. prune, and evaluate the ICL suite before and after on the same prompts, beside a control: the
 *    same per-layer numbers of random neurons, several seeded draws; every change with a paired
 *    bootstrap 95% interval.
 * The model is left as it was found (every edit is restored); prune `result.neurons` to keep the edit.
 */
import { AttributionPrompt, AttributionResult, attributeDefaults } from '../attribution';
import { chunkCount, Shard, shardChunks } from '../shards';
import { attributeChunkRecord, attributeInChunks, promptsDigest } from './attribute-chunks';
import { ChunkStore } from './chunk-store';
import { ChunkRun, finishShard, runChunks, shardManifest } from './shard-run';
import { NeuropruneError } from '../errors';
import { Edit, Model } from '../model';
import { NeuronRef } from '../neurons';
import { Interval, pairedBootstrap } from '../stats';
import { buildPrompts, IclPrompt, PROXY_TASK, resolveTaskNames, scorePrediction, singleTokenPairs, splitProxyPairs, vowelCountTask } from '../tasks';
import { Rng, subSeed } from '../tasks/random';
import { CopyBiasConfig } from './copybias-config';
import { evaluate, EvalRecord, EvalResult } from './evaluate';
import { taskVectors, TaskVectorsResult } from './task-vectors';
import { parseTaskVectorsConfig } from './task-vectors-config';

export interface StageProgress {
  stage: 'attribution' | 'dev-search' | 'eval-before' | 'eval-after' | 'control' | 'task-vectors';
  done: number;
  total: number;
}

export interface DevPoint {
  fraction: number;
  layerRange: [number, number] | null;
  neurons: number;
  accuracy: number;
  copyErrorRate: number;
  /** Greedy answers on the dev prompts: answer -> count. */
  predictions: Record<string, number>;
  /** Passed the guard rails (the unpruned baseline is not a candidate). */
  accepted: boolean;
  /** Why not, in words. */
  rejected?: string;
}

/** One before/after comparison on the same prompts: per task and shot count, and the headline mean. */
export interface Changes {
  scores: Array<{ task: string; shots: number; accuracy: Interval; copyErrorRate: Interval }>;
  /** Mean over the headline tasks (the proxy task excluded), per shot count. */
  mean: Array<{ shots: number; accuracy: Interval; copyErrorRate: Interval }>;
}

export interface ControlDraw {
  seed: number;
  neurons: NeuronRef[];
  after: EvalResult;
  changes: Changes;
}

/** Whether the pruned model's headline change lies outside the random draws' range. */
export interface Verdict {
  shots: number;
  metric: 'accuracy' | 'copyErrorRate';
  delta: number;
  interval: [number, number];
  controlRange: [number, number] | null;
  outsideControl: boolean | null;
  /** An improvement whose interval excludes 0 and that lies beyond every random draw on the better side. */
  gain: boolean;
  text: string;
}

export interface CopyBiasResult {
  config: CopyBiasConfig;
  proxy: {
    task: string; source: string; pairs: number; counts: number[]; wordsPerCount: number; dropped: Record<string, number>;
    attributionWords: number; devWords: number; attributionPrompts: number; devPrompts: number; shots: number; balanced: boolean;
    answers: { attribution: Record<string, number>; dev: Record<string, number> };
  };
  attribution: AttributionResult;
  /** [layers, dMlp]: the mean over prompts of per-prompt min-max normalised scores. */
  copyScores: Float32Array;
  baselineDev: DevPoint;
  /** The dev accuracy of always giving the most frequent dev answer. */
  constantBaseline: { answer: string; accuracy: number };
  devSearch: DevPoint[];
  /** The fraction chosen; null when none passed the guard rails (then nothing is pruned). */
  chosen: DevPoint | null;
  neurons: NeuronRef[];
  before: EvalResult;
  after: EvalResult;
  changes: Changes;
  control: ControlDraw[];
  verdicts: Verdict[];
  /** Task-vector ICL per layer before and after pruning (with `taskVectors.enabled`). */
  taskVectors?: { before: TaskVectorsResult; after: TaskVectorsResult };
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

/** Accuracy, copy-error rate and answer histogram of greedy one-token answers on prompts. */
async function proxyScore(model: Model, prompts: IclPrompt[], signal?: AbortSignal) {
  let correct = 0, copies = 0;
  const predictions: Record<string, number> = {};
  for (let start = 0; start < prompts.length; start += 32) {
    const batch = prompts.slice(start, start + 32);
    const out = await model.generate(batch.map((p) => p.text), { maxNewTokens: 1, signal });
    batch.forEach((p, i) => {
      const v = scorePrediction(out[i].text, p.expected, p.labels, 'exact');
      correct += Number(v.correct);
      copies += Number(v.copyError);
      const answer = out[i].text.trim();
      predictions[answer] = (predictions[answer] ?? 0) + 1;
    });
  }
  return { accuracy: correct / prompts.length, copyErrorRate: copies / prompts.length, predictions };
}

/** The guard rails: beat the best constant answer on dev accuracy, and copy less than the unpruned model. */
export function guardRails(point: { accuracy: number; copyErrorRate: number }, base: { copyErrorRate: number }, constant: { answer: string; accuracy: number }): string | undefined {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const reasons: string[] = [];
  if (!(point.accuracy > constant.accuracy)) reasons.push(`dev accuracy ${pct(point.accuracy)} does not beat always answering "${constant.answer}" (${pct(constant.accuracy)})`);
  if (!(point.copyErrorRate < base.copyErrorRate)) reasons.push(`dev copy errors ${pct(point.copyErrorRate)} do not fall below the unpruned ${pct(base.copyErrorRate)}`);
  return reasons.length ? reasons.join('; ') : undefined;
}

/** Better = higher accuracy, then fewer copy errors, then fewer neurons. */
const better = (a: DevPoint, b: DevPoint) =>
  a.accuracy !== b.accuracy ? a.accuracy > b.accuracy : a.copyErrorRate !== b.copyErrorRate ? a.copyErrorRate < b.copyErrorRate : a.neurons < b.neurons;

/** Random neurons with the same number per layer as `like`, distinct, from a seeded generator. */
export function randomNeuronsLike(like: NeuronRef[], dMlp: number, seed: number): NeuronRef[] {
  const rng = new Rng(seed);
  const perLayer = new Map<number, number>();
  for (const n of like) perLayer.set(n.layer, (perLayer.get(n.layer) ?? 0) + 1);
  return [...perLayer].sort(([a], [b]) => a - b).flatMap(([layer, count]) => {
    const picked = new Set<number>();
    while (picked.size < count) picked.add(rng.int(dMlp));
    return [...picked].sort((a, b) => a - b).map((index) => ({ layer, index }));
  });
}

/** Paired bootstrap intervals of every change from `before` to `after` (same prompts, records kept). */
export function compareEvaluations(before: EvalResult, after: EvalResult, options: { resamples: number; seed: number }): Changes {
  const records = (e: EvalResult) => {
    if (!e.records) throw new NeuropruneError('E_ARG', 'compareEvaluations needs evaluations run with keepRecords');
    return e.records;
  };
  const group = (rs: EvalRecord[]) => {
    const m = new Map<string, EvalRecord[]>();
    for (const r of rs) m.set(`${r.task}\u0000${r.shots}`, [...(m.get(`${r.task}\u0000${r.shots}`) ?? []), r]);
    return m;
  };
  const b = group(records(before)), a = group(records(after));
  const sample = (key: string, metric: 'correct' | 'copyError') => ({
    before: b.get(key)!.map((r) => Number(r[metric])),
    after: a.get(key)!.map((r) => Number(r[metric])),
  });
  const boot = (strata: ReturnType<typeof sample>[], what: string) => pairedBootstrap(strata, { resamples: options.resamples, seed: subSeed(options.seed, what) });
  const scores = before.scores.map((s) => {
    const key = `${s.task}\u0000${s.shots}`;
    return { task: s.task, shots: s.shots, accuracy: boot([sample(key, 'correct')], `${key}acc`), copyErrorRate: boot([sample(key, 'copyError')], `${key}copy`) };
  });
  const excluded = before.excludedFromMean ?? [];
  const mean = before.mean.filter((m) => m.tasks > 0).map((m) => {
    const keys = before.scores.filter((s) => s.shots === m.shots && !excluded.includes(s.task)).map((s) => `${s.task}\u0000${s.shots}`);
    return {
      shots: m.shots,
      accuracy: boot(keys.map((k) => sample(k, 'correct')), `mean${m.shots}acc`),
      copyErrorRate: boot(keys.map((k) => sample(k, 'copyError')), `mean${m.shots}copy`),
    };
  });
  return { scores, mean };
}

/** Per shot count and metric, the pruned model's headline change against the random draws', in words. */
export function verdicts(changes: Changes, control: ControlDraw[]): Verdict[] {
  const pts = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
  return changes.mean.flatMap((m) =>
    (['accuracy', 'copyErrorRate'] as const).map((metric) => {
      const iv = m[metric];
      const draws = control.map((c) => c.changes.mean.find((x) => x.shots === m.shots)![metric].delta);
      const range: [number, number] | null = draws.length ? [Math.min(...draws), Math.max(...draws)] : null;
      const outside = range ? iv.delta < range[0] || iv.delta > range[1] : null;
      const name = metric === 'accuracy' ? 'accuracy' : 'copy-error rate';
      const good = metric === 'accuracy' ? iv.delta > 0 : iv.delta < 0;
      const significant = iv.low > 0 || iv.high < 0;
      const kind = !significant ? 'not distinguishable from no change' : good ? 'an improvement (the interval excludes 0)' : 'a deterioration (the interval excludes 0)';
      const beyond = range && (metric === 'accuracy' ? iv.delta > range[1] : iv.delta < range[0]);
      const where = !range
        ? 'no random control was run'
        : `${outside ? 'outside' : 'within'} the range of ${draws.length} random draws of the same size (${pts(range[0])} to ${pts(range[1])} points)` +
          (outside ? (beyond ? ', on the better side' : ', on the worse side') : '');
      const text = `${m.shots}-shot ${name}: ${pts(iv.delta)} points (95% CI ${pts(iv.low)} to ${pts(iv.high)}), ${kind}; ${where}.`;
      const gain = significant && good && Boolean(beyond);
      return { shots: m.shots, metric, delta: iv.delta, interval: [iv.low, iv.high] as [number, number], controlRange: range, outsideControl: outside, gain, text };
    }),
  );
}

/** The proxy prompts: balanced vowel counts, split into attribution and dev parts with disjoint words. */
function proxySets(model: Model, config: CopyBiasConfig) {
  const task = vowelCountTask(model.tokenizer, model.info.vocabSize);
  const pairs = singleTokenPairs(task.pairs, model.tokenizer);
  const split = splitProxyPairs(pairs, config.seed);
  const { shots, attributionPrompts, devPrompts, balanced } = config.proxy;
  const part = (name: string, ps: typeof pairs, n: number) =>
    buildPrompts({ ...task, name: `${task.name}/${name}` }, ps, shots, n, config.seed, undefined, { balanceAnswers: balanced });
  const histogram = (ps: IclPrompt[]) => ps.reduce<Record<string, number>>((count, p) => ((count[p.expected.trim()] = (count[p.expected.trim()] ?? 0) + 1), count), {});
  return { task, pairs, split, attributionSet: part('attribution', split.attribution, attributionPrompts), devSet: part('dev', split.dev, devPrompts), histogram };
}

const toAttributionPrompts = (set: IclPrompt[]): AttributionPrompt[] => set.map((p) => ({ prompt: p.text, target: p.expected, labels: p.labels }));

function attributionOptions(config: CopyBiasConfig) {
  return {
    objective: 'copy' as const,
    steps: config.attribution.steps,
    rule: config.attribution.rule as never,
    positions: config.attribution.positions as never,
    layers: config.attribution.layers ?? undefined,
    memoryBudgetMB: config.attribution.memoryBudgetMB,
  };
}

/**
 * Shard i of N of the attribution stage: chunks k with k % N == i of the proxy attribution prompts,
 * written into `dir` (DIR/shards/<i>-of-<N>) with a manifest holding the config, device and dtype;
 * `merge` runs the rest of the pipeline (dev search, pruning, evaluation) from every shard's chunks.
 */
export async function copyBiasShard(
  model: Model,
  config: CopyBiasConfig,
  shard: Shard,
  dir: string,
  run: { model: string; device: string; dtype: string; saveModel: boolean },
  hooks: { onProgress?: (p: StageProgress) => void; signal?: AbortSignal; resume?: boolean } = {},
): Promise<{ run: ChunkRun; keys: number[] }> {
  const prompts = toAttributionPrompts(proxySets(model, config).attributionSet);
  const options = attributeDefaults({ ...attributionOptions(config), prompts }, model.info.nLayers, model.info.neuronSite);
  const chunkSize = config.attribution.chunkSize;
  const total = chunkCount(prompts.length, chunkSize);
  const settings = { nParams: model.info.nParams, dtype: model.info.dtype, prompts: promptsDigest(prompts), options };
  const store = ChunkStore.open(dir, shardManifest('copybias', { ...run, settings, config }, { size: chunkSize, total }, shard), hooks.resume ?? false);
  const keys = shardChunks(total, shard);
  const chunks = await runChunks(store, keys, async (k) => {
    const rec = await attributeChunkRecord(model, prompts, options, k, chunkSize, hooks.signal);
    store.putRecord(k, rec.meta, rec.values);
  }, { signal: hooks.signal, what: 'copybias attribution', onProgress: (done, n) => hooks.onProgress?.({ stage: 'attribution', done, total: n }) });
  finishShard(store, shard, keys, chunks);
  return { run: chunks, keys };
}

export async function copyBias(
  model: Model,
  config: CopyBiasConfig,
  hooks: { onProgress?: (p: StageProgress) => void; signal?: AbortSignal; shardStores?: ChunkStore[] } = {},
): Promise<CopyBiasResult> {
  const { signal } = hooks;
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await f();
    timings[name] = Math.round(performance.now() - t0);
    return out;
  };

  // 1. The proxy set: balanced vowel counts, attribution and dev words disjoint.
  const { task, pairs, split, attributionSet, devSet, histogram } = proxySets(model, config);
  const { shots, attributionPrompts, devPrompts, balanced } = config.proxy;
  const devAnswers = histogram(devSet);
  const [constantAnswer, constantCount] = Object.entries(devAnswers).sort(([a, x], [b, y]) => y - x || a.localeCompare(b))[0];
  const constantBaseline = { answer: constantAnswer, accuracy: constantCount / devSet.length };

  // 2. Integrated Gradients with the copy objective, chunk by chunk (chunks a sharded run's shards made are read).
  const attribution = await time('attribution', () =>
    attributeInChunks(model, toAttributionPrompts(attributionSet), attributionOptions(config), config.attribution.chunkSize, {
      shardStores: hooks.shardStores, signal, onProgress: (done, total) => hooks.onProgress?.({ stage: 'attribution', done, total }),
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
    const base: DevPoint = { fraction: 0, layerRange: null, neurons: 0, ...(await proxyScore(model, devSet, signal)), accepted: false, rejected: 'the unpruned model' };
    try {
      for (const range of ranges) {
        for (const fraction of config.selection.fractions) {
          const chosen = selectNeurons(scores, attribution.layers, attribution.dMlp, fraction, range);
          edit = await model.prune(chosen, { full: config.selection.full });
          const score = await proxyScore(model, devSet, signal);
          const rejected = guardRails(score, base, constantBaseline);
          devSearch.push({ fraction, layerRange: range, neurons: chosen.length, ...score, accepted: !rejected, ...(rejected ? { rejected } : {}) });
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
  const accepted = devSearch.filter((p) => p.accepted);
  const chosen = accepted.length ? accepted.reduce((best, p) => (better(p, best) ? p : best)) : null;
  const neurons = chosen ? selectNeurons(scores, attribution.layers, attribution.dMlp, chosen.fraction, chosen.layerRange) : [];

  // 5. The ICL suite before and after pruning, and after pruning random neurons, on the same prompts.
  const evalOptions = {
    shots: config.evaluation.shots,
    n: config.evaluation.n,
    seed: config.seed,
    dataDir: config.evaluation.dataDir ?? undefined,
    labelWords: config.evaluation.labelWords,
    singleToken: !config.evaluation.allAnswers,
    batchSize: config.evaluation.batchSize,
    keepRecords: true,
    signal,
  };
  const evaluateWith = async (stage: StageProgress['stage'], prune: NeuronRef[]) => {
    const onProgress = (done: number, n: number) => hooks.onProgress?.({ stage, done, total: n });
    if (prune.length === 0) return evaluate(model, config.evaluation.tasks, { ...evalOptions, onProgress });
    const pruned = await model.prune(prune, { full: config.selection.full });
    try {
      return await evaluate(model, config.evaluation.tasks, { ...evalOptions, onProgress });
    } finally {
      await model.restore(pruned);
    }
  };
  const before = await time('eval-before', () => evaluateWith('eval-before', []));
  const after = chosen ? await time('eval-after', () => evaluateWith('eval-after', neurons)) : before;
  const stats = { resamples: config.control.resamples, seed: config.seed };
  const changes = compareEvaluations(before, after, stats);
  const control: ControlDraw[] = [];
  if (chosen) {
    await time('control', async () => {
      for (let d = 0; d < config.control.draws; d++) {
        const seed = subSeed(config.seed, 'control', d);
        const random = randomNeuronsLike(neurons, attribution.dMlp, seed);
        const afterRandom = await evaluateWith('control', random);
        control.push({ seed, neurons: random, after: afterRandom, changes: compareEvaluations(before, afterRandom, stats) });
      }
    });
  }
  let vectors: CopyBiasResult['taskVectors'];
  if (config.taskVectors.enabled) {
    const { enabled, ...tv } = config.taskVectors;
    void enabled;
    const tasks = resolveTaskNames(config.evaluation.tasks).filter((t) => t !== PROXY_TASK && !t.endsWith('.jsonl'));
    if (tasks.length === 0) throw new NeuropruneError('E_CONFIG', 'taskVectors: the evaluation tasks hold no ICL task besides the proxy and classification files');
    const tvConfig = parseTaskVectorsConfig({ ...tv, tasks, seed: config.seed, dataDir: config.evaluation.dataDir, batchSize: config.evaluation.batchSize }, 'taskVectors');
    const run = () => taskVectors(model, tvConfig, { signal, onProgress: (p) => hooks.onProgress?.({ stage: 'task-vectors', done: p.done, total: p.total }) });
    vectors = await time('task-vectors', async () => {
      const before = await run();
      if (!chosen) return { before, after: before };
      const pruned = await model.prune(neurons, { full: config.selection.full });
      try {
        return { before, after: await run() };
      } finally {
        await model.restore(pruned);
      }
    });
  }
  if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'copybias cancelled');
  return {
    config,
    proxy: {
      task: task.name, source: task.source, pairs: pairs.length, counts: split.counts, wordsPerCount: split.wordsPerCount, dropped: split.dropped,
      attributionWords: split.attribution.length, devWords: split.dev.length, attributionPrompts, devPrompts, shots, balanced,
      answers: { attribution: histogram(attributionSet), dev: devAnswers },
    },
    attribution,
    copyScores: scores,
    baselineDev,
    constantBaseline,
    devSearch,
    chosen,
    neurons,
    before,
    after,
    changes,
    control,
    verdicts: chosen ? verdicts(changes, control) : [],
    taskVectors: vectors,
    timings,
  };
}
