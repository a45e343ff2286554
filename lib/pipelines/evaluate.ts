/**
 * Few-shot ICL evaluation: k shots, n prompts per task, greedy prediction of the answer, accuracy
 * and copy-error rate (a wrong answer equal to one of the prompt's example labels) per task and the
 * mean over tasks (the headline; the copy-bias proxy task is left out of it and shown on its own).
 * With one-token answers (Hendel's filter, the default) knowledge tasks accept a prefix match; with
 * whole answers (`singleToken: false`) every task is an exact match of the whole generated answer,
 * and a copy error is a whole-answer copy of an example label.
 */
import { NeuropruneError } from '../errors';
import { Model } from '../model';
import { buildPrompts, IclPrompt, loadTask, PromptTemplate, HENDEL_TEMPLATE, resolveTaskNames, scorePrediction, singleTokenPairs, Task, TaskSource } from '../tasks';

export interface EvaluateOptions extends Omit<TaskSource, 'tokenizer' | 'vocabSize'> {
  shots?: number[];
  /** Prompts per task and shot count. */
  n?: number;
  seed?: number;
  template?: PromptTemplate;
  /** Keep only pairs whose answer is one token (Hendel's filter; default true). */
  singleToken?: boolean;
  /** Prompts per forward pass. */
  batchSize?: number;
  /** Keep every prompt and prediction in the result. */
  keepRecords?: boolean;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface TaskScore {
  task: string;
  kind: string;
  shots: number;
  n: number;
  correct: number;
  copyErrors: number;
  accuracy: number;
  copyErrorRate: number;
}

export interface EvalRecord {
  task: string;
  shots: number;
  prompt: string;
  expected: string;
  labels: string[];
  prediction: string;
  correct: boolean;
  copyError: boolean;
}

export interface EvalResult {
  scores: TaskScore[];
  /** Mean over tasks per shot count; proxy tasks are left out unless nothing else was evaluated. */
  mean: Array<{ shots: number; accuracy: number; copyErrorRate: number; tasks: number }>;
  /** Tasks evaluated but left out of `mean` (the copy-bias proxy task). */
  excludedFromMean: string[];
  /** Tasks left out, and why (e.g. no pair has a one-token answer for this tokenizer). */
  skipped: Array<{ task: string; reason: string }>;
  tasks: Array<{ name: string; kind: string; pairs: number; usablePairs: number; source: string }>;
  options: { shots: number[]; n: number; seed: number; singleToken: boolean; batchSize: number; template: PromptTemplate };
  records?: EvalRecord[];
  ms: number;
}

/** Every prompt of an evaluation, in order, and what the summary needs besides the records. */
export interface EvalPlan {
  work: Array<{ task: Task; prompt: IclPrompt; answerTokens: number }>;
  /** The tasks loaded, in order (name and kind: what the scores are grouped by). */
  loaded: Array<{ name: string; kind: string }>;
  skipped: EvalResult['skipped'];
  tasks: EvalResult['tasks'];
  options: EvalResult['options'];
}

/** Loads the tasks and builds every prompt (seeded), without running the model. */
export function planEvaluation(model: Model, tasks: Array<string | Task>, options: EvaluateOptions = {}): EvalPlan {
  const { shots = [0, 1, 2, 4], n = 100, seed = 0, template = HENDEL_TEMPLATE, singleToken = true, batchSize = 32 } = options;
  if (!Number.isInteger(n) || n < 1) throw new NeuropruneError('E_ARG', `n must be a positive integer, got ${n}`);
  if (shots.length === 0 || shots.some((k) => !Number.isInteger(k) || k < 0)) throw new NeuropruneError('E_ARG', `shots must be non-negative integers, got ${shots.join(',')}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new NeuropruneError('E_ARG', `batchSize must be a positive integer, got ${batchSize}`);
  const source = { ...options, seed, tokenizer: model.tokenizer, vocabSize: model.info.vocabSize };
  const loaded = tasks.flatMap((t) => (typeof t === 'string' ? resolveTaskNames([t]).map((name) => loadTask(name, source)) : [t]));

  // Every prompt first, so progress knows the total and batches can mix tasks.
  const skipped: EvalResult['skipped'] = [];
  const taskInfo: EvalResult['tasks'] = [];
  const work: EvalPlan['work'] = [];
  for (const task of loaded) {
    const pairs = singleToken ? singleTokenPairs(task.pairs, model.tokenizer) : task.pairs;
    taskInfo.push({ name: task.name, kind: task.kind, pairs: task.pairs.length, usablePairs: pairs.length, source: task.source });
    if (pairs.length < Math.max(...shots) + 1) {
      skipped.push({ task: task.name, reason: `${pairs.length} of ${task.pairs.length} pairs usable${singleToken ? ' (one-token answers)' : ''}, ${Math.max(...shots) + 1} needed` });
      continue;
    }
    const answerTokens = singleToken ? 1 : Math.max(...pairs.map((p) => model.tokenizer.encode(p.output, { addSpecialTokens: false }).length));
    for (const k of shots) for (const prompt of buildPrompts(task, pairs, k, n, seed, template)) work.push({ task, prompt, answerTokens });
  }
  return { work, loaded: loaded.map((t) => ({ name: t.name, kind: t.kind })), skipped, tasks: taskInfo, options: { shots, n, seed, singleToken, batchSize, template } };
}

/**
 * The records of prompts [from, to) of the plan, generated as one batch: a batch is always
 * [k * batchSize, (k + 1) * batchSize), so a prompt's prediction does not depend on who runs it.
 */
export async function evaluateBatch(model: Model, plan: EvalPlan, from: number, to: number, signal?: AbortSignal): Promise<EvalRecord[]> {
  const { template, singleToken } = plan.options;
  const batch = plan.work.slice(from, to);
  const maxNewTokens = Math.max(...batch.map((w) => w.answerTokens));
  const generations = await model.generate(batch.map((w) => w.prompt.text), { maxNewTokens, signal });
  return batch.map((w, i) => {
    // The answer ends where the next demonstration would begin.
    const prediction = generations[i].text.split(template.separator)[0];
    const verdict = scorePrediction(prediction, w.prompt.expected, w.prompt.labels, singleToken ? w.task.scoring : 'exact');
    return { task: w.task.name, shots: w.prompt.shots, prompt: w.prompt.text, expected: w.prompt.expected, labels: w.prompt.labels, prediction, ...verdict };
  });
}

/** Scores per task and shot count, and the headline mean, from every record of the plan. */
export function summarizeEvaluation(plan: Omit<EvalPlan, 'work'>, records: EvalRecord[], keepRecords: boolean, ms: number): EvalResult {
  const { shots } = plan.options;
  const scores: TaskScore[] = [];
  for (const task of plan.loaded) {
    for (const k of shots) {
      const mine = records.filter((r) => r.task === task.name && r.shots === k);
      if (mine.length === 0) continue;
      const correct = mine.filter((r) => r.correct).length, copyErrors = mine.filter((r) => r.copyError).length;
      scores.push({ task: task.name, kind: task.kind, shots: k, n: mine.length, correct, copyErrors, accuracy: correct / mine.length, copyErrorRate: copyErrors / mine.length });
    }
  }
  const proxies = [...new Set(scores.filter((s) => s.kind === 'proxy').map((s) => s.task))];
  const excludedFromMean = proxies.length < new Set(scores.map((s) => s.task)).size ? proxies : [];
  const mean = shots.map((k) => {
    const s = scores.filter((x) => x.shots === k && !excludedFromMean.includes(x.task));
    const avg = (f: (x: TaskScore) => number) => (s.length ? s.reduce((a, x) => a + f(x), 0) / s.length : 0);
    return { shots: k, accuracy: avg((x) => x.accuracy), copyErrorRate: avg((x) => x.copyErrorRate), tasks: s.length };
  });
  return {
    scores, mean, excludedFromMean, skipped: plan.skipped, tasks: plan.tasks,
    options: plan.options,
    records: keepRecords ? records : undefined,
    ms,
  };
}

export async function evaluate(model: Model, tasks: Array<string | Task>, options: EvaluateOptions = {}): Promise<EvalResult> {
  const started = performance.now();
  const plan = planEvaluation(model, tasks, options);
  const { work } = plan, { batchSize } = plan.options;
  const records: EvalRecord[] = [];
  for (let start = 0; start < work.length; start += batchSize) {
    if (options.signal?.aborted) throw new NeuropruneError('E_ABORTED', `evaluation cancelled after ${start} of ${work.length} prompts`);
    records.push(...(await evaluateBatch(model, plan, start, Math.min(start + batchSize, work.length), options.signal)));
    options.onProgress?.(Math.min(start + batchSize, work.length), work.length);
  }
  return summarizeEvaluation(plan, records, Boolean(options.keepRecords), performance.now() - started);
}

/** A plain-text table: one row per task, accuracy / copy-error rate per shot count. */
export function formatEvalTable(result: EvalResult): string {
  const shots = result.options.shots;
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`.padStart(4);
  const excluded = result.excludedFromMean ?? [];
  const names = [...new Set(result.scores.map((s) => s.task))].filter((t) => !excluded.includes(t));
  names.push('mean', ...excluded);
  const width = Math.max(...names.map((t) => t.length), 4);
  const header = ['task'.padEnd(width), ...shots.map((k) => `${k}-shot acc/copy`.padStart(16))].join('  ');
  const rows = names.map((task) => {
    const cells = shots.map((k) => {
      const s = task === 'mean' ? result.mean.find((m) => m.shots === k) : result.scores.find((x) => x.task === task && x.shots === k);
      return (s ? `${pct(s.accuracy)} / ${pct(s.copyErrorRate)}` : '-').padStart(16);
    });
    return [task.padEnd(width), ...cells].join('  ');
  });
  if (excluded.length) rows.push(`(mean without the proxy task ${excluded.join(', ')}, shown on its own row)`);
  return [header, ...rows, ...result.skipped.map((s) => `skipped ${s.task}: ${s.reason}`)].join('\n');
}
