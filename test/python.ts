/**
 * The Python that holds the reference tools (torch, transformers, safetensors, captum): the one
 * `scripts/setup.sh` prepares in the project's `.venv`, or NEUROPRUNE_REF_PYTHON.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');

export type ReferencePython = { python: string; versions: Record<string, string> } | { skip: string };

/** The reference Python if it imports every module named, else why not. */
export function referencePython(modules: string[]): ReferencePython {
  const candidates = [process.env.NEUROPRUNE_REF_PYTHON, path.join(ROOT, '.venv', 'bin', 'python')].filter(
    (p): p is string => !!p && fs.existsSync(p),
  );
  if (candidates.length === 0) return { skip: 'no reference Python (.venv missing: scripts/setup.sh makes it where pip works)' };
  const python = candidates[0];
  const code = `import importlib, json\nprint(json.dumps({m: getattr(importlib.import_module(m), '__version__', '?') for m in ${JSON.stringify(modules)}}))`;
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) return { skip: `${python} cannot import ${modules.join(', ')}: ${(r.stderr || '').trim().split('\n').pop()}` };
  return { python, versions: JSON.parse(r.stdout.trim().split('\n').pop()!) };
}
