/** Checkpoint files: safetensors read/write and random HF-layout folders (`neuroprune init`). */
import fs from 'node:fs/promises';
import path from 'node:path';
import { nativeCall, NeuropruneError } from './errors';
import { native, RawTensor } from './native';
import { configFor, SizeOptions } from './presets';
import { stagingDir, throwIfAborted } from './staging';
import { byteLevelTokenizerConfig, byteLevelTokenizerJson } from './tokenizer';

export type { RawTensor };

/** Every tensor of a .safetensors file as raw little-endian bytes, with its dtype and shape. */
export function readSafetensors(file: string) {
  return nativeCall(() => native().readSafetensors(file));
}

/** Writes tensors (raw bytes) atomically: a temporary file, then rename. */
export function writeSafetensors(file: string, tensors: Array<{ name: string } & RawTensor>, metadata?: Record<string, string>) {
  return nativeCall(() => native().writeSafetensors(file, tensors, metadata));
}

export interface InitOptions extends SizeOptions {
  seed?: number;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** Replace an existing non-empty folder. */
  force?: boolean;
  /** Raised while the weights are written: nothing is left, and the call rejects with E_ABORTED. */
  signal?: AbortSignal;
}

/**
 * Writes a randomly initialised checkpoint in HF layout to `outDir`: config.json, model.safetensors,
 * tokenizer.json (byte level) and tokenizer_config.json. The folder appears whole or not at all.
 */
export async function initCheckpoint(arch: string, outDir: string, options: InitOptions = {}): Promise<string> {
  const { seed = 0, dtype = 'float32', force = false, signal: _signal, ...size } = options;
  const config = configFor(arch, size);
  if (Number(config.vocab_size) < 257) {
    throw new NeuropruneError('E_ARG', `vocab must be at least 257 (256 bytes and <|endoftext|>), got ${config.vocab_size}`);
  }
  config.torch_dtype = dtype;
  const out = path.resolve(outDir);
  const existing = await fs.readdir(out).catch(() => undefined);
  if (existing && existing.length > 0 && !force) {
    throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);
  }
  const tmp = stagingDir(out);
  try {
    await fs.writeFile(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    await fs.writeFile(path.join(tmp, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
    await fs.writeFile(path.join(tmp, 'tokenizer_config.json'), JSON.stringify(byteLevelTokenizerConfig(), null, 2) + '\n');
    await nativeCall(() => native().writeRandomCheckpoint(JSON.stringify(config), path.join(tmp, 'model.safetensors'), dtype, seed));
    throwIfAborted(options.signal, `init ${out}`);
    if (existing) await fs.rm(out, { recursive: true, force: true });
    await fs.rename(tmp, out);
  } catch (error) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw error;
  }
  return out;
}
