/**
 * query-neurons: the neurons behind a query's answer, by QRNCA (Chen, Dejl & Toni 2024) or knowledge
 * neurons (Dai et al. 2022), from one set of attributions.
 *
 *   1. Per item and prompt (template), Integrated Gradients of p(gold letter) (facts: p(object's first
 *      token)) at the last position over every layer's neurons at the site (QRNCA: mlp.hook_pre), m = 16.
 *   2. QRNCA: per template the neurons above t x max, their union, NA = summed score over the
 *      templates normalised per query; ica(n) = log(|C| / (1 + #clusters holding n)) over clusters
 *      (queries, or domains); neurons in more than u of the clusters are common and dropped; the top v
 *      by na x ica with a positive score.
 *      Knowledge neurons: per prompt above t x max; kept when shared by more than p of the prompts.
 *   3. Domain sets, the PCR table beside baselines of the same size (random, top activation, knowledge
 *      neurons, QRNCA without ICA, QRNCA keeping common neurons), flip rates, domain prediction,
 *      localisation (neurons per layer per domain, Jaccard overlap of the domain sets).
 * Attributions go through a ChunkStore, so a killed run resumes where it stopped, with the same result.
 */
import type { Model } from '../model';
import { attributeDefaults, Rule, RULES } from '../attribution';
import { NeuropruneError } from '../errors';
import { NEURON_SITES, NeuronRef, NeuronSite } from '../neurons';
import { inverseClusterAttribution, jaccard, knowledgeNeuronRanking, knowledgeNeurons, neuronAttribution, ScoredNeuron, selectQueryNeurons } from '../qrnca';
import { Rng, subSeed } from '../tasks/random';
import { describeValue } from '../validate';
import { Shard, shardChunks } from '../shards';
import { ChunkStore } from './chunk-store';
import { ChunkRun, finishShard, firstDifference, runChunks, shardManifest } from './shard-run';
import { DataOptions, prepareData, QueryItem, SkippedItem } from './query-neurons-data';
import { lastActivations, PcrRow, pcrTable, predictDomains } from './query-neurons-eval';

export type QueryNeuronMethod = 'qrnca' | 'knowledge-neurons';
export const QUERY_NEURON_METHODS: QueryNeuronMethod[] = ['qrnca', 'knowledge-neurons'];

export interface QueryNeuronsOptions extends DataOptions {
  /** A qrneuron MCQA JSON file, an LRE relation file or folder, or a JSONL of facts. */
  data: string;
  method?: QueryNeuronMethod;
  /** Default: mlp.hook_pre for qrnca (the paper's site), the model's neuronSite for knowledge neurons. */
  site?: NeuronSite;
  /** Integrated Gradients steps m (16) and rule (riemann_right). */
  steps?: number;
  rule?: Rule;
  /** Per-template threshold: keep neurons above t x max (0.2). */
  t?: number;
  /** Common neurons: in more than u of the clusters (0.3). */
  u?: number;
  /** Neurons kept per query (20). */
  v?: number;
  /** Knowledge neurons: kept when shared by more than p of a fact's prompts (0.5). */
  p?: number;
  /** ICA clusters: every query (default) or every domain. */
  clusters?: 'queries' | 'domains';
  layers?: number[];
  /** Run the evaluation (default true). */
  evaluate?: boolean;
  /** Scaling positions in the evaluation: last (default, as the paper) or all. */
  scalePositions?: 'last' | 'all';
  boost?: number;
  suppress?: number;
  /** Unrelated queries per query (1). */
  unrelated?: number;
  seed?: number;
  memoryBudgetMB?: number;
  /** The chunk folders of a sharded run's shards (merge): items not in chunkDir are taken from them. */
  shardStores?: ChunkStore[];
  /** Folder of per-item attribution chunks; with `resume`, chunks already there are reused. The caller
   * removes it once the outputs are written. */
  chunkDir?: string;
  resume?: boolean;
  onProgress?: (p: { stage: 'attribution' | 'evaluation'; done: number; total: number }) => void;
  signal?: AbortSignal;
}

export type ResolvedQueryNeuronsOptions = Required<Omit<QueryNeuronsOptions, 'onProgress' | 'signal' | 'chunkDir' | 'resume' | 'shardStores' | 'domains' | 'perDomain'>> &
  Pick<QueryNeuronsOptions, 'domains' | 'perDomain'>;

export interface QueryNeuronEntry extends NeuronRef {
  score: number;
  /** QRNCA: the neuron's NA and ICA. */
  na?: number;
  ica?: number;
  /** Knowledge neurons: how many prompts kept it. */
  shared?: number;
}

export interface QueryNeuronsResult {
  options: ResolvedQueryNeuronsOptions;
  kind: 'mcqa' | 'facts';
  layers: number[];
  dMlp: number;
  queries: Array<{ id: string; domain: string; prompts: number; neurons: QueryNeuronEntry[]; baselineSizes: Record<string, number> }>;
  skipped: SkippedItem[];
  letterForm: Record<string, 'space' | 'none'>;
  /** Per domain: its neurons (the most often chosen by its queries' sets, then by summed score). */
  domains: Record<string, QueryNeuronEntry[]>;
  pcr: PcrRow[];
  prediction: { accuracy: number | null; perDomain: Record<string, number> } | null;
  localisation: { perLayer: Record<string, number[]>; jaccard: { domains: string[]; matrix: number[][] } };
  timings: { attributionMs: number; selectionMs: number; evaluationMs: number; attributedItems: number; resumedItems: number };
  /** Dense per-item scores for attributions.safetensors: NA and the final score, flat [layers x dMlp]. */
  dense: { na: Map<number, number>[]; final: Map<number, number>[] };
}

export function queryNeuronsDefaults(model: Model, o: QueryNeuronsOptions): ResolvedQueryNeuronsOptions {
  if (o === null || typeof o !== 'object') throw new NeuropruneError('E_ARG', 'queryNeurons takes an options object {data, ...}');
  const method = o.method ?? 'qrnca';
  if (!QUERY_NEURON_METHODS.includes(method)) throw new NeuropruneError('E_ARG', `method must be one of ${QUERY_NEURON_METHODS.join(', ')}; got ${describeValue(method)}`);
  const r: ResolvedQueryNeuronsOptions = {
    data: o.data,
    method,
    site: o.site ?? (method === 'qrnca' && model.info.neuronSites.includes('mlp.hook_pre') ? 'mlp.hook_pre' : model.info.neuronSite),
    steps: o.steps ?? 16,
    rule: o.rule ?? 'riemann_right',
    t: o.t ?? 0.2,
    u: o.u ?? 0.3,
    v: o.v ?? 20,
    p: o.p ?? 0.5,
    clusters: o.clusters ?? 'queries',
    layers: o.layers ?? Array.from({ length: model.info.nLayers }, (_, l) => l),
    evaluate: o.evaluate ?? true,
    scalePositions: o.scalePositions ?? 'last',
    boost: o.boost ?? 2,
    suppress: o.suppress ?? 0,
    unrelated: o.unrelated ?? 1,
    seed: o.seed ?? 0,
    memoryBudgetMB: o.memoryBudgetMB ?? 2048,
    letterSpace: o.letterSpace ?? 'auto',
    domains: o.domains,
    perDomain: o.perDomain,
  };
  if (typeof r.data !== 'string' || r.data === '') throw new NeuropruneError('E_ARG', 'data must be the path of a data file');
  if (!NEURON_SITES.includes(r.site) || !model.info.neuronSites.includes(r.site)) {
    throw new NeuropruneError('E_SITE', `${model.info.id} has no site ${describeValue(r.site)}; its neuron sites are ${model.info.neuronSites.join(', ')}`);
  }
  const fraction = (name: string, x: number) => {
    if (typeof x !== 'number' || !(x >= 0 && x <= 1)) throw new NeuropruneError('E_ARG', `${name} must be a number in [0, 1], got ${describeValue(x)}`);
  };
  fraction('t', r.t), fraction('u', r.u), fraction('p', r.p);
  const count = (name: string, x: number, min: number) => {
    if (!Number.isInteger(x) || x < min) throw new NeuropruneError('E_ARG', `${name} must be an integer >= ${min}, got ${describeValue(x)}`);
  };
  count('v', r.v, 1), count('unrelated', r.unrelated, 0), count('seed', r.seed, 0);
  if (r.perDomain !== undefined) count('perDomain', r.perDomain, 1);
  if (!RULES.includes(r.rule)) throw new NeuropruneError('E_ARG', `rule must be one of ${RULES.join(', ')}; got ${describeValue(r.rule)}`);
  if (!['queries', 'domains'].includes(r.clusters)) throw new NeuropruneError('E_ARG', `clusters must be queries or domains; got ${describeValue(r.clusters)}`);
  if (!['last', 'all'].includes(r.scalePositions)) throw new NeuropruneError('E_ARG', `scalePositions must be last or all; got ${describeValue(r.scalePositions)}`);
  for (const [name, x] of [['boost', r.boost], ['suppress', r.suppress]] as const) {
    if (!Number.isFinite(x)) throw new NeuropruneError('E_ARG', `${name} must be a finite number, got ${describeValue(x)}`);
  }
  // Steps, layers and the budget are checked as attribute checks them.
  attributeDefaults({ prompts: [{ prompt: [0], target: [0] }], steps: r.steps, layers: r.layers, memoryBudgetMB: r.memoryBudgetMB, site: r.site }, model.info.nLayers);
  return r;
}

/** Finds each query's neurons, evaluates them against baselines, and returns everything the outputs hold. */
export async function queryNeurons(model: Model, options: QueryNeuronsOptions): Promise<QueryNeuronsResult> {
  const o = queryNeuronsDefaults(model, options);
  const { signal } = options;
  const data = prepareData(model, o.data, o);
  const { items } = data;
  const L = o.layers.length, N = model.info.dMlp, P = (item: QueryItem) => item.prompts.length;

  // 1. Attributions per item, through the chunk store (and the chunks of a sharded run's shards).
  const started = performance.now();
  const settings = attributionSettings(model, o, items);
  const store = options.chunkDir ? ChunkStore.open(options.chunkDir, settings, options.resume ?? false) : undefined;
  const shards = options.shardStores ?? [];
  for (const s of shards) {
    const d = firstDifference({ ...(s.settings<{ run: { settings: object } }>().run?.settings ?? {}), model: undefined }, { ...settings, model: undefined });
    if (d !== undefined) throw new NeuropruneError('E_SHARD', `${s.dir} was made with other settings than this run's (${d} differs): merge with the model and data the shards used`);
  }
  const scores: Float32Array[][] = [];
  let resumed = 0, attributed = 0;
  for (const [k, item] of items.entries()) {
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'query-neurons cancelled');
    let flat = store?.get(k);
    if (!(flat && flat.length === P(item) * L * N) && shards.length) {
      flat = shards[k % shards.length].get(k);
      if (flat && store) store.put(k, flat);
    }
    if (flat && flat.length === P(item) * L * N) {
      resumed++;
    } else {
      flat = await attributeItem(model, o, item, signal);
      store?.put(k, flat);
      attributed++;
    }
    scores.push(item.prompts.map((_, j) => flat!.subarray(j * L * N, (j + 1) * L * N)));
    options.onProgress?.({ stage: 'attribution', done: k + 1, total: items.length });
  }
  const attributionMs = performance.now() - started;

  // 2. Selection: QRNCA and its ablations, knowledge neurons, from the same scores.
  const selectStarted = performance.now();
  const na = scores.map((templates) => neuronAttribution(templates, o.t));
  const clusterSets: Set<number>[] =
    o.clusters === 'queries'
      ? na.map((m) => new Set(m.keys()))
      : [...new Set(items.map((i) => i.domain))].map((d) => new Set(items.flatMap((item, k) => (item.domain === d ? [...na[k].keys()] : []))));
  const ica = inverseClusterAttribution(clusterSets);
  const nClusters = clusterSets.length;
  const qrnca = na.map((m) => selectQueryNeurons(m, ica, { u: o.u, v: o.v, nClusters }));
  const kn = scores.map((templates) => knowledgeNeurons(templates, o.t, o.p).slice(0, Math.max(o.v, 0)));
  const primary: ScoredNeuron[][] = o.method === 'qrnca' ? qrnca : kn;
  const ref = (flat: number): NeuronRef => ({ layer: o.layers[Math.floor(flat / N)], index: flat % N });
  const entry = (k: number, n: ScoredNeuron & { shared?: number }): QueryNeuronEntry => {
    const e: QueryNeuronEntry = { ...ref(n.flat), score: n.score };
    if (o.method === 'qrnca') (e.na = na[k].get(n.flat)), (e.ica = ica.get(n.flat)?.ica);
    if (n.shared !== undefined) e.shared = n.shared;
    return e;
  };
  const domains = [...new Set(items.map((i) => i.domain))].sort();
  const domainFlat: Record<string, number[]> = {};
  const domainSets: Record<string, QueryNeuronEntry[]> = {};
  for (const d of domains) {
    // How many of the domain's query sets hold each neuron, then the summed score.
    const tally = new Map<number, { count: number; score: number }>();
    items.forEach((item, k) => {
      if (item.domain !== d) return;
      for (const n of primary[k]) {
        const t = tally.get(n.flat) ?? { count: 0, score: 0 };
        tally.set(n.flat, { count: t.count + 1, score: t.score + n.score });
      }
    });
    const ranked = [...tally].sort((a, b) => b[1].count - a[1].count || b[1].score - a[1].score || a[0] - b[0]).slice(0, o.v);
    domainFlat[d] = ranked.map(([flat]) => flat);
    domainSets[d] = ranked.map(([flat, t]) => ({ ...ref(flat), score: t.score, shared: t.count }));
  }
  const selectionMs = performance.now() - selectStarted;

  // 3. Evaluation beside baselines of the same size as each query's set.
  const evalStarted = performance.now();
  let pcr: PcrRow[] = [];
  let prediction: QueryNeuronsResult['prediction'] = null;
  const sizes = primary.map((s) => s.length);
  const baselineSizes: Array<Record<string, number>> = items.map(() => ({}));
  if (o.evaluate) {
    const acts = await lastActivations(model, items, o.layers, o.site, signal);
    const topK = (values: ArrayLike<number>, k: number, among?: number[]) =>
      (among ?? Array.from({ length: values.length }, (_, i) => i)).slice().sort((a, b) => values[b] - values[a] || a - b).slice(0, k);
    const flatSets: Record<string, number[][]> = {
      [o.method]: primary.map((s) => s.map((n) => n.flat)),
      random: sizes.map((k, i) => randomFlat(L * N, k, subSeed(o.seed, 'random', items[i].id))),
      'top-activation': sizes.map((k, i) => topK(acts[i], k)),
    };
    if (o.method === 'qrnca') flatSets['knowledge-neurons'] = sizes.map((k, i) => knowledgeNeuronRanking(scores[i], o.t).slice(0, k).map((n) => n.flat));
    else flatSets['qrnca'] = sizes.map((k, i) => selectQueryNeurons(na[i], ica, { u: o.u, v: k, nClusters }).map((n) => n.flat));
    flatSets['qrnca-without-ica'] = sizes.map((k, i) => selectQueryNeurons(na[i], ica, { u: o.u, v: k, nClusters, withoutIca: true }).map((n) => n.flat));
    flatSets['qrnca-keep-common'] = sizes.map((k, i) => selectQueryNeurons(na[i], ica, { u: o.u, v: k, nClusters, keepCommon: true }).map((n) => n.flat));
    const sets: Record<string, NeuronRef[][]> = {};
    for (const [name, perItem] of Object.entries(flatSets)) {
      sets[name] = perItem.map((s) => s.map(ref));
      perItem.forEach((s, i) => (baselineSizes[i][name] = s.length));
    }
    pcr = await pcrTable(model, items, sets, {
      site: o.site,
      positions: o.scalePositions,
      factors: { boost: o.boost, suppress: o.suppress },
      unrelated: o.unrelated,
      seed: o.seed,
      signal,
      onProgress: (done, total) => options.onProgress?.({ stage: 'evaluation', done, total }),
    });
    const guess = predictDomains(items, acts, domainFlat);
    const perDomain: Record<string, number> = {};
    for (const d of domains) {
      const mine = items.flatMap((item, i) => (item.domain === d ? [Number(guess.predictions[i] === d)] : []));
      perDomain[d] = mine.reduce((a, b) => a + b, 0) / mine.length;
    }
    prediction = { accuracy: guess.accuracy, perDomain };
  }
  const evaluationMs = performance.now() - evalStarted;

  // 4. Localisation: each domain's query neurons per layer, and the overlap of the domain sets.
  const perLayer: Record<string, number[]> = {};
  for (const d of domains) {
    perLayer[d] = o.layers.map(() => 0);
    items.forEach((item, k) => {
      if (item.domain === d) for (const n of primary[k]) perLayer[d][Math.floor(n.flat / N)]++;
    });
  }
  const asSets = domains.map((d) => new Set(domainFlat[d]));
  const matrix = asSets.map((a) => asSets.map((b) => jaccard(a, b)));

  return {
    options: o,
    kind: data.kind,
    layers: o.layers,
    dMlp: N,
    queries: items.map((item, k) => ({ id: item.id, domain: item.domain, prompts: P(item), neurons: primary[k].map((n) => entry(k, n)), baselineSizes: baselineSizes[k] })),
    skipped: data.skipped,
    letterForm: data.letterForm,
    domains: domainSets,
    pcr,
    prediction,
    localisation: { perLayer, jaccard: { domains, matrix } },
    timings: { attributionMs, selectionMs, evaluationMs, attributedItems: attributed, resumedItems: resumed },
    dense: { na, final: primary.map((s) => new Map(s.map((n) => [n.flat, n.score]))) },
  };
}

/** What the attribution chunks depend on: a resumed or merged chunk must have been made with these. */
function attributionSettings(model: Model, o: ResolvedQueryNeuronsOptions, items: QueryItem[]) {
  return { model: model.info.id, nParams: model.info.nParams, dtype: model.info.dtype, data: o.data, items: items.map((i) => i.id), site: o.site, steps: o.steps, rule: o.rule, layers: o.layers };
}

/** Integrated Gradients of one item's prompts, one native call: [prompts, layers, dMlp] flat. */
async function attributeItem(model: Model, o: ResolvedQueryNeuronsOptions, item: QueryItem, signal?: AbortSignal): Promise<Float32Array> {
  const L = o.layers.length, N = model.info.dMlp;
  const r = await model.attribute({
    prompts: item.prompts.map((p) => ({ prompt: p.ids, target: [p.target] })),
    objective: 'prob',
    positions: 'last',
    steps: o.steps,
    rule: o.rule,
    layers: o.layers,
    site: o.site,
    memoryBudgetMB: o.memoryBudgetMB,
    signal,
  });
  const flat = new Float32Array(item.prompts.length * L * N);
  r.prompts.forEach((p, j) => flat.set(p.scores, j * L * N));
  return flat;
}

/**
 * Shard i of N of the attribution stage: items k with k % N == i (an item is a chunk), written into
 * `dir` (DIR/shards/<i>-of-<N>) with a shard manifest holding the options, device and dtype (what
 * `merge` finishes the run with); the rest of the pipeline runs at merge.
 */
export async function queryNeuronsShard(
  model: Model,
  options: QueryNeuronsOptions,
  shard: Shard,
  dir: string,
  run: { options: Omit<QueryNeuronsOptions, 'onProgress' | 'signal' | 'chunkDir' | 'resume' | 'shardStores'>; device: string; dtype: string },
): Promise<{ run: ChunkRun; keys: number[]; items: number }> {
  const o = queryNeuronsDefaults(model, options);
  const { items } = prepareData(model, o.data, o);
  const settings = attributionSettings(model, o, items);
  const store = ChunkStore.open(dir, shardManifest('query-neurons', { model: model.info.id, settings, ...run }, { size: null, total: items.length }, shard), options.resume ?? false);
  const keys = shardChunks(items.length, shard);
  const chunks = await runChunks(store, keys, async (k) => store.put(k, await attributeItem(model, o, items[k], options.signal)), {
    signal: options.signal, what: 'query-neurons', onProgress: (done, total) => options.onProgress?.({ stage: 'attribution', done, total }),
  });
  finishShard(store, shard, keys, chunks);
  return { run: chunks, keys, items: items.length };
}

/** k distinct flat indices in [0, n), seeded. */
function randomFlat(n: number, k: number, seed: number): number[] {
  const rng = new Rng(seed), out = new Set<number>();
  while (out.size < Math.min(k, n)) out.add(rng.int(n));
  return [...out];
}
