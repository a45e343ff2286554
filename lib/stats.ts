/**
 * Paired bootstrap intervals for before/after changes measured on the same prompts (Efron &
 * Tibshirani 1993, percentile method): resample the prompts with replacement, the same draw for
 * both conditions, and read the 2.5th and 97.5th percentiles of the resampled change.
 */
import { NeuropruneError } from './errors';
import { Rng, subSeed } from './tasks/random';

export interface Interval {
  /** The observed change: after - before. */
  delta: number;
  low: number;
  high: number;
  /** Confidence level of [low, high], e.g. 0.95. */
  level: number;
  resamples: number;
}

/** One stratum (e.g. one task): a per-prompt value before and after, in the same prompt order. */
export interface PairedSample {
  before: ArrayLike<number>;
  after: ArrayLike<number>;
}

const mean = (xs: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
};

/** The p-quantile of sorted values, linear between order statistics (numpy's default). */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  const h = (sorted.length - 1) * p, lo = Math.floor(h), hi = Math.ceil(h);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * The change of the mean over strata of the per-stratum mean (after - before), with a paired,
 * stratified bootstrap interval: each resample draws every stratum's prompts anew.
 */
export function pairedBootstrap(strata: PairedSample[], options: { resamples?: number; level?: number; seed?: number } = {}): Interval {
  const { resamples = 2000, level = 0.95, seed = 0 } = options;
  if (strata.length === 0) throw new NeuropruneError('E_ARG', 'pairedBootstrap needs at least one stratum');
  const diffs = strata.map((s, g) => {
    if (s.before.length !== s.after.length || s.before.length === 0) {
      throw new NeuropruneError('E_ARG', `stratum ${g}: ${s.before.length} values before and ${s.after.length} after; they must pair up`);
    }
    return Float64Array.from({ length: s.before.length }, (_, i) => s.after[i] - s.before[i]);
  });
  const delta = mean(diffs.map(mean));
  const rng = new Rng(subSeed(seed, 'bootstrap'));
  const draws = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let total = 0;
    for (const d of diffs) {
      let s = 0;
      for (let i = 0; i < d.length; i++) s += d[rng.int(d.length)];
      total += s / d.length;
    }
    draws[r] = total / diffs.length;
  }
  draws.sort();
  const tail = (1 - level) / 2;
  return { delta, low: quantile(draws, tail), high: quantile(draws, 1 - tail), level, resamples };
}

/** The mean of one sample with a bootstrap percentile interval: the paired bootstrap of the values against 0. */
export function meanInterval(values: ArrayLike<number>, options: { resamples?: number; level?: number; seed?: number } = {}): Interval {
  return pairedBootstrap([{ before: new Float64Array(values.length), after: values }], options);
}
