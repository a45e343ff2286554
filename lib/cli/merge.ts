/** `neuroprune merge DIR [DIR2 ...]`: the shards of one sharded run into the files its unsharded run writes. */
import path from 'node:path';
import { mergeShards } from '../pipelines/merge';
import { stagedProgress } from './progress';
import { interruptible } from './session';

export interface MergeFlags {
  out?: string;
  model?: string;
  device?: string;
  dtype?: string;
}

export async function runMerge(dirs: string[], o: MergeFlags): Promise<void> {
  const bar = stagedProgress(12);
  const r = await interruptible((signal) =>
    mergeShards(dirs, {
      out: o.out, model: o.model, device: o.device, dtype: o.dtype, signal,
      onProgress: (p) => {
        bar.update(p.stage, p.done, p.total);
      },
    }).finally(() => bar.stop()),
  );
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  process.stdout.write(`merged ${r.shards} ${r.command} shards (${r.chunks} chunks) in ${(r.ms / 1000).toFixed(2)} s; wrote ${r.files.map((f) => path.join(r.out, f)).join(', ')}\n`);
}
