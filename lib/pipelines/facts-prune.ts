/**
 * Where does the facts model keep one relation? Integrated Gradients (objective: log-probability of the
 * object, teacher-forced over its tokens) over the MLP neurons of every layer on the relation's cloze
 * prompts (trained facts, training templates), then the top neurons pruned: recall of every relation
 * (held-out templates) before and after, beside the same number of random neurons per layer (seeded
 * draws). A relation-specific set would hurt its relation and spare the others; whether it does is the finding.
 */
import type { Model } from '../model';
import { topNeurons } from '../attribution';
import { NeuropruneError } from '../errors';
import { NeuronRef } from '../neurons';
import { FactsBuild, fillTemplate, RecallItem } from '../tasks/facts';
import { subSeed } from '../tasks/random';
import { Interval, pairedBootstrap } from '../stats';
import { randomNeuronsLike } from './copybias';
import { recallCorrect } from './facts';

export interface FactsPruneOptions {
  relation: string;
  /** Neurons to prune (default 20). */
  top?: number;
  /** Attribution prompts (default 48). */
  prompts?: number;
  steps?: number;
  draws?: number;
  seed?: number;
  signal?: AbortSignal;
  onStage?: (stage: string) => void;
}

export interface RecallByRelation {
  [relation: string]: number;
}

export interface FactsPruneResult {
  relation: string;
  neurons: Array<NeuronRef & { score: number }>;
  before: RecallByRelation;
  after: RecallByRelation;
  /** Per relation, the change of recall after pruning the top neurons: paired bootstrap 95% interval over prompts. */
  change: Record<string, Interval>;
  random: Array<{ seed: number; neurons: NeuronRef[]; after: RecallByRelation }>;
  /** Per relation, the smallest and largest change over the random draws. */
  randomRange: Record<string, [number, number]>;
  attribution: { prompts: number; steps: number; ms: number };
}

/** Recall per relation, and each prompt's 0/1 per relation (for paired intervals). */
async function recallByRelation(model: Model, items: RecallItem[], signal?: AbortSignal) {
  const r = await recallCorrect(model, items, { signal });
  const rates: RecallByRelation = {}, perPrompt: Record<string, number[]> = {};
  for (const rel of new Set(items.map((i) => i.relation))) {
    perPrompt[rel] = items.flatMap((item, k) => (item.relation === rel ? [Number(r[k].correct)] : []));
    rates[rel] = perPrompt[rel].reduce((a, b) => a + b, 0) / perPrompt[rel].length;
  }
  return { rates, perPrompt };
}

export async function factsPrune(model: Model, build: FactsBuild, o: FactsPruneOptions): Promise<FactsPruneResult> {
  const rel = build.relations.find((r) => r.name === o.relation);
  if (!rel) throw new NeuropruneError('E_ARG', `--relation ${o.relation} is not among ${build.relations.map((r) => r.name).join(', ')}`);
  const top = o.top ?? 20, steps = o.steps ?? 20, draws = o.draws ?? 3, seed = o.seed ?? 0;
  const items = build.eval.heldOutTemplates;
  o.onStage?.('recall before pruning');
  const { rates: before, perPrompt: beforeItems } = await recallByRelation(model, items, o.signal);
  o.onStage?.(`Integrated Gradients on ${rel.name}`);
  const prompts = rel.trainFacts.slice(0, o.prompts ?? 48).map((f, i) => ({
    prompt: fillTemplate(rel.trainTemplates[i % rel.trainTemplates.length], f.subject),
    target: ' ' + f.object,
  }));
  const attribution = await model.attribute({ prompts, objective: 'logprob', steps, signal: o.signal });
  const neurons = topNeurons(attribution, top);
  o.onStage?.(`recall with the top ${top} neurons pruned`);
  const edit = await model.prune(neurons);
  const { rates: after, perPrompt: afterItems } = await recallByRelation(model, items, o.signal);
  await model.restore(edit);
  const change = Object.fromEntries(
    Object.keys(before).map((relName) => [relName, pairedBootstrap([{ before: beforeItems[relName], after: afterItems[relName] }], { seed: subSeed(seed, relName) })]),
  );
  const random: FactsPruneResult['random'] = [];
  for (let d = 0; d < draws; d++) {
    o.onStage?.(`recall with ${top} random neurons pruned (draw ${d + 1} of ${draws})`);
    const drawSeed = subSeed(seed, 'facts-prune-random', d);
    const picked = randomNeuronsLike(neurons, attribution.dMlp, drawSeed);
    const e = await model.prune(picked);
    random.push({ seed: drawSeed, neurons: picked, after: (await recallByRelation(model, items, o.signal)).rates });
    await model.restore(e);
  }
  const randomRange = Object.fromEntries(
    Object.keys(before).map((relName) => {
      const d = random.map((x) => x.after[relName] - before[relName]);
      return [relName, (d.length ? [Math.min(...d), Math.max(...d)] : [NaN, NaN]) as [number, number]];
    }),
  );
  return { relation: rel.name, neurons, before, after, change, random, randomRange, attribution: { prompts: prompts.length, steps, ms: Math.round(attribution.ms) } };
}

export function formatFactsPruneTable(r: FactsPruneResult): string {
  const pct = (x: number) => `${Math.round(100 * x)}%`.padStart(8);
  const pts = (x: number) => `${x >= 0 ? '+' : ''}${Math.round(100 * x)}`;
  const names = Object.keys(r.before);
  const width = Math.max(...names.map((n) => n.length), 8) + 2;
  const head = `${'relation'.padEnd(width)} ${'before'.padStart(8)} ${`top ${r.neurons.length}`.padStart(8)} ${'change [95% CI]'.padStart(17)} ${'random'.padStart(8)} ${'random change'.padStart(14)}`;
  const rows = names.map((n) => {
    const rand = r.random.length ? r.random.reduce((a, x) => a + x.after[n], 0) / r.random.length : NaN;
    const c = r.change[n], range = r.randomRange[n];
    return `${(n === r.relation ? `${n} *` : n).padEnd(width)} ${pct(r.before[n])} ${pct(r.after[n])} ${`${pts(c.delta)} [${pts(c.low)}, ${pts(c.high)}]`.padStart(17)} ` +
      `${Number.isNaN(rand) ? '       -' : pct(rand)} ${(Number.isNaN(range[0]) ? '-' : `${pts(range[0])} to ${pts(range[1])}`).padStart(14)}`;
  });
  return [
    head, ...rows,
    `(* the relation whose neurons were pruned; recall on held-out templates; changes in points, 95% CI from a paired bootstrap over prompts;`,
    ` random: mean of ${r.random.length} draws of the same numbers of neurons per layer, and the range of their changes)`,
  ].join('\n');
}
