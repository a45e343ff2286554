/**
 * Concept corpora for relearning: texts whose concept tokens are marked by character spans. A
 * concept comes from a JSONL file ({"text", "spans": [[start, end], ...]}, end exclusive), from a
 * word list applied to a plain corpus (every whole-word match is a span), or from the shipped
 * builder of location sentences over the facts data.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { NeuropruneError } from '../errors';
import { readJsonLines } from '../jsonl';
import { buildFacts } from './facts';
import { Rng } from './random';

export interface ConceptText {
  text: string;
  /** Character spans [start, end) of the concept in text, sorted, not overlapping. */
  spans: Array<[number, number]>;
}

const spanLine = z.object({ text: z.string().min(1), spans: z.array(z.tuple([z.number().int().nonnegative(), z.number().int().positive()])) });

/** Reads a labelled concept file; E_PROMPT_FILE names the line and field of a malformed entry. */
export function readConceptFile(file: string): ConceptText[] {
  return readJsonLines(file, spanLine, 'E_PROMPT_FILE').map(({ line, value }) => {
    const spans = [...value.spans].sort((a, b) => a[0] - b[0]) as Array<[number, number]>;
    spans.forEach(([s, e], i) => {
      if (e <= s || e > value.text.length) {
        throw new NeuropruneError('E_PROMPT_FILE', `${file}:${line}: spans.${i}: [${s}, ${e}] is not a span inside the text of ${value.text.length} characters`);
      }
      if (i > 0 && s < spans[i - 1][1]) throw new NeuropruneError('E_PROMPT_FILE', `${file}:${line}: spans.${i}: [${s}, ${e}] overlaps the span before it`);
    });
    return { text: value.text, spans };
  });
}

/** Marks every whole-word, case-sensitive occurrence of the words (longest first) in each text. */
export function applyWordList(texts: string[], words: string[]): ConceptText[] {
  const list = [...new Set(words.map((w) => w.trim()).filter(Boolean))].sort((a, b) => b.length - a.length);
  if (list.length === 0) throw new NeuropruneError('E_ARG', 'the concept word list is empty');
  const escaped = list.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join('|')})(?![\\p{L}\\p{N}])`, 'gu');
  return texts.map((text) => ({ text, spans: [...text.matchAll(pattern)].map((m) => [m.index!, m.index! + m[0].length] as [number, number]) }));
}

/** Reads a word list: one word or phrase a line. */
export function readWordList(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new NeuropruneError('E_PROMPT_FILE', `${file}: cannot read (${(error as Error).message})`);
  }
  const words = text.split('\n').map((w) => w.trim()).filter(Boolean);
  if (words.length === 0) throw new NeuropruneError('E_PROMPT_FILE', `${file}: no words`);
  return words;
}

/** The relations whose sentences name places, and which side of each fact is a place. */
const LOCATION_RELATIONS: Record<string, { subject: boolean; object: boolean }> = {
  country_capital_city: { subject: true, object: true },
  city_in_country: { subject: true, object: true },
  location_continent: { subject: true, object: true },
  landmark_in_country: { subject: false, object: true },
  company_hq: { subject: false, object: true },
};

/**
 * Location sentences: each training fact of the location relations in each of its training
 * templates, completed with the object; countries, capitals, cities and continents are the concept
 * and the rest of the sentence is control. Shuffled with the seed; at most `limit` sentences.
 */
export function buildLocationConcept(o: { dataDir: string; seed?: number; limit?: number }): ConceptText[] {
  const build = buildFacts({ dataDir: o.dataDir, seed: o.seed ?? 0, relations: Object.keys(LOCATION_RELATIONS) });
  const out: ConceptText[] = [];
  for (const relation of build.relations) {
    const sides = LOCATION_RELATIONS[relation.name];
    for (const fact of relation.trainFacts) {
      for (const template of relation.trainTemplates) {
        const at = template.indexOf('{}');
        const prefix = template.slice(0, at);
        const head = prefix + fact.subject + template.slice(at + 2);
        const text = `${head} ${fact.object}.`;
        const spans: Array<[number, number]> = [];
        if (sides.subject) spans.push([prefix.length, prefix.length + fact.subject.length]);
        if (sides.object) spans.push([head.length + 1, head.length + 1 + fact.object.length]);
        out.push({ text, spans });
      }
    }
  }
  const shuffled = new Rng(o.seed ?? 0).shuffle(out);
  return o.limit ? shuffled.slice(0, o.limit) : shuffled;
}

/** JSONL lines of a concept corpus, in the format readConceptFile reads. */
export function conceptJsonl(texts: ConceptText[]): string {
  return texts.map((t) => JSON.stringify({ text: t.text, spans: t.spans })).join('\n') + '\n';
}
