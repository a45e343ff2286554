/**
 * The facts a knowledge circuit is found on (Yao et al. 2024): relations from LRE files
 * (`../shared/data/lre/<kind>/<name>.json`) or Hendel et al.'s knowledge files ({subject: object}).
 *
 *   prompt     the relation's zero-shot template (LRE prompt_templates_zs[0], else prompt_templates[0];
 *              for knowledge files a default per file, or the one given) filled with the subject;
 *   answer     the first token of " " + object as the tokenizer continues the prompt;
 *   known      kept when the answer is among the model's top 10 at the last position;
 *   corrupted  another known subject of the same relation whose prompt has the same token length and a
 *              different answer token (seeded draw); a fact with no such partner is dropped;
 *   split      a seeded 1:1 validation/test split per relation; each split keeps its own labels.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';
import { objectFirstToken } from './fill-in';
import { FACT_RELATIONS, fillTemplate, plainText, readRelationFile, RelationFile } from './facts';
import { Rng, subSeed } from './random';
import type { Logits, ModelInput } from '../model';
import type { TextTokenizer } from '../tokenizer';

/** Zero-shot templates for Hendel et al.'s knowledge files that the facts corpus does not template. */
export const KNOWLEDGE_TEMPLATES: Record<string, string> = {
  country_capital: 'The capital of {} is',
  location_country: '{} is located in the country of',
  location_religion: 'The religion of {} is',
  person_language: 'The language spoken by {} is',
};

export interface CircuitFact {
  relation: string;
  subject: string;
  object: string;
  prompt: string;
  ids: number[];
  /** The object's first token. */
  answer: number;
  /** The answer's rank in the model's next-token logits (0 = top). */
  rank: number;
  /** The partner whose prompt is the corrupted input. */
  corrupted: { subject: string; object: string; ids: number[]; answer: number };
}

export interface CircuitRelation {
  file: string;
  name: string;
  format: 'lre' | 'knowledge';
  template: string;
  /** Distinct facts read (after dropping subjects with more than one object). */
  facts: number;
  /** Facts whose answer is in the model's top `knownTopK`. */
  known: number;
  /** Known facts with a corrupted partner. */
  paired: number;
  validation: number;
  test: number;
}

export interface SkippedFact {
  relation: string;
  subject: string;
  reason: string;
}

export interface CircuitData {
  relations: CircuitRelation[];
  validation: CircuitFact[];
  test: CircuitFact[];
  skipped: SkippedFact[];
  counts: { facts: number; known: number; paired: number; validation: number; test: number; skipped: number };
}

export interface CircuitDataOptions {
  /** Relation files: LRE or Hendel knowledge JSON. */
  relations: string[];
  /** The template ({} = subject) for every relation, instead of each file's own. */
  template?: string;
  seed: number;
  /** Known-fact filter: the answer among the top k (10). */
  knownTopK?: number;
  /** At most this many paired facts per relation (a seeded draw), both splits together. */
  perRelation?: number | null;
}

/** The slice of a model the data needs. */
export interface DataModel {
  readonly tokenizer: TextTokenizer;
  readonly info: { maxPositions: number };
  logits(input: ModelInput, options?: { lastOnly?: boolean }): Promise<Logits>;
}

/** Which format a relation file is in: LRE when it has `samples` or `prompt_templates`, else {subject: object}. */
export function relationFormat(file: string): 'lre' | 'knowledge' {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new NeuropruneError('E_TASK_FILE', code ? `${file}: cannot read (${code})` : `${file}: not JSON (${(error as Error).message})`);
  }
  return json !== null && typeof json === 'object' && ('samples' in json || 'prompt_templates' in json) ? 'lre' : 'knowledge';
}

/** The template a relation is prompted with; E_ARG when a knowledge file has none and none is given. */
export function zeroShotTemplate(r: RelationFile, format: 'lre' | 'knowledge', given?: string): string {
  if (given !== undefined) {
    if (!given.includes('{}')) throw new NeuropruneError('E_ARG', `template ${JSON.stringify(given)} has no {} for the subject`);
    return given;
  }
  if (format === 'lre') {
    const t = r.zeroShotTemplates[0] ?? r.templates[0];
    if (!t) throw new NeuropruneError('E_TASK_FILE', `${r.file}: prompt_templates_zs and prompt_templates are both missing or empty`);
    return t;
  }
  const base = path.basename(r.file, '.json');
  const t = KNOWLEDGE_TEMPLATES[base] ?? FACT_RELATIONS.find((s) => s.name === base && s.source === 'icl_task_vectors/knowledge')?.templates[0];
  if (!t) throw new NeuropruneError('E_ARG', `${r.file}: a {subject: object} file has no template of its own and none is known for "${base}"; give one (--template "... {} ...")`);
  return t;
}

/** Reads, filters, pairs and splits the facts. Deterministic for a seed and a model. */
export async function prepareCircuitData(model: DataModel, o: CircuitDataOptions, signal?: AbortSignal): Promise<CircuitData> {
  if (o.relations.length === 0) throw new NeuropruneError('E_ARG', 'circuit needs at least one relation file');
  const knownTopK = o.knownTopK ?? 10;
  const tokenizer = model.tokenizer;
  const relations: CircuitRelation[] = [], skipped: SkippedFact[] = [];
  const validation: CircuitFact[] = [], test: CircuitFact[] = [];
  for (const file of o.relations) {
    const format = relationFormat(file);
    const r = readRelationFile(file, format);
    const template = zeroShotTemplate(r, format, o.template);
    const relation = r.name;
    // One object per subject; a subject listed with two objects has no single answer.
    const objects = new Map<string, Set<string>>();
    for (const s of r.samples) {
      const subject = plainText(s.subject);
      objects.set(subject, (objects.get(subject) ?? new Set()).add(plainText(s.object)));
    }
    const candidates: Array<Omit<CircuitFact, 'rank' | 'corrupted'>> = [];
    for (const [subject, objs] of objects) {
      if (objs.size > 1) {
        skipped.push({ relation, subject, reason: `listed with ${objs.size} objects` });
        continue;
      }
      const object = [...objs][0];
      const prompt = fillTemplate(template, subject);
      const ids = tokenizer.encode(prompt);
      if (ids.length === 0 || (model.info.maxPositions > 0 && ids.length > model.info.maxPositions)) {
        skipped.push({ relation, subject, reason: 'the prompt is empty or longer than the model context' });
        continue;
      }
      const answer = objectFirstToken(tokenizer, prompt, ids, object);
      if (answer === undefined) {
        skipped.push({ relation, subject, reason: `the object ${JSON.stringify(object)} does not continue the prompt's tokens` });
        continue;
      }
      candidates.push({ relation, subject, object, prompt, ids, answer });
    }
    // Known facts: the answer in the top k at the last position.
    const ranks = await answerRanks(model, candidates.map((c) => c.ids), candidates.map((c) => c.answer), signal);
    const known = candidates.map((c, i) => ({ ...c, rank: ranks[i] })).filter((c) => {
      if (c.rank < knownTopK) return true;
      skipped.push({ relation, subject: c.subject, reason: `unknown: the answer's rank is ${c.rank + 1}, not in the top ${knownTopK}` });
      return false;
    });
    // Corrupted partners: same relation, same token length, another answer token.
    const paired: CircuitFact[] = [];
    for (const fact of known) {
      const partners = known.filter((p) => p !== fact && p.ids.length === fact.ids.length && p.answer !== fact.answer);
      if (partners.length === 0) {
        skipped.push({ relation, subject: fact.subject, reason: `no other known subject with a prompt of ${fact.ids.length} tokens and another answer` });
        continue;
      }
      const p = new Rng(subSeed(o.seed, 'circuit-partner', relation, fact.subject)).pick(partners);
      paired.push({ ...fact, corrupted: { subject: p.subject, object: p.object, ids: p.ids, answer: p.answer } });
    }
    const rng = new Rng(subSeed(o.seed, 'circuit-split', relation));
    let chosen = rng.shuffle(paired);
    if (o.perRelation != null) chosen = chosen.slice(0, o.perRelation);
    const half = Math.ceil(chosen.length / 2);
    validation.push(...chosen.slice(0, half));
    test.push(...chosen.slice(half));
    relations.push({ file, name: relation, format, template, facts: objects.size, known: known.length, paired: paired.length, validation: half, test: chosen.length - half });
  }
  const sum = (k: 'facts' | 'known' | 'paired') => relations.reduce((s, r) => s + r[k], 0);
  const counts = { facts: sum('facts'), known: sum('known'), paired: sum('paired'), validation: validation.length, test: test.length, skipped: skipped.length };
  if (validation.length === 0 || test.length === 0) {
    throw new NeuropruneError(
      'E_TASK_FILE',
      `${o.relations.join(', ')}: ${counts.paired} known facts with a corrupted partner (of ${counts.facts}; ${counts.known} known); a circuit needs at least two (one per split)`,
    );
  }
  return { relations, validation, test, skipped, counts };
}

/** The answer's rank (0 = top) in the next-token logits of each prompt, in chunks of 64 prompts. */
export async function answerRanks(model: DataModel, prompts: number[][], answers: number[], signal?: AbortSignal): Promise<number[]> {
  const ranks: number[] = [];
  for (let start = 0; start < prompts.length; start += 64) {
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'circuit cancelled while filtering known facts');
    const chunk = prompts.slice(start, start + 64);
    const logits = await model.logits(chunk, { lastOnly: true });
    chunk.forEach((_, b) => {
      const row = logits.at(b, 0), target = row[answers[start + b]];
      let above = 0;
      for (let i = 0; i < row.length; i++) if (row[i] > target) above++;
      ranks.push(above);
    });
  }
  return ranks;
}

/** Rows grouped by token length (native calls take rows of one length), each group in input order. */
export function groupByLength<T extends { ids: number[] }>(rows: T[]): T[][] {
  const groups = new Map<number, T[]>();
  for (const r of rows) groups.set(r.ids.length, [...(groups.get(r.ids.length) ?? []), r]);
  return [...groups.keys()].sort((a, b) => a - b).map((k) => groups.get(k)!);
}
