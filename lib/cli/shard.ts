/** A shard's stage from the command line: its progress bar, the line it prints when done, and on Ctrl-C where its chunks are. */
import { NeuropruneError } from '../errors';
import { ChunkRun, ShardCommand, shardLine } from '../pipelines/shard-run';
import { Shard } from '../shards';
import { stagedProgress } from './progress';

export type ShardProgress = (stage: string, done: number, total: number) => void;

export async function runShardStage(command: ShardCommand, chunks: string, shard: Shard, dir: string, work: (onProgress: ShardProgress) => Promise<{ run: ChunkRun }>) {
  const bar = stagedProgress(14);
  try {
    const r = await work((stage, done, total) => bar.update(`${stage} ${shard.index}/${shard.count}`, done, total));
    bar.stop();
    process.stdout.write(shardLine(command, shard, dir, r.run));
  } catch (error) {
    if ((error as NeuropruneError).code === 'E_ABORTED') process.stderr.write(`stopped; the ${chunks} done so far are in ${dir} (continue with --resume)\n`);
    throw error;
  } finally {
    bar.stop();
  }
}
