/**
 * Per-item results of a long run, one file each, so that a killed run resumes from the items already
 * done. Every file is written whole (temporary name, then rename); a manifest records the settings the
 * chunks were made with, and a folder made with other settings is refused rather than mixed in.
 *
 * Two kinds of entries: `item-<k>.f32` (float32 values only) and `chunk-<k>.bin` (a JSON header and
 * float32 values in one file: u32 LE header length, the header, zero padding to 4 bytes, the values).
 * A sharded run's folder also gets `complete.json` once every chunk of the shard is written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';

export interface ChunkRecord<T = unknown> {
  meta: T;
  values: Float32Array;
}

const MANIFEST = 'manifest.json';
const COMPLETE = 'complete.json';

export class ChunkStore {
  private constructor(readonly dir: string) {}

  /**
   * Opens DIR for a run with these settings. Without `resume` any earlier content is removed; with it,
   * chunks made with the same settings are kept and other settings are E_ARG.
   */
  static open(dir: string, settings: unknown, resume: boolean): ChunkStore {
    const manifest = path.join(dir, MANIFEST);
    const wanted = JSON.stringify(settings);
    if (resume && fs.existsSync(manifest)) {
      const had = fs.readFileSync(manifest, 'utf8');
      if (had !== wanted) {
        throw new NeuropruneError('E_ARG', `${dir}: the run there used other settings (model, data or options); resume with the same ones, or start again without --resume`);
      }
      // What a killed writer left half-written, and the mark of a finished run (it is made again).
      for (const name of fs.readdirSync(dir)) if (name.includes('.tmp-') || name === COMPLETE) fs.rmSync(path.join(dir, name), { force: true });
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      writeWhole(manifest, Buffer.from(wanted));
    }
    return new ChunkStore(dir);
  }

  /** Opens a folder written by an earlier run, read-only; undefined when it has no manifest. */
  static read(dir: string): ChunkStore | undefined {
    return fs.existsSync(path.join(dir, MANIFEST)) ? new ChunkStore(dir) : undefined;
  }

  /** The settings the folder was made with. */
  settings<T = unknown>(): T {
    return JSON.parse(fs.readFileSync(path.join(this.dir, MANIFEST), 'utf8')) as T;
  }

  private file(key: number): string {
    return path.join(this.dir, `item-${key}.f32`);
  }

  private recordFile(key: number): string {
    return path.join(this.dir, `chunk-${key}.bin`);
  }

  /** The stored float32 values of item `key`, or undefined when it is not done. */
  get(key: number): Float32Array | undefined {
    const file = this.file(key);
    if (!fs.existsSync(file)) return undefined;
    const buf = fs.readFileSync(file);
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  }

  put(key: number, values: Float32Array): void {
    writeWhole(this.file(key), Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }

  /** Whether entry `key` (item or chunk record) is written. */
  has(key: number): boolean {
    return fs.existsSync(this.file(key)) || fs.existsSync(this.recordFile(key));
  }

  /** The keys of every entry written, ascending. */
  keys(): number[] {
    const keys: number[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const m = /^(?:item-(\d+)\.f32|chunk-(\d+)\.bin)$/.exec(name);
      if (m) keys.push(Number(m[1] ?? m[2]));
    }
    return keys.sort((a, b) => a - b);
  }

  /** The file holding entry `key`, if written. */
  entryFile(key: number): string | undefined {
    return [this.file(key), this.recordFile(key)].find((f) => fs.existsSync(f));
  }

  getRecord<T>(key: number): ChunkRecord<T> | undefined {
    const file = this.recordFile(key);
    if (!fs.existsSync(file)) return undefined;
    return decodeRecord<T>(fs.readFileSync(file), file);
  }

  putRecord(key: number, meta: unknown, values: Float32Array = new Float32Array(0)): void {
    writeWhole(this.recordFile(key), encodeRecord(meta, values));
  }

  /** Marks the run in this folder done (complete.json), with what the caller wants recorded. */
  markComplete(info: unknown): void {
    writeWhole(path.join(this.dir, COMPLETE), Buffer.from(JSON.stringify(info, null, 2) + '\n'));
  }

  /** complete.json's content, or undefined while the run is not done. */
  completion<T = unknown>(): T | undefined {
    const file = path.join(this.dir, COMPLETE);
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as T) : undefined;
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function encodeRecord(meta: unknown, values: Float32Array): Buffer {
  const header = Buffer.from(JSON.stringify(meta));
  const pad = (4 - ((4 + header.length) % 4)) % 4;
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  return Buffer.concat([len, header, Buffer.alloc(pad, 0x20), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]);
}

export function decodeRecord<T>(buf: Buffer, file: string): ChunkRecord<T> {
  const bad = () => new NeuropruneError('E_IO', `${file}: not a chunk record (truncated or damaged)`);
  if (buf.length < 4) throw bad();
  const n = buf.readUInt32LE(0);
  if (4 + n > buf.length) throw bad();
  let meta: T;
  try {
    meta = JSON.parse(buf.subarray(4, 4 + n).toString('utf8')) as T;
  } catch {
    throw bad();
  }
  const start = 4 + n + ((4 - ((4 + n) % 4)) % 4);
  if ((buf.length - start) % 4 !== 0) throw bad();
  // A view when the file's buffer is its own and aligned (large files), else a copy.
  const at = buf.byteOffset + start, count = (buf.length - start) / 4;
  const values = at % 4 === 0 && buf.byteOffset === 0 ? new Float32Array(buf.buffer, at, count) : new Float32Array(buf.buffer.slice(at, at + 4 * count));
  return { meta, values };
}

export function writeWhole(file: string, data: Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}
