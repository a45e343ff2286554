/**
 * Does a model know the facts of the facts corpus? Per relation: recall of trained facts in templates
 * training never showed, recall in training templates, recall of facts it never saw (which should be
 * near the majority baseline: recall is knowledge, not a template trick), and four-option multiple
 * choice in the qrneuron format.
 *
 * Recall is a multi-token exact match: teacher-forced, the greedy (argmax) token at every position of
 * the object " {object}" must be the object's token. Multiple choice takes the largest logit among the
 * four letters A-D after "Answer:" (chance 25%).
 */
import type { Model } from '../model';
import { ChoiceItem, CHOICE_LETTERS, FactEvalSets, FactRelation, RecallItem } from '../tasks/facts';
import { NeuropruneError } from '../errors';

export interface FactScore {
  relation: string;
  /** Recall of trained facts in held-out templates. */
  heldOutTemplates: number;
  /** Held-out templates, ranked: the object is the likeliest of the relation's range (teacher-forced log-prob over its tokens). */
  heldOutRanked: number;
  /** Recall of trained facts in training templates. */
  trainTemplates: number;
  /** Recall of unseen facts (training templates). */
  unseenFacts: number;
  /** Always answering the relation's most frequent training object, on the unseen facts. */
  unseenMajority: number;
  /** Multiple choice, trained facts in held-out templates. */
  choice: number;
  /** Multiple choice, unseen facts. */
  choiceUnseen: number;
  counts: { heldOutTemplates: number; trainTemplates: number; unseenFacts: number; choice: number; choiceUnseen: number };
}

/** log p(tokens | prompt), summed over the tokens (teacher-forced), for every (prompt, continuation) pair. */
async function continuationLogProbs(model: Model, pairs: Array<{ prompt: number[]; continuation: number[] }>, batchSize: number, signal?: AbortSignal): Promise<number[]> {
  const out: number[] = [];
  for (let start = 0; start < pairs.length; start += batchSize) {
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'fact evaluation was cancelled');
    const batch = pairs.slice(start, start + batchSize);
    const logits = await model.logits(batch.map((p) => [...p.prompt, ...p.continuation]));
    batch.forEach((p, b) => {
      const offset = logits.tokens.seqLen - p.prompt.length - p.continuation.length;
      let sum = 0;
      p.continuation.forEach((id, k) => {
        const row = logits.at(b, offset + p.prompt.length - 1 + k);
        let max = -Infinity;
        for (let v = 0; v < row.length; v++) if (row[v] > max) max = row[v];
        let z = 0;
        for (let v = 0; v < row.length; v++) z += Math.exp(row[v] - max);
        sum += row[id] - max - Math.log(z);
      });
      out.push(sum);
    });
  }
  return out;
}

/**
 * Per item: is the target the likeliest of its relation's range? Recall without the exact-match
 * strictness: a paraphrase whose next word could as well be "the" still counts when, among the
 * relation's objects, the model puts the right one first.
 */
export async function rankedCorrect(model: Model, items: RecallItem[], relations: FactRelation[], o: FactsEvalOptions = {}, progress?: (n: number) => void) {
  const out: boolean[] = [];
  const chunk = 64;
  for (let start = 0; start < items.length; start += chunk) {
    const batch = items.slice(start, start + chunk);
    const pairs: Array<{ prompt: number[]; continuation: number[] }> = [];
    const candidates = batch.map((item) => {
      const range = relations.find((r) => r.name === item.relation)?.range ?? [item.target];
      const prompt = model.tokenizer.encode(item.prompt);
      for (const object of range) pairs.push({ prompt, continuation: model.tokenizer.encode(' ' + object, { addSpecialTokens: false }) });
      return range;
    });
    const scores = await continuationLogProbs(model, pairs, o.batchSize ?? 32, o.signal);
    let at = 0;
    batch.forEach((item, b) => {
      const range = candidates[b];
      let best = 0;
      for (let k = 1; k < range.length; k++) if (scores[at + k] > scores[at + best]) best = k;
      out.push(range[best] === item.target);
      at += range.length;
    });
    progress?.(batch.length);
  }
  return out;
}

export interface FactRecord {
  set: keyof FactEvalSets;
  relation: string;
  prompt: string;
  target: string;
  prediction: string;
  correct: boolean;
}

export interface FactsEvalResult {
  relations: FactScore[];
  mean: Omit<FactScore, 'relation' | 'counts'>;
  records?: FactRecord[];
}

export interface FactsEvalOptions {
  batchSize?: number;
  keepRecords?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Per item: did the model produce the target's tokens (greedy, teacher-forced)? Also what it produced. */
export async function recallCorrect(model: Model, items: RecallItem[], o: FactsEvalOptions = {}, progress?: (n: number) => void) {
  const out: Array<{ correct: boolean; prediction: string }> = [];
  const batchSize = o.batchSize ?? 32;
  for (let start = 0; start < items.length; start += batchSize) {
    if (o.signal?.aborted) throw new NeuropruneError('E_ABORTED', 'fact evaluation was cancelled');
    const batch = items.slice(start, start + batchSize);
    const prompts = batch.map((i) => model.tokenizer.encode(i.prompt));
    const targets = batch.map((i) => model.tokenizer.encode(' ' + i.target, { addSpecialTokens: false }));
    const logits = await model.logits(prompts.map((p, b) => [...p, ...targets[b]]));
    const vocab = model.info.vocabSize;
    batch.forEach((_, b) => {
      const len = prompts[b].length + targets[b].length;
      const offset = logits.tokens.seqLen - len;
      const predicted: number[] = [];
      for (let k = 0; k < targets[b].length; k++) {
        const row = logits.at(b, offset + prompts[b].length - 1 + k);
        let best = 0;
        for (let v = 1; v < vocab; v++) if (row[v] > row[best]) best = v;
        predicted.push(best);
      }
      out.push({ correct: predicted.every((id, k) => id === targets[b][k]), prediction: model.tokenizer.decode(predicted) });
    });
    progress?.(batch.length);
  }
  return out;
}

/** Per item: is the largest of the four letters' logits the right letter? */
export async function choiceCorrect(model: Model, items: ChoiceItem[], o: FactsEvalOptions = {}, progress?: (n: number) => void) {
  const letters = CHOICE_LETTERS.map((l) => {
    const ids = model.tokenizer.encode(' ' + l, { addSpecialTokens: false });
    if (ids.length !== 1) throw new NeuropruneError('E_TOKENIZER', `the answer letter "${l}" is not one token in this tokenizer`);
    return ids[0];
  });
  const out: Array<{ correct: boolean; prediction: string }> = [];
  const batchSize = o.batchSize ?? 32;
  for (let start = 0; start < items.length; start += batchSize) {
    if (o.signal?.aborted) throw new NeuropruneError('E_ABORTED', 'fact evaluation was cancelled');
    const batch = items.slice(start, start + batchSize);
    const logits = await model.logits(batch.map((i) => i.prompt), { lastOnly: true });
    batch.forEach((item, b) => {
      const row = logits.at(b, 0);
      let best = 0;
      for (let k = 1; k < 4; k++) if (row[letters[k]] > row[letters[best]]) best = k;
      out.push({ correct: CHOICE_LETTERS[best] === item.answer, prediction: CHOICE_LETTERS[best] });
    });
    progress?.(batch.length);
  }
  return out;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export async function evaluateFacts(model: Model, sets: FactEvalSets, relations: FactRelation[], o: FactsEvalOptions = {}): Promise<FactsEvalResult> {
  const total = 2 * sets.heldOutTemplates.length + sets.trainTemplates.length + sets.unseenFacts.length + sets.choice.length + sets.choiceUnseen.length;
  let done = 0;
  const progress = (n: number) => o.onProgress?.((done += n), total);
  const records: FactRecord[] = [];
  const scored: Record<keyof FactEvalSets | 'heldOutRanked', Array<{ relation: string; correct: boolean }>> = {
    heldOutTemplates: [], heldOutRanked: [], trainTemplates: [], unseenFacts: [], choice: [], choiceUnseen: [],
  };
  for (const set of ['heldOutTemplates', 'trainTemplates', 'unseenFacts'] as const) {
    const items = sets[set];
    const r = await recallCorrect(model, items, o, progress);
    items.forEach((item, i) => {
      scored[set].push({ relation: item.relation, correct: r[i].correct });
      if (o.keepRecords) records.push({ set, relation: item.relation, prompt: item.prompt, target: item.target, ...r[i] });
    });
  }
  const ranked = await rankedCorrect(model, sets.heldOutTemplates, relations, o, progress);
  sets.heldOutTemplates.forEach((item, i) => scored.heldOutRanked.push({ relation: item.relation, correct: ranked[i] }));
  for (const set of ['choice', 'choiceUnseen'] as const) {
    const items = sets[set];
    const r = await choiceCorrect(model, items, o, progress);
    items.forEach((item, i) => {
      scored[set].push({ relation: item.relation, correct: r[i].correct });
      if (o.keepRecords) records.push({ set, relation: item.relation, prompt: item.prompt, target: item.answer, ...r[i] });
    });
  }
  const acc = (set: keyof FactEvalSets | 'heldOutRanked', relation: string) => mean(scored[set].filter((s) => s.relation === relation).map((s) => (s.correct ? 1 : 0)));
  const count = (set: keyof FactEvalSets, relation: string) => scored[set].filter((s) => s.relation === relation).length;
  const scores: FactScore[] = relations.map((rel) => {
    const freq = new Map<string, number>();
    for (const f of rel.trainFacts) freq.set(f.object, (freq.get(f.object) ?? 0) + 1);
    const majority = [...freq].sort((a, b) => b[1] - a[1])[0]?.[0];
    return {
      relation: rel.name,
      heldOutTemplates: acc('heldOutTemplates', rel.name),
      heldOutRanked: acc('heldOutRanked', rel.name),
      trainTemplates: acc('trainTemplates', rel.name),
      unseenFacts: acc('unseenFacts', rel.name),
      unseenMajority: mean(rel.unseenFacts.map((f) => (f.object === majority ? 1 : 0))),
      choice: acc('choice', rel.name),
      choiceUnseen: acc('choiceUnseen', rel.name),
      counts: {
        heldOutTemplates: count('heldOutTemplates', rel.name), trainTemplates: count('trainTemplates', rel.name),
        unseenFacts: count('unseenFacts', rel.name), choice: count('choice', rel.name), choiceUnseen: count('choiceUnseen', rel.name),
      },
    };
  });
  const avg = (k: keyof Omit<FactScore, 'relation' | 'counts'>) => mean(scores.map((s) => s[k]).filter((x) => !Number.isNaN(x)));
  return {
    relations: scores,
    mean: {
      heldOutTemplates: avg('heldOutTemplates'), heldOutRanked: avg('heldOutRanked'), trainTemplates: avg('trainTemplates'), unseenFacts: avg('unseenFacts'),
      unseenMajority: avg('unseenMajority'), choice: avg('choice'), choiceUnseen: avg('choiceUnseen'),
    },
    records: o.keepRecords ? records : undefined,
  };
}

export function formatFactsTable(r: FactsEvalResult): string {
  const pct = (x: number) => (Number.isNaN(x) ? '-' : `${Math.round(100 * x)}%`).padStart(7);
  const width = Math.max(8, ...r.relations.map((s) => s.relation.length));
  const head = `${'relation'.padEnd(width)} ${'held-out tpl'.padStart(12)} ${'(ranked)'.padStart(8)} ${'train tpl'.padStart(9)} ${'unseen'.padStart(7)} ${'(major)'.padStart(7)} ${'MC'.padStart(7)} ${'MC unseen'.padStart(9)}`;
  const row = (name: string, s: Omit<FactScore, 'relation' | 'counts'>) =>
    `${name.padEnd(width)} ${pct(s.heldOutTemplates).padStart(12)} ${pct(s.heldOutRanked).padStart(8)} ${pct(s.trainTemplates).padStart(9)} ${pct(s.unseenFacts)} ${pct(s.unseenMajority)} ${pct(s.choice)} ${pct(s.choiceUnseen).padStart(9)}`;
  return [head, ...r.relations.map((s) => row(s.relation, s)), row('mean', r.mean)].join('\n');
}
