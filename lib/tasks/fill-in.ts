/**
 * Fill-in-the-blank facts for knowledge neurons (Dai et al. 2022): several prompts per fact, each
 * continued by the fact's object. From LRE relation files ({prompt_templates, samples: [{subject,
 * object}]}: one fact per sample, one prompt per template, the domain is the relation), a folder of
 * them, or a JSONL file of {"id"?, "domain", "prompts": [...], "target"} per fact.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { NeuropruneError } from '../errors';
import { readJsonLines } from '../jsonl';
import type { TextTokenizer } from '../tokenizer';

export interface FillInFact {
  id: string;
  domain: string;
  prompts: string[];
  /** The object; a fact is scored on its first token as the tokenizer continues the prompt (" X", else "X"). */
  target: string;
}

function readLreRelation(file: string): FillInFact[] {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new NeuropruneError('E_DATA_FILE', `${file}: not a readable JSON file (${(error as Error).message})`);
  }
  const name = typeof json.name === 'string' ? json.name : path.basename(file, '.json');
  const templates = [...new Set([json.prompt_templates, json.prompt_templates_zs].flatMap((v) => (Array.isArray(v) ? v : [])))];
  templates.forEach((t, i) => {
    if (typeof t !== 'string' || !t.includes('{}')) throw new NeuropruneError('E_DATA_FILE', `${file}: prompt_templates[${i}] must be a string with {} for the subject`);
  });
  if (templates.length === 0) throw new NeuropruneError('E_DATA_FILE', `${file}: prompt_templates is missing or empty`);
  if (!Array.isArray(json.samples) || json.samples.length === 0) throw new NeuropruneError('E_DATA_FILE', `${file}: samples must be a non-empty array of {subject, object}`);
  return json.samples.map((s, i) => {
    const sample = s as { subject?: unknown; object?: unknown };
    if (typeof sample?.subject !== 'string' || typeof sample?.object !== 'string' || !sample.object.trim()) {
      throw new NeuropruneError('E_DATA_FILE', `${file}: samples[${i}] must be {subject: string, object: non-empty string}`);
    }
    return { id: `${name}/${i}`, domain: name, prompts: (templates as string[]).map((t) => t.replace('{}', sample.subject as string)), target: sample.object.trim() };
  });
}

const factLine = z.object({ id: z.string().min(1).optional(), domain: z.string().min(1), prompts: z.array(z.string().min(1)).min(1), target: z.string().min(1) }).strict();

/** Reads facts from an LRE relation file, a folder of them, or a JSONL file; E_DATA_FILE on bad input. */
export function readFillInFacts(source: string): FillInFact[] {
  if (fs.existsSync(source) && fs.statSync(source).isDirectory()) {
    const files = fs.readdirSync(source).filter((f) => f.endsWith('.json')).sort();
    if (files.length === 0) throw new NeuropruneError('E_DATA_FILE', `${source}: no .json relation files`);
    return files.flatMap((f) => readLreRelation(path.join(source, f)));
  }
  if (source.endsWith('.jsonl')) {
    return readJsonLines(source, factLine, 'E_DATA_FILE').map(({ line, value }) => ({ ...value, id: value.id ?? `line ${line}` }));
  }
  return readLreRelation(source);
}

/**
 * The object's first token as the tokenizer continues the prompt: " Paris" first, unless that token is
 * only the space (byte-level tokenizers), then "Paris". Undefined when neither continues the prompt's
 * tokens with a visible token.
 */
export function objectFirstToken(tokenizer: TextTokenizer, prompt: string, promptIds: number[], object: string): number | undefined {
  const first = (text: string) => {
    const full = tokenizer.encode(prompt + text);
    return full.length > promptIds.length && promptIds.every((id, i) => full[i] === id) ? full[promptIds.length] : undefined;
  };
  let target = first(' ' + object);
  if (target === undefined || tokenizer.decode([target]).trim() === '') target = first(object);
  if (target === undefined || tokenizer.decode([target]).trim() === '') return undefined;
  return target;
}
