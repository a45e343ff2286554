/** `neuroprune copybias`: the pipeline with progress bars, written to DIR whole or not at all. */
import fs from 'node:fs';
import path from 'node:path';
import { writeAttributions, writeJson } from '../attribution';
import { environment } from '../environment';
import { stagingDir } from '../staging';
import { NeuropruneError } from '../errors';
import { DType, Model } from '../model';
import { CopyBiasConfig } from '../pipelines/copybias-config';
import { withModel } from './session';
import { neuronSet, writeNeuronSet } from '../neurons';
import { copyBias, StageProgress } from '../pipelines/copybias';
import { mergeConfig, readConfigFile } from '../pipelines/config';
import { parseCopyBiasConfig } from '../pipelines/copybias-config';
import { formatEvalTable } from '../pipelines/evaluate';
import { copyBiasReport, summaryLine } from '../report/copybias';
import { formatTaskVectorTable } from '../pipelines/task-vectors';
import { progressBar } from './progress';

export interface CopyBiasFlags {
  out: string;
  config?: string;
  seed?: number;
  steps?: number;
  attributionPrompts?: number;
  devPrompts?: number;
  fractions?: number[];
  tasks?: string[];
  shots?: number[];
  n?: number;
  dataDir?: string;
  allAnswers?: boolean;
  labelWords?: Record<string, string>;
  draws?: number;
  taskVectors?: boolean;
  saveModel?: boolean;
  force?: boolean;
  device: string;
  dtype: DType;
}

export async function runCopyBias(id: string, o: CopyBiasFlags): Promise<void> {
  const raw = mergeConfig(o.config ? readConfigFile(o.config) : {}, {
    seed: o.seed,
    proxy: { attributionPrompts: o.attributionPrompts, devPrompts: o.devPrompts },
    attribution: { steps: o.steps },
    selection: { fractions: o.fractions },
    evaluation: { tasks: o.tasks, shots: o.shots, n: o.n, dataDir: o.dataDir, allAnswers: o.allAnswers, labelWords: o.labelWords },
    control: { draws: o.draws },
    taskVectors: { enabled: o.taskVectors },
  });
  const config = parseCopyBiasConfig(raw, o.config ?? 'config');
  const out = path.resolve(o.out);
  const existing = fs.existsSync(out) ? fs.readdirSync(out) : undefined;
  if (existing?.length && !o.force) throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);

  await withModel(id, { device: o.device as never, dtype: o.dtype }, (model, signal) => run(model, signal, id, config, out, existing, o));
}

/** Runs the pipeline and writes DIR through a temporary folder renamed into place at the end. */
async function run(model: Model, signal: AbortSignal, id: string, config: CopyBiasConfig, out: string, existing: string[] | undefined, o: CopyBiasFlags) {
  let stage = '';
  let bar = progressBar('');
  const onProgress = (p: StageProgress) => {
    if (p.stage !== stage) {
      bar.stop();
      stage = p.stage;
      bar = progressBar(p.stage.padEnd(12));
    }
    bar.update(p.done, p.total);
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = stagingDir(out);
  try {
    const started = performance.now();
    const r = await copyBias(model, config, { onProgress, signal });
    bar.stop();
    const { config: modelConfig, ...info } = model.info;
    void modelConfig;
    const meta = { model: id, objective: 'copy', steps: String(config.attribution.steps) };
    await writeAttributions(path.join(tmp, 'attributions.safetensors'), r.attribution, meta);
    await writeNeuronSet(
      path.join(tmp, 'neurons.json'),
      neuronSet(id, r.neurons, { name: 'copybias', objective: 'copy', normalisation: 'per-prompt min-max, mean over prompts', chosen: r.chosen, config }, model.info.neuronSite),
    );
    const evaluation = (e: typeof r.before) => ({ scores: e.scores, mean: e.mean, excludedFromMean: e.excludedFromMean, skipped: e.skipped });
    await writeJson(path.join(tmp, 'results.json'), {
      environment: environment(),
      model: info,
      config,
      proxy: r.proxy,
      attribution: { layers: r.attribution.layers, dMlp: r.attribution.dMlp, rows: r.attribution.rows, ms: Math.round(r.attribution.ms), file: 'attributions.safetensors' },
      selection: {
        baseline: r.baselineDev, constantBaseline: r.constantBaseline, search: r.devSearch, chosen: r.chosen,
        neurons: r.neurons.length, file: 'neurons.json',
        note: r.chosen ? undefined : 'no fraction passed the guard rails (dev accuracy above the best constant answer and fewer dev copy errors than the unpruned model): nothing was pruned',
      },
      evaluation: { before: { ...evaluation(r.before), tasks: r.before.tasks }, after: evaluation(r.after), changes: r.changes, predictions: 'predictions.jsonl' },
      control: r.control.map((c) => ({ seed: c.seed, neurons: c.neurons, after: evaluation(c.after), changes: c.changes })),
      verdicts: r.verdicts,
      taskVectors: r.taskVectors,
      timings: { ...r.timings, total: Math.round(performance.now() - started) },
    });
    const lines = [
      ...r.before.records!.map((x) => JSON.stringify({ condition: 'before', ...x })),
      ...(r.chosen ? r.after.records!.map((x) => JSON.stringify({ condition: 'after', ...x })) : []),
      ...r.control.flatMap((c, d) => c.after.records!.map((x) => JSON.stringify({ condition: `control.${d}`, ...x }))),
    ];
    fs.writeFileSync(path.join(tmp, 'predictions.jsonl'), lines.join('\n') + '\n');
    fs.writeFileSync(path.join(tmp, 'report.html'), copyBiasReport(r, id));
    if (o.saveModel) {
      // The pipeline leaves the model as it found it: prune the chosen set for the saved copy only.
      const pruned = r.neurons.length ? await model.prune(r.neurons, { full: config.selection.full }) : undefined;
      try {
        await model.save(path.join(tmp, 'model'));
      } finally {
        if (pruned) await model.restore(pruned);
      }
    }
    if (existing) fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
    const fmt = (e: typeof r.before) => formatEvalTable(e);
    const tv = r.taskVectors ? `\n\ntask vectors before pruning:\n${formatTaskVectorTable(r.taskVectors.before)}${r.chosen ? `\n\ntask vectors after pruning:\n${formatTaskVectorTable(r.taskVectors.after)}` : ''}` : '';
    const summary = r.chosen
      ? `pruned ${r.neurons.length} neurons (top ${(100 * r.chosen.fraction).toPrecision(3)}% by copying score)\n\nbefore:\n${fmt(r.before)}\n\nafter:\n${fmt(r.after)}\n\n${r.verdicts.map((v) => v.text).join('\n')}\n${summaryLine(r)}`
      : `no fraction passed the guard rails; nothing was pruned\n${r.devSearch.map((p) => `  ${(100 * p.fraction).toPrecision(2)}%: ${p.rejected}`).join('\n')}\n\nICL suite:\n${fmt(r.before)}`;
    process.stdout.write(`${summary}${tv}\n\nreport: ${path.join(out, 'report.html')}\n`);
  } catch (error) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw error;
  } finally {
    bar.stop();
  }
}
