/**
 * Per-item results of a long run, one file each, so that a killed run resumes from the items already
 * done. Every file is written whole (temporary name, then rename); a manifest records the settings the
 * chunks were made with, and a folder made with other settings is refused rather than mixed in.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';

export class ChunkStore {
  private constructor(readonly dir: string) {}

  /**
   * Opens DIR for a run with these settings. Without `resume` any earlier content is removed; with it,
   * chunks made with the same settings are kept and other settings are E_ARG.
   */
  static open(dir: string, settings: unknown, resume: boolean): ChunkStore {
    const manifest = path.join(dir, 'manifest.json');
    const wanted = JSON.stringify(settings);
    if (resume && fs.existsSync(manifest)) {
      const had = fs.readFileSync(manifest, 'utf8');
      if (had !== wanted) {
        throw new NeuropruneError('E_ARG', `${dir}: the run there used other settings (model, data or options); resume with the same ones, or start again without --resume`);
      }
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      writeWhole(manifest, Buffer.from(wanted));
    }
    return new ChunkStore(dir);
  }

  private file(key: number): string {
    return path.join(this.dir, `item-${key}.f32`);
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

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function writeWhole(file: string, data: Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}
