/**
 * Files of a model folder on the TypeScript side, checked as the core checks its own: a regular file
 * (a FIFO or /dev/zero would hang or fill memory), inside the model folder once symlinks are resolved
 * (or inside its HF cache repository, whose snapshots link into blobs/), and not larger than a bound.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, NeuropruneError } from './errors';

/** The folders a model's files may resolve into (see native/core/checkpoint/files.h). */
export function modelRoots(dir: string): string[] {
  const roots: string[] = [];
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return undefined;
    }
  };
  const d = path.resolve(dir);
  const own = real(d);
  if (own) roots.push(own);
  const snapshots = path.dirname(d), repo = path.dirname(snapshots);
  if (path.basename(snapshots) === 'snapshots' && path.basename(repo).startsWith('models--')) {
    const r = real(repo);
    if (r) roots.push(r);
  }
  return roots;
}

/** Throws `code` naming the file unless it is a regular file inside the model folder, at most maxBytes. */
export function checkModelFile(dir: string, file: string, code: ErrorCode, maxBytes = 1 << 30): void {
  let resolved: string;
  try {
    resolved = fs.realpathSync(file);
  } catch (error) {
    throw new NeuropruneError(code, `${file}: cannot resolve (${(error as Error).message})`);
  }
  if (!modelRoots(dir).some((root) => resolved === root || resolved.startsWith(root.endsWith(path.sep) ? root : root + path.sep))) {
    throw new NeuropruneError(code, `${file}: resolves to ${resolved}, outside the model folder`);
  }
  const st = fs.statSync(resolved);
  if (!st.isFile()) throw new NeuropruneError(code, `${file}: not a regular file`);
  if (st.size > maxBytes) throw new NeuropruneError(code, `${file}: ${st.size} bytes, more than the ${maxBytes} allowed`);
}
