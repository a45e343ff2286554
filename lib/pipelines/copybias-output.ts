/**
 * The files of a copybias run, written into a folder (the CLI's staging folder, renamed into place
 * afterwards): attributions.safetensors, neurons.json, results.json, predictions.jsonl, report.html,
 * and with `saveModel` the pruned checkpoint in model/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeAttributions, writeJson } from '../attribution';
import { environment } from '../environment';
import type { Model } from '../model';
import { neuronSet, writeNeuronSet } from '../neurons';
import { copyBiasReport } from '../report/copybias';
import type { CopyBiasResult } from './copybias';
import type { CopyBiasConfig } from './copybias-config';

export async function writeCopyBiasOutputs(tmp: string, model: Model, id: string, config: CopyBiasConfig, r: CopyBiasResult, o: { saveModel: boolean; started: number }): Promise<void> {
  const started = o.started;
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
}
