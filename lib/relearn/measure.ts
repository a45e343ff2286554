/**
 * The numbers of a relearning run, as pure functions over activations: probeless concept scores,
 * rankings, saliency, top activating tokens and their overlap.
 */
import { Rng } from '../tasks/random';

/**
 * Unit activations over labelled tokens: values[token * units + unit], concept[token] says whether
 * the token is a concept token, tokenIds[token] the token itself.
 */
export interface TokenActivations {
  values: Float32Array;
  units: number;
  concept: boolean[];
  tokenIds: number[];
}

/**
 * Probeless concept score per unit (NeuroX's probeless ranking with two labels, concept and other):
 * the summed absolute difference of the per-label mean activations, |mean_concept - mean_other|.
 */
export function probelessScores(a: TokenActivations): Float32Array {
  const sum = [new Float64Array(a.units), new Float64Array(a.units)];
  const count = [0, 0];
  a.concept.forEach((isConcept, t) => {
    const label = isConcept ? 1 : 0;
    count[label]++;
    const row = a.values.subarray(t * a.units, (t + 1) * a.units);
    for (let u = 0; u < a.units; u++) sum[label][u] += row[u];
  });
  const out = new Float32Array(a.units);
  for (let u = 0; u < a.units; u++) out[u] = Math.abs(sum[1][u] / Math.max(1, count[1]) - sum[0][u] / Math.max(1, count[0]));
  return out;
}

/** Unit ids, highest score first (ties by id, so a ranking is reproducible). */
export function rankByScore(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
}

/** A seeded uniform permutation of all units: every unit is equally likely at every rank. */
export function randomRanking(units: number, seed: number): number[] {
  return new Rng(seed).shuffle(Array.from({ length: units }, (_, i) => i));
}

/**
 * Concept saliency of each unit from its rank in a ranking (Lo et al.): the top `top` units score 1;
 * below them the score falls linearly from 1 to 0 at the last rank.
 */
export function saliencyFromRanking(ranking: number[], top = 100): Float32Array {
  const n = ranking.length;
  const out = new Float32Array(n);
  const rest = Math.max(1, n - top);
  ranking.forEach((unit, rank) => (out[unit] = rank < top ? 1 : Math.max(0, 1 - (rank - top + 1) / rest)));
  return out;
}

/** Per layer the mean saliency and how many units score above 0.5; units are layer-major. */
export function saliencyPerLayer(saliency: Float32Array, layers: number): Array<{ mean: number; above: number }> {
  const per = saliency.length / layers;
  return Array.from({ length: layers }, (_, l) => {
    const row = saliency.subarray(l * per, (l + 1) * per);
    let sum = 0, above = 0;
    for (const s of row) (sum += s), (above += s > 0.5 ? 1 : 0);
    return { mean: sum / per, above };
  });
}

/**
 * The k distinct tokens on which a unit activates most (by its highest activation on each token);
 * an empty list for a unit that is 0 everywhere (a frozen pruned unit has no top tokens).
 */
export function topTokens(a: TokenActivations, unit: number, k = 5): number[] {
  const { slots, ids } = tokenSlots(a);
  const best = new Float32Array(ids.length).fill(-Infinity);
  let any = false;
  for (let t = 0; t < slots.length; t++) {
    const v = a.values[t * a.units + unit];
    if (v !== 0) any = true;
    if (v > best[slots[t]]) best[slots[t]] = v;
  }
  return any ? pickTop(best, ids, k) : [];
}

/**
 * topTokens of every unit at once: one pass over the activations in memory order (a per-unit call
 * reads them with a stride of `units`), the same lists.
 */
export function topTokensAll(a: TokenActivations, k = 5): number[][] {
  const { slots, ids } = tokenSlots(a);
  const U = a.units;
  const best = new Float32Array(ids.length * U).fill(-Infinity);  // [slot, unit]
  const any = new Uint8Array(U);
  for (let t = 0; t < slots.length; t++) {
    const row = a.values.subarray(t * U, (t + 1) * U), at = slots[t] * U;
    for (let u = 0; u < U; u++) {
      const v = row[u];
      if (v !== 0) any[u] = 1;
      if (v > best[at + u]) best[at + u] = v;
    }
  }
  const column = new Float32Array(ids.length);
  return Array.from({ length: U }, (_, u) => {
    if (!any[u]) return [];
    for (let s = 0; s < ids.length; s++) column[s] = best[s * U + u];
    return pickTop(column, ids, k);
  });
}

/** The k slots with the highest best[slot] (then the smaller token id first), as token ids. */
function pickTop(best: Float32Array, ids: number[], k: number): number[] {
  // The k best by insertion into a short sorted list.
  const top: number[] = [];
  const before = (x: number, y: number) => best[x] > best[y] || (best[x] === best[y] && ids[x] < ids[y]);
  for (let s = 0; s < ids.length; s++) {
    if (top.length === k && !before(s, top[k - 1])) continue;
    let i = Math.min(top.length, k - 1);
    top[i] = s;
    while (i > 0 && before(s, top[i - 1])) (top[i] = top[i - 1]), (top[--i] = s);
  }
  return top.map((s) => ids[s]);
}

/** Each token position's slot among the distinct token ids (computed once per activations object). */
const slotCache = new WeakMap<TokenActivations, { slots: Int32Array; ids: number[] }>();
function tokenSlots(a: TokenActivations): { slots: Int32Array; ids: number[] } {
  let cached = slotCache.get(a);
  if (!cached) {
    const index = new Map<number, number>();
    const ids: number[] = [];
    const slots = Int32Array.from(a.tokenIds, (id) => index.get(id) ?? (index.set(id, ids.length), ids.push(id), ids.length - 1));
    slotCache.set(a, (cached = { slots, ids }));
  }
  return cached;
}

/** |A ∩ B| / |A ∪ B|; null when both are empty. */
export function jaccard(a: number[], b: number[]): number | null {
  const sa = new Set(a), sb = new Set(b);
  const union = new Set([...sa, ...sb]).size;
  if (union === 0) return null;
  let inter = 0;
  for (const x of sa) if (sb.has(x)) inter++;
  return inter / union;
}

/** Cosine of two vectors; null when either is zero. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number | null {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) (dot += a[i] * b[i]), (na += a[i] * a[i]), (nb += b[i] * b[i]);
  return na === 0 || nb === 0 ? null : dot / Math.sqrt(na * nb);
}

/** The mean of the rows of `table` ([rows, dim] row-major) at `ids`; undefined for no ids. */
export function meanRows(table: Float32Array, dim: number, ids: number[]): Float32Array | undefined {
  if (ids.length === 0) return undefined;
  const out = new Float32Array(dim);
  for (const id of ids) for (let d = 0; d < dim; d++) out[d] += table[id * dim + d] / ids.length;
  return out;
}
