/** What a model argument names: a folder, a hub id in the local HF cache, or `random:PRESET`. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NeuropruneError } from './errors';
import { configFor, HfConfig } from './presets';

export type ModelSource = { kind: 'folder'; dir: string; id: string } | { kind: 'random'; preset: string; config: HfConfig; id: string };

/** The hub cache folder, as huggingface_hub finds it. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
  return path.join(home, 'hub');
}

/** The snapshot folder for `org/name` in the hub cache: refs/main when present, else the newest. */
export function findInHubCache(id: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const repo = path.join(hubCacheDir(env), `models--${id.split('/').join('--')}`);
  const snapshots = path.join(repo, 'snapshots');
  if (!fs.existsSync(snapshots)) return undefined;
  const refMain = path.join(repo, 'refs', 'main');
  if (fs.existsSync(refMain) && fs.statSync(refMain).isFile() && fs.statSync(refMain).size < 4096) {
    const revision = fs.readFileSync(refMain, 'utf8').trim();
    // A revision is a commit hash or a name: never a path (refs/main holding "../.." would leave the cache).
    if (!/^[\w.-]+$/.test(revision) || /^\.+$/.test(revision)) {
      throw new NeuropruneError('E_NOT_FOUND', `${refMain}: "${revision.slice(0, 80)}" is not a revision name`);
    }
    const dir = path.join(snapshots, revision);
    if (fs.existsSync(dir)) return dir;
  }
  const dirs = fs
    .readdirSync(snapshots)
    .map((d) => path.join(snapshots, d))
    .filter((d) => fs.statSync(d).isDirectory())
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return dirs[0];
}

export function resolveModel(arg: string, env: NodeJS.ProcessEnv = process.env): ModelSource {
  if (arg.startsWith('random:')) {
    const preset = arg.slice('random:'.length);
    return { kind: 'random', preset, config: configFor(preset), id: arg };
  }
  if (fs.existsSync(arg)) {
    if (!fs.statSync(arg).isDirectory()) {
      throw new NeuropruneError('E_NOT_FOUND', `${arg}: a model is a folder (config.json, *.safetensors, tokenizer.json), not a file`);
    }
    return { kind: 'folder', dir: path.resolve(arg), id: arg };
  }
  const cached = /^[\w.-]+(\/[\w.-]+)?$/.test(arg) ? findInHubCache(arg, env) : undefined;
  if (cached) return { kind: 'folder', dir: cached, id: arg };
  throw new NeuropruneError(
    'E_NOT_FOUND',
    `model "${arg}": no such folder, no hub cache entry under ${hubCacheDir(env)}, and not random:PRESET`,
  );
}
