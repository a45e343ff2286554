/**
 * Evaluation of query neurons as in Chen, Dejl & Toni (2024): boost (x2) and suppress (x0) a query's
 * neurons, by activation scaling at the last position (or every position), and measure the relative
 * change of p(gold) on the query itself (related) and on as many queries of other domains
 * (unrelated). PCR = mean related change / mean unrelated change. Also the flip rate (answers, the
 * likeliest letter, that change) and neuron-based domain prediction.
 */
import type { Model } from '../model';
import { NeuropruneError } from '../errors';
import { NeuronRef, NeuronSite } from '../neurons';
import { Interval, pairedBootstrap } from '../stats';
import { Rng, subSeed } from '../tasks/random';
import { QueryItem } from './query-neurons-data';

export interface ScaleEvalOptions {
  site: NeuronSite;
  /** Scale at the last position (the paper's setting) or at every position. */
  positions: 'last' | 'all';
  factors: { boost: number; suppress: number };
  /** Unrelated queries per query, drawn from other domains (default 1: as many as related). */
  unrelated: number;
  seed: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** One method's row of the PCR table at one factor. */
export interface PcrRow {
  method: string;
  factor: number;
  /** Items that had neurons to scale. */
  items: number;
  /** Mean relative change of p(gold), (p' - p) / p, on the queries themselves and on unrelated ones. */
  related: number;
  unrelated: number;
  /** related / unrelated; null when there is no unrelated query or it did not change at all. */
  pcr: number | null;
  /**
   * Per query, related minus unrelated change: the mean and its paired-bootstrap 95% interval over
   * the queries (null without unrelated queries). An interval above 0 (boost) or below 0 (suppress)
   * is an effect specific to the query beyond what the same scaling does elsewhere.
   */
  specificity: Interval | null;
  /** Share of prompts whose answer changed. */
  flipRelated: number;
  flipUnrelated: number;
  /** The same per domain of the scaled query. */
  perDomain: Record<string, { items: number; related: number; unrelated: number; pcr: number | null }>;
}

interface Measured {
  p: number[];
  answer: number[];
}

const BATCH = 16;

/** p(target) and the answer (likeliest letter, or the greedy token) of each prompt, at its last position. */
async function measure(model: Model, prompts: QueryItem['prompts'], signal?: AbortSignal): Promise<Measured> {
  const out: Measured = { p: [], answer: [] };
  for (let start = 0; start < prompts.length; start += BATCH) {
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'query-neurons evaluation cancelled');
    const chunk = prompts.slice(start, start + BATCH);
    const logits = await model.logits(chunk.map((p) => p.ids), { lastOnly: true });
    chunk.forEach((prompt, b) => {
      const row = logits.at(b, 0);
      let max = -Infinity;
      for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
      let z = 0;
      for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
      out.p.push(Math.exp(row[prompt.target] - max) / z);
      const candidates = prompt.letters ?? Array.from(row.keys());
      let best = candidates[0];
      for (const c of candidates) if (row[c] > row[best]) best = c;
      out.answer.push(best);
    });
  }
  return out;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const ratio = (a: number, b: number) => (b !== 0 && Number.isFinite(a / b) ? a / b : null);

/** For each item, `n` items of other domains (seeded, the same for every method). */
export function unrelatedPartners(items: QueryItem[], n: number, seed: number): number[][] {
  return items.map((item, i) => {
    const others = items.flatMap((o, k) => (o.domain !== item.domain ? [k] : []));
    return new Rng(subSeed(seed, 'unrelated', item.id, i)).shuffle(others).slice(0, n);
  });
}

/**
 * The PCR table: every method's per-item neuron sets boosted and suppressed in turn; each scaling is
 * undone before the next.
 */
export async function pcrTable(model: Model, items: QueryItem[], sets: Record<string, NeuronRef[][]>, o: ScaleEvalOptions): Promise<PcrRow[]> {
  const partners = unrelatedPartners(items, o.unrelated, o.seed);
  const clean: Measured[] = [];
  for (const item of items) clean.push(await measure(model, item.prompts, o.signal));
  const methods = Object.keys(sets);
  const factors = [o.factors.boost, o.factors.suppress];
  const total = methods.length * factors.length * items.length;
  let done = 0;
  const rows: PcrRow[] = [];
  for (const method of methods) {
    for (const factor of factors) {
      const per: Array<{ domain: string; related: number; unrelated: number | null; flips: number[]; flipsU: number[] }> = [];
      for (const [i, item] of items.entries()) {
        const neurons = sets[method][i];
        if (neurons.length > 0) {
          const others = partners[i].map((k) => items[k]);
          const prompts = [...item.prompts, ...others.flatMap((o) => o.prompts)];
          const edit = await model.scale(neurons, factor, { site: o.site, positions: o.positions });
          let after: Measured;
          try {
            after = await measure(model, prompts, o.signal);
          } finally {
            await model.restore(edit);
          }
          const before = { p: [...clean[i].p], answer: [...clean[i].answer] };
          for (const k of partners[i]) before.p.push(...clean[k].p), before.answer.push(...clean[k].answer);
          const change = after.p.map((p, j) => (p - before.p[j]) / before.p[j]);
          const flips = after.answer.map((a, j) => Number(a !== before.answer[j]));
          const r = item.prompts.length;
          per.push({
            domain: item.domain,
            related: mean(change.slice(0, r)),
            unrelated: others.length ? mean(change.slice(r)) : null,
            flips: flips.slice(0, r),
            flipsU: flips.slice(r),
          });
        }
        o.onProgress?.(++done, total);
      }
      const summary = (group: typeof per) => {
        const related = mean(group.map((g) => g.related));
        const withU = group.filter((g) => g.unrelated !== null);
        const unrelated = mean(withU.map((g) => g.unrelated as number));
        return { items: group.length, related, unrelated, pcr: withU.length ? ratio(related, unrelated) : null };
      };
      const perDomain: PcrRow['perDomain'] = {};
      for (const d of [...new Set(per.map((g) => g.domain))].sort()) perDomain[d] = summary(per.filter((g) => g.domain === d));
      const paired = per.filter((g) => g.unrelated !== null);
      const specificity = paired.length
        ? pairedBootstrap([{ before: paired.map((g) => g.unrelated as number), after: paired.map((g) => g.related) }], { seed: subSeed(o.seed, method, factor) })
        : null;
      rows.push({
        method,
        factor,
        ...summary(per),
        specificity,
        flipRelated: mean(per.flatMap((g) => g.flips)),
        flipUnrelated: mean(per.flatMap((g) => g.flipsU)),
        perDomain,
      });
    }
  }
  return rows;
}

/**
 * Each item's mean activation at the site over its prompts' last positions, flat over
 * (layer row, neuron): what top-activation baselines and domain prediction read.
 */
export async function lastActivations(model: Model, items: QueryItem[], layers: number[], site: NeuronSite, signal?: AbortSignal): Promise<Float32Array[]> {
  const N = model.info.dMlp;
  const out: Float32Array[] = [];
  for (const item of items) {
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'query-neurons evaluation cancelled');
    const acts = await model.activations(item.prompts.map((p) => p.ids), { layers, site });
    const [B, T] = acts.shape;
    const v = new Float32Array(layers.length * N);
    layers.forEach((l, r) => {
      const a = acts.layers.get(l)!;
      for (let b = 0; b < B; b++) {
        const base = (b * T + T - 1) * N;  // left padded: every row's last token sits at T - 1
        for (let i = 0; i < N; i++) v[r * N + i] += a[base + i] / B;
      }
    });
    out.push(v);
  }
  return out;
}

/**
 * Neuron-based domain prediction: an item goes to the domain whose neurons it activates most (mean
 * activation over the domain set at the last position). Returns the accuracy and each guess.
 */
export function predictDomains(items: QueryItem[], activations: Float32Array[], domainSets: Record<string, number[]>): { accuracy: number | null; predictions: string[] } {
  const domains = Object.keys(domainSets).filter((d) => domainSets[d].length > 0);
  if (domains.length < 2) return { accuracy: null, predictions: items.map(() => '') };
  const predictions = items.map((_, i) => {
    let best = domains[0], bestScore = -Infinity;
    for (const d of domains) {
      const score = mean(domainSets[d].map((flat) => activations[i][flat]));
      if (score > bestScore) (best = d), (bestScore = score);
    }
    return best;
  });
  return { accuracy: mean(predictions.map((p, i) => Number(p === items[i].domain))), predictions };
}
