/**
 * The selection rules of query-relevant neurons (QRNCA; Chen, Dejl & Toni 2024) and knowledge neurons
 * (Dai et al. 2022), on attribution scores. A query's scores are one flat array per template over
 * (layer row, neuron): index r * dMlp + i is neuron i of the r-th attributed layer.
 */

/** Indices whose score is above t x (the largest score); none when no score is positive. */
export function aboveThreshold(scores: ArrayLike<number>, t: number): number[] {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i] > max) max = scores[i];
  if (!(max > 0)) return [];
  const kept: number[] = [];
  for (let i = 0; i < scores.length; i++) if (scores[i] > t * max) kept.push(i);
  return kept;
}

/**
 * Neuron attribution of one query: the neurons above t x max in any template (their union), each
 * scored by its summed score over the templates, divided by the largest |sum| so that every query's
 * NA lies in [-1, 1] whatever its scale.
 */
export function neuronAttribution(templates: ArrayLike<number>[], t: number): Map<number, number> {
  const union = new Set<number>();
  for (const scores of templates) for (const i of aboveThreshold(scores, t)) union.add(i);
  const na = new Map<number, number>();
  let scale = 0;
  for (const i of [...union].sort((a, b) => a - b)) {
    let sum = 0;
    for (const scores of templates) sum += scores[i];
    na.set(i, sum);
    scale = Math.max(scale, Math.abs(sum));
  }
  if (scale > 0) for (const [i, v] of na) na.set(i, v / scale);
  return na;
}

/**
 * Inverse cluster attribution, an IDF over clusters (queries, or domains): for a neuron in `count`
 * of the |C| clusters, ica = log(|C| / (1 + count)). Returns each neuron's count and ica.
 */
export function inverseClusterAttribution(clusters: Iterable<number>[]): Map<number, { count: number; ica: number }> {
  const counts = new Map<number, number>();
  let nClusters = 0;
  for (const cluster of clusters) {
    nClusters++;
    for (const i of new Set(cluster)) counts.set(i, (counts.get(i) ?? 0) + 1);
  }
  const out = new Map<number, { count: number; ica: number }>();
  for (const [i, count] of counts) out.set(i, { count, ica: Math.log(nClusters / (1 + count)) });
  return out;
}

export interface ScoredNeuron {
  /** Flat index r * dMlp + i. */
  flat: number;
  score: number;
}

export interface SelectOptions {
  /** Neurons in more than this fraction of clusters are common and removed (0.3). */
  u: number;
  /** Keep at most this many (20). */
  v: number;
  /** How many clusters there are. */
  nClusters: number;
  /** Keep common neurons (an ablation). */
  keepCommon?: boolean;
  /** Score by NA alone (an ablation: QRNCA without ICA). */
  withoutIca?: boolean;
}

/**
 * A query's neurons: final score na x ica, common neurons (in more than u of the clusters) removed,
 * the top v with a positive score. Ties go to the lower index, so the choice is deterministic.
 */
export function selectQueryNeurons(na: Map<number, number>, ica: Map<number, { count: number; ica: number }>, o: SelectOptions): ScoredNeuron[] {
  const out: ScoredNeuron[] = [];
  for (const [flat, value] of na) {
    const c = ica.get(flat) ?? { count: 0, ica: Math.log(o.nClusters) };
    if (!o.keepCommon && c.count / o.nClusters > o.u) continue;
    const score = o.withoutIca ? value : value * c.ica;
    if (score > 0) out.push({ flat, score });
  }
  return out.sort((a, b) => b.score - a.score || a.flat - b.flat).slice(0, o.v);
}

/**
 * Knowledge neurons of one fact (Dai et al.): per prompt the neurons above t x max; kept when more
 * than a fraction p of the prompts share them; scored by the mean score over the prompts. Sorted by
 * how many prompts share them, then by score.
 */
export function knowledgeNeurons(prompts: ArrayLike<number>[], t: number, p: number): Array<ScoredNeuron & { shared: number }> {
  const shared = new Map<number, number>();
  for (const scores of prompts) for (const i of aboveThreshold(scores, t)) shared.set(i, (shared.get(i) ?? 0) + 1);
  return rankShared(prompts, shared).filter((n) => n.shared / prompts.length > p);
}

/**
 * The same ranking without the p cut: what a baseline of a fixed size takes its first k from (a
 * knowledge-neuron set of exactly as many neurons as another method's).
 */
export function knowledgeNeuronRanking(prompts: ArrayLike<number>[], t: number): Array<ScoredNeuron & { shared: number }> {
  const shared = new Map<number, number>();
  for (const scores of prompts) for (const i of aboveThreshold(scores, t)) shared.set(i, (shared.get(i) ?? 0) + 1);
  return rankShared(prompts, shared);
}

function rankShared(prompts: ArrayLike<number>[], shared: Map<number, number>): Array<ScoredNeuron & { shared: number }> {
  const out = [...shared].map(([flat, count]) => {
    let sum = 0;
    for (const scores of prompts) sum += scores[flat];
    return { flat, score: sum / prompts.length, shared: count };
  });
  return out.sort((a, b) => b.shared - a.shared || b.score - a.score || a.flat - b.flat);
}

/** Jaccard overlap |A n B| / |A u B| of two sets (1 for two empty sets). */
export function jaccard<T>(a: Set<T>, b: Set<T>): number {
  let both = 0;
  for (const x of a) if (b.has(x)) both++;
  const union = a.size + b.size - both;
  return union === 0 ? 1 : both / union;
}
