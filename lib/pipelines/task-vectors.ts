/**
 * Task vectors (Hendel, Geva & Globerson 2023, "In-Context Learning Creates Task Vectors"). The task
 * vector of a prompt at layer L is blocks.{L}.hook_resid_post at the last token of its
 * demonstrations followed by a dummy query (`example:{x'}->`, x' another input of the task).
 * Task-vector ICL runs the zero-shot query `example:{x}->` with hook_resid_post at its last token
 * replaced, at layer L, by that vector, and decodes greedily. Per task: zero-shot accuracy, k-shot
 * ICL accuracy, task-vector accuracy at every layer, and the layer chosen on dev prompts with its
 * test accuracy.
 */
import { NeuropruneError } from '../errors';
import { Model } from '../model';
import { buildPrompts, HENDEL_TEMPLATE, IclPrompt, loadTask, Pair, renderPrompt, resolveTaskNames, scorePrediction, singleTokenPairs, Task } from '../tasks';
import { Rng, subSeed } from '../tasks/random';
import { checkLayers } from '../validate';
import { TaskVectorsConfig } from './task-vectors-config';

export interface Score {
  accuracy: number;
  copyErrorRate: number;
  correct: number;
  n: number;
}

export interface LayerScore extends Score {
  layer: number;
  /**
   * Share of patched predictions equal to the dummy query's answer: the vector carried the dummy
   * query rather than (only) the task. High in small models, whose last token holds the query early.
   */
  dummyAnswerRate: number;
}

export interface TaskVectorTaskResult {
  task: string;
  kind: string;
  pairs: number;
  /** Pairs with a one-token answer (the ones prompts are built from). */
  usablePairs: number;
  /** The zero-shot query alone, unpatched (test split). */
  zeroShot: Score;
  /** Regular k-shot ICL (test split). */
  icl: Score;
  /** Task-vector ICL per patched layer, test split. */
  perLayer: LayerScore[];
  /** The same on the dev split, which chooses bestLayer. */
  devPerLayer: LayerScore[];
  /** The layer with the best dev accuracy (the earliest on ties). */
  bestLayer: number;
  /** Test accuracy at bestLayer. */
  bestLayerAccuracy: number;
}

export interface TaskVectorsResult {
  config: TaskVectorsConfig;
  layers: number[];
  tasks: TaskVectorTaskResult[];
  /** Means over the tasks that ran. */
  mean: {
    zeroShot: number;
    icl: number;
    perLayer: Array<{ layer: number; accuracy: number; copyErrorRate: number; dummyAnswerRate: number }>;
    /** Mean of each task's test accuracy at its own dev-chosen layer. */
    bestLayerAccuracy: number;
  };
  skipped: Array<{ task: string; reason: string }>;
  /** Milliseconds per task, and in all. */
  timings: { tasks: Record<string, number>; total: number };
}

export interface TaskVectorProgress {
  /** The task being run. */
  stage: string;
  /** Prompt evaluations done and in all (zero-shot, ICL, vectors, and one per patched layer). */
  done: number;
  total: number;
}

export interface TaskVectorHooks {
  onProgress?: (p: TaskVectorProgress) => void;
  signal?: AbortSignal;
}

/** One query of a split: its k-shot prompt, its zero-shot prompt, and the prompt its vector comes from. */
interface Item {
  prompt: IclPrompt;
  zeroShot: string;
  /** One dummy query per vector prompt; the task vector is the mean of their residuals. */
  dummies: Pair[];
  vectorPrompts: string[];
}

/** A pair of the task other than the query and, when there are enough, other than the demonstrations. */
function dummyQuery(prompt: IclPrompt, pairs: Pair[], rng: Rng): Pair {
  const shown = new Set([prompt.query.input, ...prompt.examples.map((e) => e.input)]);
  const fresh = pairs.filter((p) => !shown.has(p.input));
  return rng.pick(fresh.length > 0 ? fresh : pairs.filter((p) => p.input !== prompt.query.input));
}

/** `d` distinct dummy queries where the task has them (then repeats), none of them the query. */
function dummyQueries(prompt: IclPrompt, pairs: Pair[], rng: Rng, d: number): Pair[] {
  const shown = new Set([prompt.query.input, ...prompt.examples.map((e) => e.input)]);
  const fresh = pairs.filter((p) => !shown.has(p.input));
  const pool = rng.shuffle(fresh.length > 0 ? fresh : pairs.filter((p) => p.input !== prompt.query.input));
  return Array.from({ length: d }, (_, k) => pool[k % pool.length]);
}

function items(task: Task, pairs: Pair[], shots: number, n: number, seed: number, split: string, dummies: number): Item[] {
  return buildPrompts(task, pairs, shots, n, seed, HENDEL_TEMPLATE).map((prompt, i) => {
    const rng = new Rng(subSeed(seed, task.name, shots, i, split, 'dummy'));
    const chosen = dummies === 1 ? [dummyQuery(prompt, pairs, rng)] : dummyQueries(prompt, pairs, rng, dummies);
    return { prompt, zeroShot: renderPrompt([], prompt.query, HENDEL_TEMPLATE), dummies: chosen, vectorPrompts: chosen.map((d) => renderPrompt(prompt.examples, d, HENDEL_TEMPLATE)) };
  });
}

function score(verdicts: Array<{ correct: boolean; copyError: boolean }>): Score {
  const correct = verdicts.filter((v) => v.correct).length, copies = verdicts.filter((v) => v.copyError).length, n = verdicts.length;
  return { accuracy: n ? correct / n : 0, copyErrorRate: n ? copies / n : 0, correct, n };
}

export async function taskVectors(model: Model, config: TaskVectorsConfig, hooks: TaskVectorHooks = {}): Promise<TaskVectorsResult> {
  const { signal } = hooks;
  const started = performance.now();
  const layers = checkLayers(config.layers ?? Array.from({ length: model.info.nLayers }, (_, l) => l), model.info.nLayers, 'layers');
  const source = { dataDir: config.dataDir ?? undefined, seed: config.seed, tokenizer: model.tokenizer, vocabSize: model.info.vocabSize };
  const loaded = resolveTaskNames(config.tasks).map((name) => loadTask(name, source));
  // Dev prompts are separately seeded: other demonstrations, other query order.
  const devSeed = subSeed(config.seed, 'task-vectors-dev');
  const skipped: TaskVectorsResult['skipped'] = [];
  const plans: Array<{ task: Task; pairs: Pair[]; test: Item[]; dev: Item[] }> = [];
  for (const task of loaded) {
    const pairs = singleTokenPairs(task.pairs, model.tokenizer);
    const needed = config.shots + 2; // the query, k demonstrations, a dummy query
    if (pairs.length < needed) {
      skipped.push({ task: task.name, reason: `${pairs.length} of ${task.pairs.length} pairs have a one-token answer, ${needed} needed` });
      continue;
    }
    plans.push({ task, pairs, test: items(task, pairs, config.shots, config.n, config.seed, 'test', config.dummies), dev: items(task, pairs, config.shots, config.devN, devSeed, 'dev', config.dummies) });
  }
  const perQuery = 3 + layers.length; // zero-shot (test only), ICL (test only), vector, patched layers
  const total = plans.reduce((a, p) => a + p.test.length * perQuery + p.dev.length * (1 + layers.length), 0);
  let done = 0;
  const tick = (stage: string, k: number) => hooks.onProgress?.({ stage, done: (done += k), total });
  const check = (what: string) => {
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', `task vectors cancelled ${what}`);
  };
  const answer = (text: string) => text.split(HENDEL_TEMPLATE.separator)[0];
  const generate = (prompts: string[]) => model.generate(prompts, { maxNewTokens: 1, signal });

  /** Task-vector ICL of a split at every layer: verdicts per layer. */
  const patched = async (task: Task, split: Item[], what: string) => {
    const out = layers.map(() => [] as Array<{ correct: boolean; copyError: boolean; dummy: boolean }>);
    for (let start = 0; start < split.length; start += config.batchSize) {
      check(`(${task.name}, ${what} prompt ${start} of ${split.length})`);
      const batch = split.slice(start, start + config.batchSize);
      const res = await model.residuals(batch.flatMap((b) => b.vectorPrompts), { layers });
      tick(task.name, batch.length);
      const d = config.dummies, width = model.info.dModel;
      for (const [j, layer] of layers.entries()) {
        check(`(${task.name}, ${what}, layer ${layer})`);
        // Each item's vector: the mean over its dummy queries' residuals.
        const all = res.layers.get(layer)!, vectors = new Float32Array(batch.length * width);
        for (let i = 0; i < batch.length; i++) for (let k = 0; k < d; k++) for (let c = 0; c < width; c++) vectors[i * width + c] += all[(i * d + k) * width + c] / d;
        const gens = await model.generatePatched(batch.map((b) => b.zeroShot), { layer, vectors, maxNewTokens: 1, signal });
        gens.forEach((g, i) => {
          const prediction = answer(g.text);
          const dummy = prediction.trim().length > 0 && batch[i].dummies.some((x) => prediction.trim() === x.output.trim());
          out[j].push({ ...scorePrediction(prediction, batch[i].prompt.expected, batch[i].prompt.labels, task.scoring), dummy });
        });
        tick(task.name, batch.length);
      }
    }
    return layers.map((layer, j) => ({ layer, ...score(out[j]), dummyAnswerRate: out[j].length ? out[j].filter((v) => v.dummy).length / out[j].length : 0 }));
  };

  const results: TaskVectorTaskResult[] = [];
  const timings: Record<string, number> = {};
  for (const { task, pairs, test, dev } of plans) {
    const t0 = performance.now();
    const zero: Array<{ correct: boolean; copyError: boolean }> = [], icl: typeof zero = [];
    for (let start = 0; start < test.length; start += config.batchSize) {
      check(`(${task.name}, baseline prompt ${start} of ${test.length})`);
      const batch = test.slice(start, start + config.batchSize);
      const z = await generate(batch.map((b) => b.zeroShot));
      z.forEach((g, i) => zero.push(scorePrediction(answer(g.text), batch[i].prompt.expected, [], task.scoring)));
      tick(task.name, batch.length);
      const k = await generate(batch.map((b) => b.prompt.text));
      k.forEach((g, i) => icl.push(scorePrediction(answer(g.text), batch[i].prompt.expected, batch[i].prompt.labels, task.scoring)));
      tick(task.name, batch.length);
    }
    const devPerLayer = await patched(task, dev, 'dev');
    const perLayer = await patched(task, test, 'test');
    const best = devPerLayer.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    results.push({
      task: task.name,
      kind: task.kind,
      pairs: task.pairs.length,
      usablePairs: pairs.length,
      zeroShot: score(zero),
      icl: score(icl),
      perLayer,
      devPerLayer,
      bestLayer: best.layer,
      bestLayerAccuracy: perLayer.find((p) => p.layer === best.layer)!.accuracy,
    });
    timings[task.name] = Math.round(performance.now() - t0);
  }
  const avg = (f: (r: TaskVectorTaskResult) => number) => (results.length ? results.reduce((a, r) => a + f(r), 0) / results.length : 0);
  return {
    config,
    layers,
    tasks: results,
    mean: {
      zeroShot: avg((r) => r.zeroShot.accuracy),
      icl: avg((r) => r.icl.accuracy),
      perLayer: layers.map((layer, j) => ({
        layer,
        accuracy: avg((r) => r.perLayer[j].accuracy),
        copyErrorRate: avg((r) => r.perLayer[j].copyErrorRate),
        dummyAnswerRate: avg((r) => r.perLayer[j].dummyAnswerRate),
      })),
      bestLayerAccuracy: avg((r) => r.bestLayerAccuracy),
    },
    skipped,
    timings: { tasks: timings, total: Math.round(performance.now() - started) },
  };
}

/** A plain-text table: per task zero-shot, ICL, task-vector accuracy per layer, and the dev-chosen layer. */
export function formatTaskVectorTable(r: TaskVectorsResult): string {
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  const names = [...r.tasks.map((t) => t.task), 'mean'];
  const width = Math.max(...names.map((t) => t.length), 4);
  const header = ['task'.padEnd(width), 'zero'.padStart(5), 'icl'.padStart(5), ...r.layers.map((l) => `L${l}`.padStart(5)), '  best (test acc)'].join(' ');
  const rows = r.tasks.map((t) =>
    [t.task.padEnd(width), pct(t.zeroShot.accuracy).padStart(5), pct(t.icl.accuracy).padStart(5), ...t.perLayer.map((p) => pct(p.accuracy).padStart(5)), `  L${t.bestLayer} (${pct(t.bestLayerAccuracy)})`].join(' '),
  );
  const mean = ['mean'.padEnd(width), pct(r.mean.zeroShot).padStart(5), pct(r.mean.icl).padStart(5), ...r.mean.perLayer.map((p) => pct(p.accuracy).padStart(5)), `  (${pct(r.mean.bestLayerAccuracy)})`].join(' ');
  const dummy = ['(= dummy)'.padEnd(width), ''.padStart(5), ''.padStart(5), ...r.mean.perLayer.map((p) => pct(p.dummyAnswerRate).padStart(5))].join(' ');
  return [header, ...rows, ...(r.tasks.length ? [mean, dummy] : []), ...r.skipped.map((s) => `skipped ${s.task}: ${s.reason}`)].join('\n');
}
