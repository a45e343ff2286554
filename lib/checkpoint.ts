/** Checkpoint files: safetensors read/write and random HF-layout folders (`neuroprune init`). */
import fs from 'node:fs/promises';
import path from 'node:path';
import { nativeCall, NeuropruneError } from './errors';
import { native, RawTensor } from './native';
import { configFor, SizeOptions } from './presets';
import { stagingDir, throwIfAborted } from './staging';
import { byteLevelTokenizerConfig, byteLevelTokenizerJson, TextTokenizer } from './tokenizer';

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
  /**
   * A folder whose tokenizer.json (and tokenizer_config.json) replace the byte-level tokenizer: the
   * vocabulary size becomes its size (or `vocab`, when larger) and bos/eos ids its eos token's.
   */
  tokenizer?: string;
  /** Raised while the weights are written: nothing is left, and the call rejects with E_ABORTED. */
  signal?: AbortSignal;
}

/**
 * Writes a randomly initialised checkpoint in HF layout to `outDir`: config.json, model.safetensors,
 * tokenizer.json (byte level) and tokenizer_config.json. The folder appears whole or not at all.
 */
export async function initCheckpoint(arch: string, outDir: string, options: InitOptions = {}): Promise<string> {
  const { seed = 0, dtype = 'float32', force = false, signal: _signal, tokenizer: tokenizerDir, ...size } = options;
  if (tokenizerDir !== undefined) {
    const tokenizer = await TextTokenizer.fromDir(tokenizerDir);
    const json = await fs.readFile(path.join(tokenizerDir, 'tokenizer.json'), 'utf8');
    const parsed = JSON.parse(json) as { model?: { vocab?: Record<string, number> | Array<unknown> }; added_tokens?: Array<{ id: number }> };
    const vocab = parsed.model?.vocab;
    const ids = [...(Array.isArray(vocab) ? [vocab.length - 1] : Object.values(vocab ?? {})), ...(parsed.added_tokens ?? []).map((t) => t.id)];
    const needed = Math.max(...ids) + 1;
    if (size.vocab !== undefined && size.vocab < needed) throw new NeuropruneError('E_ARG', `--vocab ${size.vocab} is smaller than the tokenizer's ${needed} ids`);
    size.vocab = size.vocab ?? needed;
    const configFile = path.join(tokenizerDir, 'tokenizer_config.json');
    const tokenizerFiles = { json, config: await fs.readFile(configFile, 'utf8').catch(() => '{}\n') };
    const config = configFor(arch, size);
    if (tokenizer.eosId !== undefined) (config.bos_token_id = tokenizer.eosId), (config.eos_token_id = tokenizer.eosId);
    return writeCheckpoint(config, outDir, { seed, dtype, force, signal: options.signal }, tokenizerFiles);
  }
  const config = configFor(arch, size);
  if (Number(config.vocab_size) < 257) {
    throw new NeuropruneError('E_ARG', `vocab must be at least 257 (256 bytes and <|endoftext|>), got ${config.vocab_size}`);
  }
  return writeCheckpoint(config, outDir, { seed, dtype, force, signal: options.signal }, {
    json: JSON.stringify(byteLevelTokenizerJson()),
    config: JSON.stringify(byteLevelTokenizerConfig(), null, 2) + '\n',
  });
}

async function writeCheckpoint(
  config: Record<string, unknown>,
  outDir: string,
  options: { seed: number; dtype: 'float32' | 'bfloat16' | 'float16'; force: boolean; signal?: AbortSignal },
  tokenizer: { json: string; config: string },
): Promise<string> {
  const { seed, dtype, force } = options;
  config.torch_dtype = dtype;
  const out = path.resolve(outDir);
  const existing = await fs.readdir(out).catch(() => undefined);
  if (existing && existing.length > 0 && !force) {
    throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);
  }
  const tmp = stagingDir(out);
  try {
    await fs.writeFile(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    await fs.writeFile(path.join(tmp, 'tokenizer.json'), tokenizer.json);
    await fs.writeFile(path.join(tmp, 'tokenizer_config.json'), tokenizer.config);
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
