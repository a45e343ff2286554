/**
 * Output written whole or not at all: a staging folder beside the destination, then one rename.
 * Staging folders are named OUT.tmp-PID-XXXXXX, so that the next run into OUT removes those a killed
 * process left behind (its PID is gone) and leaves a live writer's alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from './errors';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes OUT.tmp-PID-* folders whose process no longer runs; returns what it removed. */
export function removeStaleStaging(out: string): string[] {
  const dir = path.dirname(out), prefix = `${path.basename(out)}.tmp-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(path.join(dir, name));
  }
  return removed;
}

/** A new staging folder for OUT (mode 755, as a checkpoint folder should be), after removing stale ones. */
export function stagingDir(out: string): string {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  removeStaleStaging(out);
  const tmp = fs.mkdtempSync(`${out}.tmp-${process.pid}-`);
  fs.chmodSync(tmp, 0o755);
  return tmp;
}

/** Throws E_ABORTED (after the caller's cleanup) when the signal was raised while work could not stop. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new NeuropruneError('E_ABORTED', `${what} was cancelled; nothing was written`);
}

/**
 * Moves every entry of the staging folder `tmp` into OUT (each by one rename, replacing an entry of
 * the same name), then removes `tmp`. For outputs written beside a folder that must stay (DIR/shards):
 * each file lands whole; with `clear`, OUT's other entries except those in `keep` go first.
 */
export function publishInto(tmp: string, out: string, o: { clear?: boolean; keep?: string[] } = {}): void {
  fs.mkdirSync(out, { recursive: true });
  const staged = fs.readdirSync(tmp);
  if (o.clear) {
    for (const name of fs.readdirSync(out)) if (!(o.keep ?? []).includes(name) && !staged.includes(name)) fs.rmSync(path.join(out, name), { recursive: true, force: true });
  }
  for (const name of staged) {
    const dest = path.join(out, name);
    if (fs.existsSync(dest) && fs.statSync(dest).isDirectory()) fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(path.join(tmp, name), dest);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}
