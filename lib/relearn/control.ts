/**
 * The random-pruning control over seeded draws: per checkpoint, the draws' mean accuracy with a
 * bootstrap interval, and the main run minus random with a paired bootstrap interval. Every run is
 * scored on the same held-out tokens, so the tokens are the resampled items, paired across runs;
 * per token the control's value is its mean over draws (how often a random pruning gets it right).
 */
import { NeuropruneError } from '../errors';
import { bootstrapMean, Interval, pairedBootstrap } from '../stats';
import { TokenScores } from './tokens';

type Kind = 'concept' | 'control';

export interface ControlStat {
  /** The main run's accuracy. */
  main: number;
  /** The random draws: mean accuracy, its 95% interval over held-out tokens, and the draws' own range. */
  random: { mean: number; low: number; high: number; min: number; max: number };
  /** Main minus random accuracy with its paired 95% interval over held-out tokens. */
  difference: { delta: number; low: number; high: number };
}

export interface ControlPoint {
  step: number;
  phase: string;
  concept: ControlStat | null;
  control: ControlStat | null;
}

interface Scored {
  step: number;
  phase: string;
  scores: TokenScores;
}

const bits = (s: string) => Float64Array.from(s, (c) => (c === '1' ? 1 : 0));
const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** One ControlPoint per checkpoint of the main run; null for a kind with no held-out tokens. */
export function controlSummary(main: Scored[], draws: Scored[][], options: { resamples?: number; seed?: number } = {}): ControlPoint[] {
  return main.map((m, i) => {
    const stat = (kind: Kind): ControlStat | null => {
      const after = bits(m.scores.hits[kind]);
      if (after.length === 0 || draws.length === 0) return null;
      const each = draws.map((d) => bits(d[i].scores.hits[kind]));
      if (each.some((h) => h.length !== after.length)) throw new NeuropruneError('E_ARG', `checkpoint ${i}: the runs scored different ${kind} tokens (another held-out set?)`);
      const before = Float64Array.from(after, (_, t) => each.reduce((s, h) => s + h[t], 0) / each.length);  // per token, mean over draws
      const accuracy = each.map((h) => h.reduce((s, v) => s + v, 0) / h.length);
      const band: Interval = bootstrapMean(before, { ...options, seed: options.seed ?? 0 });
      const diff: Interval = pairedBootstrap([{ before, after }], { ...options, seed: options.seed ?? 0 });
      return {
        main: round(m.scores.accuracy[kind]),
        random: { mean: round(band.delta), low: round(band.low), high: round(band.high), min: round(Math.min(...accuracy)), max: round(Math.max(...accuracy)) },
        difference: { delta: round(diff.delta), low: round(diff.low), high: round(diff.high) },
      };
    };
    return { step: m.step, phase: m.phase, concept: stat('concept'), control: stat('control') };
  });
}
