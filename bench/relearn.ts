/**
 * What relearn's tracking costs on top of training:
 *   npm run bench -- relearn [--model models/demo-facts] [--steps 100] [--checkpoint-every 25] [--limit 1000]
 *                            [--site mlp.hook_post] [--measure-texts 64] [--data-dir ../shared/data]
 * Times, on the location concept corpus, (a) the same training steps alone (Model.load and model.train,
 * same batch size, order and schedule: relearn loads its model too), (b) the same with a checkpoint
 * saved every k steps, and (c) one relearn
 * run (probeless ranking, frozen, no random control): measurements before and after pruning and at
 * every checkpoint, saliency, similarity, resumable state. Prints one JSON object; the goal is
 * overhead (c / a - 1) <= 0.15. Wall time is what the goal is about; the process's CPU time (all
 * threads) is printed beside it because on a shared machine it moves less with the other load.
 */
import { Command } from 'commander';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildLocationConcept, environment, Model, relearn } from '../lib';
import { packageRoot } from '../lib/native';

export async function runRelearnBench(argv: string[]): Promise<void> {
  const o = new Command('relearn')
    .option('--model <id>', 'model', path.join(packageRoot(), 'models', 'demo-facts'))
    .option('--steps <n>', 'training steps', (v) => parseInt(v, 10), 100)
    .option('--checkpoint-every <k>', 'steps between checkpoints', (v) => parseInt(v, 10), 25)
    .option('--limit <n>', 'concept texts', (v) => parseInt(v, 10), 1000)
    .option('--site <site>', 'site', 'mlp.hook_post')
    .option('--measure-texts <n>', 'held-out texts each measurement reads (relearn\'s default)', (v) => parseInt(v, 10), 64)
    .option('--data-dir <dir>', 'shared data folder', path.join(packageRoot(), '..', 'shared', 'data'))
    .parse(argv, { from: 'user' })
    .opts();
  const corpus = buildLocationConcept({ dataDir: o.dataDir, seed: 0, limit: o.limit });
  const heldOut = 0.1, batchSize = 16, lr = 1e-3;
  // The texts relearn trains on: all but its held-out measuring texts.
  const held = Math.min(o.measureTexts, Math.max(1, Math.round(corpus.length * heldOut)));
  const train = corpus.slice(held).map((t) => t.text);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'neuroprune-bench-relearn-'));
  try {
    const cpu = { trainOnly: Infinity, relearn: Infinity };
    const time = async (run: () => Promise<unknown>, arm?: keyof typeof cpu) => {
      const t0 = performance.now(), c0 = process.cpuUsage();
      await run();
      const c = process.cpuUsage(c0);
      if (arm) cpu[arm] = Math.min(cpu[arm], (c.user + c.system) / 1e6);
      return (performance.now() - t0) / 1000;
    };
    const trainOnly = async (checkpoint: boolean) => {
      let model!: Model;
      const s = await time(async () => {
        model = await Model.load(o.model);
        await model.train({ samples: train, steps: o.steps, batchSize, lr, maxLength: 128, checkpoint: checkpoint ? { dir: path.join(tmp, 'ckpt'), every: o.checkpointEvery } : undefined });
      }, checkpoint ? undefined : 'trainOnly');
      model.dispose();
      return s;
    };
    // The machine may be shared: each arm runs three times, interleaved, and the fastest run counts.
    let plain = Infinity, withCheckpoints = Infinity, tracked = Infinity, measure = Infinity, save = Infinity;
    for (let rep = 0; rep < 3; rep++) {
      plain = Math.min(plain, await trainOnly(false));
      withCheckpoints = Math.min(withCheckpoints, await trainOnly(true));
      let seconds = { measure: 0, train: 0, save: 0 };
      tracked = Math.min(tracked, await time(async () => {
        const r = await relearn(o.model, { corpus, out: path.join(tmp, 'out'), steps: o.steps, checkpointEvery: o.checkpointEvery, batchSize, lr, heldOut, measureTexts: o.measureTexts, site: o.site, control: false });
        seconds = r.runs[0].seconds;
      }, 'relearn'));
      measure = Math.min(measure, seconds.measure);
      save = Math.min(save, seconds.save);
    }
    process.stdout.write(JSON.stringify({
      bench: 'relearn', model: o.model, site: o.site, steps: o.steps, checkpointEvery: o.checkpointEvery, texts: corpus.length, measureTexts: held, batchSize,
      seconds: { trainOnly: round(plain), trainWithCheckpoints: round(withCheckpoints), relearn: round(tracked), relearnMeasuring: round(measure), relearnSavingState: round(save) },
      cpuSeconds: { trainOnly: round(cpu.trainOnly), relearn: round(cpu.relearn) },
      overhead: { vsTrainOnly: round(tracked / plain - 1), vsTrainWithCheckpoints: round(tracked / withCheckpoints - 1), measuringVsTrainOnly: round(measure / plain), cpuVsTrainOnly: round(cpu.relearn / cpu.trainOnly - 1) },
      goal: 'overhead.vsTrainOnly <= 0.15',
      environment: environment(),
    }, null, 2) + '\n');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
