/** Shared fixtures: tiny checkpoints written by `initCheckpoint`, raw safetensors, comparisons. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initCheckpoint, InitOptions } from '../lib/checkpoint';
import { NeuropruneError } from '../lib/errors';
import type { AttributionResult } from '../lib/attribution';

const created: string[] = [];
const removeCreated = () => {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
};
// Every test file runs in its own process: what it made under the temporary folder goes when it exits,
// and when it is stopped by SIGINT or SIGTERM (Ctrl-C, a timeout), which skip 'exit': remove, then
// die of the same signal.
process.on('exit', removeCreated);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    removeCreated();
    process.kill(process.pid, signal);
  });
}

/** A new folder under the OS temporary folder, removed when the test process exits. */
export function tempDir(prefix = 'neuroprune-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** A random GPT-2 checkpoint in HF layout, small enough for every test. */
export async function tinyGpt2(options: InitOptions = {}): Promise<string> {
  const dir = path.join(tempDir(), 'model');
  await initCheckpoint('gpt2', dir, { layers: 2, hidden: 32, heads: 4, seed: 1, ...options });
  return dir;
}

/** Copies a checkpoint folder so a test can damage its copy. */
export function copyDir(dir: string): string {
  const out = path.join(tempDir(), 'copy');
  fs.cpSync(dir, out, { recursive: true });
  return out;
}

/**
 * Builds safetensors bytes by hand: a header object (or raw header text) and a data section. A
 * negative headerLength is relative to the header's real length (-1: one byte short).
 */
export function rawSafetensors(header: object | string, data: Buffer = Buffer.alloc(0), headerLength?: number): Buffer {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLength === undefined ? text.length : headerLength < 0 ? text.length + headerLength : headerLength));
  return Buffer.concat([len, text, data]);
}

/** The largest |a - b| over two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest |fast - reference| over every score, relative to the largest |reference| score. */
export function relDiff(fast: AttributionResult, ref: AttributionResult): number {
  let diff = 0, scale = 0;
  fast.prompts.forEach((p, b) =>
    p.scores.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - ref.prompts[b].scores[i]));
      scale = Math.max(scale, Math.abs(ref.prompts[b].scores[i]));
    }),
  );
  return diff / scale;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function float32(buf: Buffer): Float32Array {
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** Resolves to the error's code, failing when the promise does not reject with a NeuropruneError. */
export async function codeOf(promise: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    if (!(error instanceof NeuropruneError)) throw new Error(`expected a NeuropruneError, got ${String(error)}`);
    return error.code;
  }
  throw new Error('expected an error, got none');
}
