/** The ICL task files of Hendel, Geva & Globerson (2023): flat JSON {input: output}, one per task. */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { NeuropruneError } from '../errors';
import { Task, TaskKind } from './types';

const FOLDERS: TaskKind[] = ['knowledge', 'linguistic', 'translation'];
const fileSchema = z.record(z.string().min(1), z.string());

/** The path of `name`'s file under dataDir (in its kind's folder, or at the top), or undefined. */
export function findTaskFile(dataDir: string, name: string): { file: string; kind: TaskKind } | undefined {
  for (const kind of FOLDERS) {
    const file = path.join(dataDir, kind, `${name}.json`);
    if (fs.existsSync(file)) return { file, kind };
  }
  const flat = path.join(dataDir, `${name}.json`);
  return fs.existsSync(flat) ? { file: flat, kind: 'linguistic' } : undefined;
}

/** Task names available under dataDir. */
export function listTaskFiles(dataDir: string): string[] {
  return FOLDERS.flatMap((kind) => {
    const dir = path.join(dataDir, kind);
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)) : [];
  });
}

export function hendelTask(dataDir: string, name: string): Task {
  const found = findTaskFile(dataDir, name);
  if (!found) throw new NeuropruneError('E_NOT_FOUND', `task "${name}": no ${name}.json under ${dataDir} (found: ${listTaskFiles(dataDir).join(', ') || 'none'})`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(found.file, 'utf8'));
  } catch (error) {
    throw new NeuropruneError('E_TASK_FILE', `${found.file}: not JSON (${(error as Error).message})`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NeuropruneError('E_TASK_FILE', `${found.file}: ${issue.path.length ? `key "${issue.path.join('.')}"` : 'top level'}: ${issue.message} (expected a flat {"input": "output"} object)`);
  }
  const pairs = Object.entries(parsed.data)
    .filter(([, output]) => output.trim().length > 0)
    .map(([input, output]) => ({ input, output }));
  return { name, kind: found.kind, scoring: found.kind === 'knowledge' ? 'prefix' : 'exact', pairs, source: found.file };
}
