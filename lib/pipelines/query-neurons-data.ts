/**
 * The items query-neurons attributes: MCQA queries (qrneuron format, scored on the gold letter) or
 * fill-in-the-blank facts (scored on the object's first token), tokenized once, with the skipped ones
 * and why.
 */
import fs from 'node:fs';
import type { Model } from '../model';
import { NeuropruneError } from '../errors';
import { objectFirstToken, readFillInFacts } from '../tasks/fill-in';
import { readMcqa, resolveLetters } from '../tasks/mcqa';

/** One query or fact: several prompts, each with the token its objective scores. */
export interface QueryItem {
  id: string;
  domain: string;
  prompts: Array<{
    ids: number[];
    /** The gold letter's (or the object's first) token id. */
    target: number;
    /** MCQA: the token ids of A..D (an answer is the likeliest of them); facts: none (the greedy token). */
    letters?: number[];
  }>;
}

export interface SkippedItem {
  id: string;
  domain: string;
  reason: string;
}

export type DataKind = 'mcqa' | 'facts';

export interface PreparedData {
  kind: DataKind;
  items: QueryItem[];
  skipped: SkippedItem[];
  /** MCQA: whether letters follow the templates with a leading space, per item id. */
  letterForm: Record<string, 'space' | 'none'>;
}

export interface DataOptions {
  /** Only these domains (default all). */
  domains?: string[];
  /** At most this many items per domain, the first in file order (default all). */
  perDomain?: number;
  /** MCQA letter form: try " C" then "C" (auto), or only one. */
  letterSpace?: 'auto' | 'space' | 'none';
}

/** What a data file holds: a qrneuron MCQA object, or fill-in facts (LRE relation file or folder, JSONL). */
export function dataKind(file: string): DataKind {
  if (!fs.existsSync(file)) throw new NeuropruneError('E_DATA_FILE', `${file}: no such file or folder`);
  if (fs.statSync(file).isDirectory() || file.endsWith('.jsonl')) return 'facts';
  let head: unknown;
  try {
    head = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new NeuropruneError('E_DATA_FILE', `${file}: not JSON (${(error as Error).message})`);
  }
  return head !== null && typeof head === 'object' && 'samples' in head ? 'facts' : 'mcqa';
}

export function prepareData(model: Model, file: string, o: DataOptions = {}): PreparedData {
  const kind = dataKind(file);
  const tokenizer = model.tokenizer;
  const items: QueryItem[] = [], skipped: SkippedItem[] = [], letterForm: Record<string, 'space' | 'none'> = {};
  const take = <T extends { domain: string }>(all: T[]): T[] => {
    const domains = o.domains ? new Set(o.domains) : undefined;
    if (domains) {
      const known = new Set(all.map((x) => x.domain));
      for (const d of domains) if (!known.has(d)) throw new NeuropruneError('E_ARG', `domain ${JSON.stringify(d)} is not in ${file} (it has ${[...known].join(', ')})`);
    }
    const count = new Map<string, number>();
    return all.filter((x) => {
      if (domains && !domains.has(x.domain)) return false;
      const n = count.get(x.domain) ?? 0;
      if (o.perDomain !== undefined && n >= o.perDomain) return false;
      count.set(x.domain, n + 1);
      return true;
    });
  };
  const fits = (ids: number[]) => model.info.maxPositions === 0 || ids.length <= model.info.maxPositions;
  if (kind === 'mcqa') {
    for (const query of take(readMcqa(file))) {
      const r = resolveLetters(tokenizer, query, o.letterSpace ?? 'auto');
      if (!r.ok) {
        skipped.push({ id: query.id, domain: query.domain, reason: r.reason });
        continue;
      }
      const long = r.query.tokens.findIndex((t) => !fits(t.prompt));
      if (long >= 0) {
        skipped.push({ id: query.id, domain: query.domain, reason: `sentences[${long}] is ${r.query.tokens[long].prompt.length} tokens, longer than the model's context` });
        continue;
      }
      letterForm[query.id] = r.query.space ? 'space' : 'none';
      items.push({ id: query.id, domain: query.domain, prompts: r.query.tokens.map((t) => ({ ids: t.prompt, target: t.gold, letters: t.letters })) });
    }
  } else {
    for (const fact of take(readFillInFacts(file))) {
      const prompts = fact.prompts.map((p) => ({ ids: tokenizer.encode(p), target: -1 }));
      if (prompts.some((p) => p.ids.length === 0 || !fits(p.ids))) {
        skipped.push({ id: fact.id, domain: fact.domain, reason: 'a prompt is empty or longer than the model context' });
        continue;
      }
      const target = objectFirstToken(tokenizer, fact.prompts[0], prompts[0].ids, fact.target);
      if (target === undefined) {
        skipped.push({ id: fact.id, domain: fact.domain, reason: `the object ${JSON.stringify(fact.target)} does not continue the prompt's tokens` });
        continue;
      }
      items.push({ id: fact.id, domain: fact.domain, prompts: prompts.map((p) => ({ ids: p.ids, target: target! })) });
    }
  }
  const ids = new Set<string>();
  for (const item of items) {
    if (ids.has(item.id)) throw new NeuropruneError('E_DATA_FILE', `${file}: query id ${JSON.stringify(item.id)} appears twice`);
    ids.add(item.id);
  }
  if (items.length === 0) {
    throw new NeuropruneError('E_DATA_FILE', `${file}: no usable query (${skipped.length} skipped${skipped.length ? `; first: ${skipped[0].id}: ${skipped[0].reason}` : ''})`);
  }
  return { kind, items, skipped, letterForm };
}
