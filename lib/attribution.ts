/** Integrated Gradients over MLP neurons: options, prompt files, and result files. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeSafetensors } from './checkpoint';
import { NeuropruneError } from './errors';
import { readJsonLines } from './jsonl';
import { NeuronSite, UNIT_SET_SITES, UnitSetSite } from './neurons';
import { checkLayers, describeValue, MAX_IG_STEPS, MAX_MEMORY_BUDGET_MB } from './validate';

export type Objective = 'prob' | 'logprob' | 'logit_diff' | 'copy';
export type Rule = 'riemann_left' | 'riemann_right' | 'riemann_middle' | 'riemann_trapezoid';
export type Positions = 'last' | 'answer' | 'all';
export type Method = 'fast' | 'reference';

export const OBJECTIVES: Objective[] = ['prob', 'logprob', 'logit_diff', 'copy'];
export const RULES: Rule[] = ['riemann_left', 'riemann_right', 'riemann_middle', 'riemann_trapezoid'];
export const POSITIONS: Positions[] = ['last', 'answer', 'all'];

/** One prompt: the text (or ids), the answer it is scored on, and what the objective needs. */
export interface AttributionPrompt {
  prompt: string | number[];
  /** Teacher-forced after the prompt; prob and logprob sum over its tokens. */
  target: string | number[];
  /** logit_diff: logit(target) - logit(distractor), first tokens. */
  distractor?: string | number[];
  /** copy: the in-context example labels; log sum p(label) - log p(target), first tokens. */
  labels?: Array<string | number[]>;
}

export interface AttributeOptions {
  prompts: AttributionPrompt[];
  objective?: Objective;
  /** Riemann steps m (default 20). */
  steps?: number;
  rule?: Rule;
  /** Scaled positions: the last prompt token (default), the answer span, or every position. */
  positions?: Positions;
  /** Layers to attribute (default all). */
  layers?: number[];
  /** fast (default) or the reference that reruns the model per layer. */
  method?: Method;
  /**
   * The site: the model's neuronSite (default; mlp.hook_post), mlp.hook_pre (QRNCA's), or
   * hook_resid_post (the residual dimensions after each block: scores [layers, dModel]).
   */
  site?: UnitSetSite;
  /** Memory for activations kept for the backward pass; rows are micro-batched to fit (default 2048). */
  memoryBudgetMB?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface PromptAttribution {
  prompt: AttributionPrompt;
  /** Row-major [layers.length, dMlp]: attribution of neuron i at layers[r] at index r * dMlp + i. */
  scores: Float32Array;
  /** F(a) per layer (the same for every layer: nothing is scaled). */
  fFull: number[];
  /** F(0) per layer: that layer's activation at the scaled positions set to 0. */
  fBaseline: number[];
}

export interface AttributionResult {
  layers: number[];
  /** Units per layer: dMlp at the MLP sites, dModel at hook_resid_post. */
  dMlp: number;
  prompts: PromptAttribution[];
  options: Required<Omit<AttributeOptions, 'prompts' | 'onProgress' | 'signal'>>;
  rows: number;
  microBatches: number;
  ms: number;
}

export function attributeDefaults(options: AttributeOptions, nLayers: number, defaultSite: NeuronSite = 'mlp.hook_post') {
  if (options === null || typeof options !== 'object') throw new NeuropruneError('E_ARG', 'attribute takes an options object {prompts, ...}');
  const resolved = {
    objective: options.objective ?? 'prob',
    steps: options.steps ?? 20,
    rule: options.rule ?? 'riemann_right',
    positions: options.positions ?? 'last',
    layers: options.layers ?? Array.from({ length: nLayers }, (_, l) => l),
    method: options.method ?? 'fast',
    memoryBudgetMB: options.memoryBudgetMB ?? 2048,
    site: options.site ?? defaultSite,
  } as const;
  const oneOf = (name: string, value: unknown, allowed: readonly string[]) => {
    if (typeof value !== 'string' || !allowed.includes(value)) throw new NeuropruneError('E_ARG', `${name} must be one of ${allowed.join(', ')}; got ${describeValue(value)}`);
  };
  oneOf('objective', resolved.objective, OBJECTIVES);
  oneOf('rule', resolved.rule, RULES);
  oneOf('positions', resolved.positions, POSITIONS);
  oneOf('method', resolved.method, ['fast', 'reference']);
  oneOf('site', resolved.site, UNIT_SET_SITES);
  if (!Number.isInteger(resolved.steps) || resolved.steps < 1 || resolved.steps > MAX_IG_STEPS) {
    throw new NeuropruneError('E_ARG', `steps must be an integer in [1, ${MAX_IG_STEPS}], got ${describeValue(resolved.steps)}`);
  }
  if (typeof resolved.memoryBudgetMB !== 'number' || !(resolved.memoryBudgetMB > 0) || resolved.memoryBudgetMB > MAX_MEMORY_BUDGET_MB) {
    throw new NeuropruneError('E_ARG', `memoryBudgetMB must be a number in (0, ${MAX_MEMORY_BUDGET_MB}], got ${describeValue(resolved.memoryBudgetMB)}`);
  }
  if (!Array.isArray(options.prompts) || options.prompts.length === 0) throw new NeuropruneError('E_ARG', 'prompts must be a non-empty array');
  options.prompts.forEach((p, i) => {
    if (p === null || typeof p !== 'object') throw new NeuropruneError('E_ARG', `prompts[${i}] must be an object {prompt, target, ...}`);
  });
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new NeuropruneError('E_ARG', 'onProgress must be a function');
  return { ...resolved, layers: [...checkLayers(resolved.layers, nLayers)] };
}

/** Sum over rows of attributions[l] for each prompt: what completeness compares with F(a) - F(0). */
export function layerSums(result: AttributionResult, prompt: number): number[] {
  const { scores } = result.prompts[prompt];
  return result.layers.map((_, r) => scores.subarray(r * result.dMlp, (r + 1) * result.dMlp).reduce((s, v) => s + v, 0));
}

/** The mean over prompts, [layers, dMlp]. */
export function meanScores(result: AttributionResult): Float32Array {
  const mean = new Float32Array(result.layers.length * result.dMlp);
  const n = result.prompts.length;
  // Plain loops (a merge of 1000 prompts of GPT-2 small adds 37M values); float32 sums as before.
  for (const p of result.prompts) {
    const s = p.scores;
    for (let i = 0; i < s.length; i++) mean[i] += s[i] / n;
  }
  return mean;
}

/** The k neurons with the largest mean score (`mean`: meanScores(result), when the caller has it). */
export function topNeurons(result: AttributionResult, k: number, mean: Float32Array = meanScores(result)): Array<{ layer: number; index: number; score: number }> {
  const order = Array.from(mean.keys()).sort((a, b) => mean[b] - mean[a]).slice(0, k);
  return order.map((i) => ({ layer: result.layers[Math.floor(i / result.dMlp)], index: i % result.dMlp, score: mean[i] }));
}

const promptLine = z
  .object({
    prompt: z.string().min(1),
    target: z.string().min(1),
    distractor: z.string().min(1).optional(),
    labels: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

/** Reads a JSONL prompts file: {"prompt", "target", "distractor"?, "labels"?} per line. */
export async function readPromptsFile(file: string, objective?: Objective): Promise<AttributionPrompt[]> {
  return readJsonLines(file, promptLine, 'E_PROMPT_FILE').map(({ line, value }) => {
    if (objective === 'copy' && !value.labels) throw new NeuropruneError('E_PROMPT_FILE', `${file}:${line}: the copy objective needs "labels"`);
    if (objective === 'logit_diff' && !value.distractor) throw new NeuropruneError('E_PROMPT_FILE', `${file}:${line}: the logit_diff objective needs "distractor"`);
    return value;
  });
}

const f32 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * Writes DIR/attributions.safetensors: `prompt.{i}` [layers, dMlp] per prompt, `mean` [layers, dMlp],
 * `f_full` and `f_baseline` [prompts, layers], `layers` (I64); readable by Python's safetensors.
 */
export async function writeAttributions(file: string, result: AttributionResult, metadata: Record<string, string> = {}, mean: Float32Array = meanScores(result)): Promise<void> {
  const L = result.layers.length, N = result.dMlp, B = result.prompts.length;
  const layers = Buffer.alloc(8 * L);
  result.layers.forEach((l, i) => layers.writeBigInt64LE(BigInt(l), 8 * i));
  await writeSafetensors(
    file,
    [
      { name: 'mean', dtype: 'F32', shape: [L, N], data: f32(mean) },
      ...result.prompts.map((p, i) => ({ name: `prompt.${i}`, dtype: 'F32', shape: [L, N], data: f32(p.scores) })),
      { name: 'f_full', dtype: 'F32', shape: [B, L], data: f32(Float32Array.from(result.prompts.flatMap((p) => p.fFull))) },
      { name: 'f_baseline', dtype: 'F32', shape: [B, L], data: f32(Float32Array.from(result.prompts.flatMap((p) => p.fBaseline))) },
      { name: 'layers', dtype: 'I64', shape: [L], data: layers },
    ],
    { format: 'pt', ...metadata },
  );
}

/** Writes a JSON file atomically. */
export async function writeJson(file: string, value: unknown): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await fs.rename(tmp, file);
}
