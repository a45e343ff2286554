/** Classification data as an ICL task: JSONL {"text", "label"} lines and a label -> word map (SST-2 style). */
import path from 'node:path';
import { z } from 'zod';
import { NeuropruneError } from '../errors';
import { readJsonLines } from '../jsonl';
import { Task } from './types';

const line = z.object({ text: z.string().min(1), label: z.union([z.string(), z.number()]) });

export function classificationTask(file: string, labelWords: Record<string, string>, name = path.basename(file, '.jsonl')): Task {
  if (Object.keys(labelWords).length === 0) throw new NeuropruneError('E_ARG', `${file}: a classification task needs label words (e.g. 0=negative,1=positive)`);
  const pairs = readJsonLines(file, line, 'E_TASK_FILE').map(({ line: n, value }) => {
    const word = labelWords[String(value.label)];
    if (word === undefined) throw new NeuropruneError('E_TASK_FILE', `${file}:${n}: label "${value.label}" has no word (known: ${Object.keys(labelWords).join(', ')})`);
    return { input: value.text, output: word };
  });
  return { name, kind: 'classification', scoring: 'exact', pairs, source: file };
}
