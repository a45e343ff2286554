/** `neuroprune relearn`: prune a concept's units, retrain, measure its return; progress and Ctrl-C. */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';
import { DType } from '../model';
import { PruneMode, Ranking, relearn } from '../pipelines/relearn';
import { RelearnSite } from '../relearn/tokens';
import { applyWordList, buildLocationConcept, ConceptText, readConceptFile, readWordList } from '../tasks/concept';
import { readCorpus } from '../training';
import { stagedProgress } from './progress';
import { interruptible } from './session';

export interface RelearnFlags {
  corpus?: string;
  concept: string;
  out: string;
  site: RelearnSite;
  pruneFraction: number;
  mode: PruneMode;
  ranking: Ranking;
  steps: number;
  checkpointEvery: number;
  batchSize: number;
  lr: number;
  seed: number;
  saliencyTop: number;
  control: boolean;
  randomDraws: number;
  dataDir: string;
  limit?: number;
  measureTexts: number;
  resume?: boolean;
  force?: boolean;
  device: string;
  dtype: DType;
}

/**
 * The concept corpus from --concept: `spans` (--corpus is JSONL with {"text", "spans"}),
 * `words:FILE` (a word list marked in --corpus, JSONL {"text"}), or `locations` (the shipped
 * location sentences built from --data-dir; no --corpus).
 */
export function conceptCorpus(spec: string, corpus: string | undefined, dataDir: string, seed: number, limit?: number): ConceptText[] {
  const need = () => {
    if (!corpus) throw new NeuropruneError('E_ARG', `--concept ${spec} needs --corpus`);
    return corpus;
  };
  let texts: ConceptText[];
  if (spec === 'spans') texts = readConceptFile(need());
  else if (spec.startsWith('words:')) texts = applyWordList(readCorpus(need()), readWordList(spec.slice(6)));
  else if (spec === 'locations') texts = buildLocationConcept({ dataDir, seed });
  else throw new NeuropruneError('E_ARG', `--concept must be spans, words:FILE or locations, got "${spec}"`);
  return limit ? texts.slice(0, limit) : texts;
}

export async function runRelearn(id: string, o: RelearnFlags): Promise<void> {
  const out = path.resolve(o.out);
  if (!o.resume && !o.force && fs.existsSync(out) && fs.readdirSync(out).length) throw new NeuropruneError('E_ARG', `${out} exists and is not empty (use --force to replace it)`);
  const corpus = conceptCorpus(o.concept, o.corpus, o.dataDir, o.seed, o.limit);
  await interruptible(async (signal) => {
    const bar = stagedProgress(20);
    const r = await relearn(id, {
      corpus, out, site: o.site, ranking: o.ranking, mode: o.mode, pruneFraction: o.pruneFraction, steps: o.steps, checkpointEvery: o.checkpointEvery,
      batchSize: o.batchSize, lr: o.lr, seed: o.seed, saliencyTop: o.saliencyTop, measureTexts: o.measureTexts, control: o.control ? undefined : false, randomDraws: o.randomDraws, resume: o.resume,
      load: { device: o.device as never, dtype: o.dtype }, signal,
      onProgress: (what, done, total) => {
        bar.update(what, done, total);
      },
    });
    bar.stop();
    for (const run of r.runs) {
      process.stdout.write(`\n${run.ranking} pruning${run.draw === undefined ? '' : ` (draw ${run.draw})`} of ${run.pruned.length} units (${o.mode}):\n  step     phase    concept acc  control acc  concept loss  control loss\n`);
      for (const c of run.checkpoints) {
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(11);
        process.stdout.write(`  ${String(c.step).padStart(5)}  ${c.phase.padEnd(8)} ${pct(c.scores.accuracy.concept)}  ${pct(c.scores.accuracy.control)}  ${c.scores.loss.concept.toFixed(3).padStart(12)}  ${c.scores.loss.control.toFixed(3).padStart(12)}\n`);
      }
    }
    if (r.results.control) {
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      process.stdout.write(`\n${r.runs[0].ranking} minus random pruning (mean of ${r.runs.length - 1} draws), concept accuracy [paired 95% interval]:\n`);
      for (const p of r.results.control) {
        const d = p.concept?.difference;
        process.stdout.write(`  ${String(p.step).padStart(5)}  ${p.phase.padEnd(8)} ${d ? `${pct(d.delta).padStart(7)} [${pct(d.low)}, ${pct(d.high)}]` : 'n/a'}\n`);
      }
    }
    process.stdout.write(`\nwrote ${path.join(out, 'results.json')}, neurons.json, saliency.safetensors and report.html\n`);
  });
}
