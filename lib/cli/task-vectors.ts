/** `neuroprune task-vectors`: the pipeline with a progress bar, written to DIR whole or not at all. */
import fs from 'node:fs';
import path from 'node:path';
import { writeJson } from '../attribution';
import { environment } from '../environment';
import { NeuropruneError } from '../errors';
import { DType, Model } from '../model';
import { mergeConfig, readConfigFile } from '../pipelines/config';
import { formatTaskVectorTable, taskVectors, TaskVectorProgress } from '../pipelines/task-vectors';
import { parseTaskVectorsConfig, TaskVectorsConfig } from '../pipelines/task-vectors-config';
import { taskVectorsReport } from '../report/task-vectors';
import { stagingDir } from '../staging';
import { stagedProgress } from './progress';
import { withModel } from './session';

export interface TaskVectorsFlags {
  out: string;
  config?: string;
  tasks?: string[];
  shots?: number;
  n?: number;
  devN?: number;
  dummies?: number;
  layers?: number[];
  dataDir?: string;
  seed?: number;
  batchSize?: number;
  force?: boolean;
  device: string;
  dtype: DType;
}

export async function runTaskVectors(id: string, o: TaskVectorsFlags): Promise<void> {
  const raw = mergeConfig(o.config ? readConfigFile(o.config) : {}, {
    seed: o.seed, tasks: o.tasks, shots: o.shots, n: o.n, devN: o.devN, dummies: o.dummies, layers: o.layers, dataDir: o.dataDir, batchSize: o.batchSize,
  });
  const config = parseTaskVectorsConfig(raw, o.config ?? 'config');
  const out = path.resolve(o.out);
  const existing = fs.existsSync(out) ? fs.readdirSync(out) : undefined;
  if (existing?.length && !o.force) throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);
  await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => run(model, signal, id, config, out, existing));
}

/** Runs the pipeline and writes DIR through a temporary folder renamed into place at the end. */
async function run(model: Model, signal: AbortSignal, id: string, config: TaskVectorsConfig, out: string, existing: string[] | undefined) {
  const bar = stagedProgress(14);
  const onProgress = (p: TaskVectorProgress) => {
    bar.update(p.stage, p.done, p.total);
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = stagingDir(out);
  try {
    const r = await taskVectors(model, config, { onProgress, signal });
    bar.stop();
    const { config: modelConfig, ...info } = model.info;
    void modelConfig;
    await writeJson(path.join(tmp, 'results.json'), {
      environment: environment(),
      model: info,
      config: r.config,
      method: {
        vector: 'blocks.{L}.hook_resid_post at the last token of the k demonstrations followed by a dummy query example:{x\'}->',
        patch: 'replaces blocks.{L}.hook_resid_post at the last token of the zero-shot query example:{x}-> in its forward pass; greedy decoding of one token',
        bestLayer: 'the layer with the highest dev accuracy (the earliest on ties)',
      },
      layers: r.layers,
      tasks: r.tasks,
      mean: r.mean,
      skipped: r.skipped,
      timings: r.timings,
    });
    fs.writeFileSync(path.join(tmp, 'report.html'), taskVectorsReport(r, id));
    // Ctrl-C while the last files were written: nothing is renamed into place.
    if (signal.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled (Ctrl-C); nothing was written');
    if (existing) fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    process.stdout.write(`${formatTaskVectorTable(r)}\n\nreport: ${path.join(out, 'report.html')}\n`);
  } catch (error) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw error;
  } finally {
    bar.stop();
  }
}
