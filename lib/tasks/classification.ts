/** Classification data as an ICL task: JSONL {"text", "label"} lines and a label -> word map (SST-2 style). */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { NeuropruneError } from '../errors';
import { Task } from './types';

const line = z.object({ text: z.string().min(1), label: z.union([z.string(), z.number()]) });

export function classificationTask(file: string, labelWords: Record<string, string>, name = path.basename(file, '.jsonl')): Task {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new NeuropruneError('E_TASK_FILE', `${file}: cannot read (${(error as Error).message})`);
  }
  if (Object.keys(labelWords).length === 0) throw new NeuropruneError('E_ARG', `${file}: a classification task needs label words (e.g. 0=negative,1=positive)`);
  const pairs = text.split('\n').flatMap((raw, i) => {
    if (!raw.trim()) return [];
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new NeuropruneError('E_TASK_FILE', `${file}:${i + 1}: not JSON`);
    }
    const parsed = line.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new NeuropruneError('E_TASK_FILE', `${file}:${i + 1}: ${issue.path.join('.') || 'line'}: ${issue.message}`);
    }
    const word = labelWords[String(parsed.data.label)];
    if (word === undefined) throw new NeuropruneError('E_TASK_FILE', `${file}:${i + 1}: label "${parsed.data.label}" has no word (known: ${Object.keys(labelWords).join(', ')})`);
    return [{ input: parsed.data.text, output: word }];
  });
  return { name, kind: 'classification', scoring: 'exact', pairs, source: file };
}
