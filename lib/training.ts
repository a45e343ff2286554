/** Training options, batching and the JSONL corpus format for `model.train` and `neuroprune train`. */
import { z } from 'zod';
import { NeuropruneError } from './errors';
import { readJsonLines } from './jsonl';
import { Rng } from './tasks/random';

export interface TrainOptions {
  /** Training sequences: text (tokenized with the model's tokenizer) or token ids. */
  samples: Array<string | number[]>;
  steps: number;
  batchSize?: number;
  /** Peak learning rate, reached after `warmup` steps, then a cosine decay to lr * minLrRatio. */
  lr?: number;
  warmup?: number;
  minLrRatio?: number;
  weightDecay?: number;
  /** Max global gradient norm (0 = no clipping). */
  gradClip?: number;
  /** Longer sequences keep their first maxLength tokens. */
  maxLength?: number;
  seed?: number;
  /**
   * Steps an earlier run already made (default 0): this call makes steps fromStep+1 .. untilStep
   * (default steps) of a `steps`-step schedule, with the batch order and learning rate continuing
   * where they were. AdamW's moments start fresh at each call unless `optimizerState` carries them.
   */
  fromStep?: number;
  untilStep?: number;
  /**
   * Carries the optimizer (AdamW's moments and update count, and the float32 master weights of
   * low-precision models) across calls, so training in segments is the same training as one call.
   * A path: read when the file exists (it must be at step fromStep), written at the end of a call that
   * finishes (atomically: temporary file, then rename). `{ load, save }` reads one file and writes
   * another, so a run that dies between saving its weights and its state keeps a consistent pair.
   * With `weights: true` the saved file holds every weight too, and loading it brings them back: the
   * file alone then resumes a training from the starting model, with no model save beside it.
   */
  optimizerState?: string | { load?: string; save?: string; weights?: boolean };
  /** Units kept exactly zero through training (see `model.pruneUnits`). */
  frozen?: { kind: UnitKind; units: Array<{ layer: number; index: number }> };
  /** Write the model (HF layout, atomically) to `dir` every `every` steps and at the end. */
  checkpoint?: { dir: string; every: number };
  onStep?: (point: TrainPoint) => void;
  signal?: AbortSignal;
}

/** mlp: an MLP neuron (layer, index); resid: a residual-stream dimension (index; layer unused). */
export type UnitKind = 'mlp' | 'resid';

export interface TrainPoint {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
}

export interface TrainResult {
  curve: TrainPoint[];
  steps: number;
  tokens: number;
  ms: number;
  options: Omit<Required<TrainOptions>, 'samples' | 'onStep' | 'signal' | 'checkpoint' | 'fromStep' | 'untilStep' | 'frozen' | 'optimizerState'> & { samples: number };
}

export function trainDefaults(o: TrainOptions) {
  const resolved = {
    steps: o.steps,
    batchSize: o.batchSize ?? 16,
    lr: o.lr ?? 1e-3,
    warmup: o.warmup ?? Math.min(100, Math.floor(o.steps / 10)),
    minLrRatio: o.minLrRatio ?? 0.1,
    weightDecay: o.weightDecay ?? 0.1,
    gradClip: o.gradClip ?? 1.0,
    maxLength: o.maxLength ?? 512,
    seed: o.seed ?? 0,
  };
  for (const [k, v] of Object.entries(resolved)) {
    if (!Number.isFinite(v) || v < 0) throw new NeuropruneError('E_ARG', `${k} must be a non-negative number, got ${v}`);
  }
  if (!Number.isInteger(resolved.steps) || resolved.steps < 1) throw new NeuropruneError('E_ARG', `steps must be a positive integer, got ${o.steps}`);
  if (!Number.isInteger(resolved.batchSize) || resolved.batchSize < 1) throw new NeuropruneError('E_ARG', `batchSize must be a positive integer`);
  if (o.samples.length === 0) throw new NeuropruneError('E_ARG', 'samples must not be empty');
  return resolved;
}

/** The indices of each step's batch: a seeded shuffle, walked in order and reshuffled each epoch. */
export function* batchOrder(count: number, batchSize: number, seed: number): Generator<number[]> {
  const rng = new Rng(seed);
  let order = rng.shuffle(Array.from({ length: count }, (_, i) => i));
  let at = 0;
  for (;;) {
    const batch: number[] = [];
    while (batch.length < batchSize) {
      if (at === order.length) (order = rng.shuffle(order)), (at = 0);
      batch.push(order[at++]);
    }
    yield batch;
  }
}

/** Reads a training corpus: JSONL with one {"text": ...} per line. */
export function readCorpus(file: string): string[] {
  return readJsonLines(file, z.object({ text: z.string().min(1) }), 'E_PROMPT_FILE').map(({ value }) => value.text);
}
