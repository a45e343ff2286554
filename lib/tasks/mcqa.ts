/**
 * Multiple-choice queries in the qrneuron format (Chen, Dejl & Toni 2024): a JSON object
 * {id: {sentences: [template prompts], obj_label: [gold letter per template], relation_name: domain}},
 * and the letter tokens each template is scored on.
 */
import fs from 'node:fs';
import { NeuropruneError } from '../errors';
import { TextTokenizer } from '../tokenizer';

export interface McqaTemplate {
  prompt: string;
  /** The gold letter, e.g. "C". */
  gold: string;
}

export interface McqaQuery {
  id: string;
  domain: string;
  templates: McqaTemplate[];
}

/** The choice letters every query offers. */
export const MCQA_LETTERS = ['A', 'B', 'C', 'D'] as const;

/** Reads and checks a qrneuron-format file; E_DATA_FILE names the query and the field at fault. */
export function readMcqa(file: string): McqaQuery[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new NeuropruneError('E_DATA_FILE', `${file}: cannot read (${(error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new NeuropruneError('E_DATA_FILE', `${file}: not JSON (${(error as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new NeuropruneError('E_DATA_FILE', `${file}: must be an object {query id: {sentences, obj_label, relation_name}}`);
  }
  const queries = Object.entries(json as Record<string, unknown>).map(([id, raw]) => {
    const bad = (field: string, why: string) => new NeuropruneError('E_DATA_FILE', `${file}: query ${JSON.stringify(id)}: ${field} ${why}`);
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad('(the entry)', 'must be an object {sentences, obj_label, relation_name}');
    const q = raw as Record<string, unknown>;
    const { sentences, obj_label: labels, relation_name: domain } = q;
    if (!Array.isArray(sentences) || sentences.length === 0) throw bad('sentences', 'must be a non-empty array of prompt strings');
    sentences.forEach((s, i) => {
      if (typeof s !== 'string' || s.trim() === '') throw bad(`sentences[${i}]`, 'must be a non-empty string');
    });
    if (!Array.isArray(labels)) throw bad('obj_label', 'must be an array with the gold letter of each sentence');
    if (labels.length !== sentences.length) throw bad('obj_label', `has ${labels.length} letters for ${sentences.length} sentences`);
    labels.forEach((l, i) => {
      if (typeof l !== 'string' || !(MCQA_LETTERS as readonly string[]).includes(l)) throw bad(`obj_label[${i}]`, `must be one of ${MCQA_LETTERS.join(', ')}, got ${JSON.stringify(l)}`);
    });
    if (typeof domain !== 'string' || domain === '') throw bad('relation_name', 'must be a non-empty string (the domain)');
    return { id, domain, templates: sentences.map((prompt, i) => ({ prompt: prompt as string, gold: labels[i] as string })) };
  });
  if (queries.length === 0) throw new NeuropruneError('E_DATA_FILE', `${file}: holds no queries`);
  return queries;
}

/** A query whose letters are single tokens after every template. */
export interface ResolvedQuery extends McqaQuery {
  /** Per template: the prompt's token ids, the gold letter's token id, and every letter's (A..D). */
  tokens: Array<{ prompt: number[]; gold: number; letters: number[] }>;
  /** Whether the letters follow the template with a leading space (" C") or without ("C"). */
  space: boolean;
}

export type LetterResolution = { ok: true; query: ResolvedQuery } | { ok: false; reason: string };

/**
 * The letters' token ids as the tokenizer really continues each template: encode(prompt + letter)
 * must be encode(prompt) plus exactly one token. The leading-space form (" C") is tried first, then
 * the bare letter; a query is skipped, with the reason, when neither gives single tokens for every
 * letter of every template.
 */
export function resolveLetters(tokenizer: TextTokenizer, query: McqaQuery, space: 'auto' | 'space' | 'none' = 'auto'): LetterResolution {
  const forms = space === 'auto' ? [true, false] : [space === 'space'];
  const reasons: string[] = [];
  for (const withSpace of forms) {
    const tokens: ResolvedQuery['tokens'] = [];
    let failure: string | undefined;
    for (const [t, template] of query.templates.entries()) {
      const prompt = tokenizer.encode(template.prompt);
      const letters: number[] = [];
      for (const letter of MCQA_LETTERS) {
        const text = (withSpace ? ' ' : '') + letter;
        const full = tokenizer.encode(template.prompt + text);
        const extra = full.length - prompt.length;
        if (extra !== 1 || prompt.some((id, i) => full[i] !== id)) {
          failure = `sentences[${t}]: ${JSON.stringify(text)} after the template is ${extra === 1 ? 'not a plain continuation of its tokens' : `${extra} tokens, not one`}`;
          break;
        }
        letters.push(full[full.length - 1]);
      }
      if (failure) break;
      if (new Set(letters).size !== letters.length) {
        failure = `sentences[${t}]: the letters share a token id`;
        break;
      }
      tokens.push({ prompt, gold: letters[MCQA_LETTERS.indexOf(template.gold as (typeof MCQA_LETTERS)[number])], letters });
    }
    if (!failure) return { ok: true, query: { ...query, tokens, space: withSpace } };
    reasons.push(`${withSpace ? 'with' : 'without'} a leading space: ${failure}`);
  }
  return { ok: false, reason: `the letters are not single tokens (${reasons.join('; ')})` };
}
