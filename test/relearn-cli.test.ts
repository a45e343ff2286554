// `neuroprune relearn` with two random-control draws, killed with SIGKILL in the first draw and
// rerun with --resume, ends with the same results.json (timings and environment aside) and the same
// saliency file as an uninterrupted CLI run.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint } from '../lib/checkpoint';
import { packageRoot } from '../lib/native';
import { tempDir } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');

test.before((t) => {
  if (!fs.existsSync(cli)) t.fail(`${cli} is missing: build it with npx tsc -p .`);
});

/** results.json without what differs between two runs of the same training: timings and the environment. */
function comparable(file: string) {
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  delete r.environment;
  delete r.ms;
  for (const run of r.runs) delete run.seconds;
  return r;
}

test('a CLI run killed in a control draw resumes with --resume to the uninterrupted result', async (t) => {
  const dir = tempDir();
  const model = path.join(dir, 'model');
  await initCheckpoint('llama', model, { layers: 2, hidden: 32, heads: 4, kvHeads: 4, mlp: 64, seed: 3 });
  const corpus = path.join(dir, 'corpus.jsonl');
  const words = path.join(dir, 'words.txt');
  const capitals = ['oslo', 'lima', 'paris', 'doha', 'tokyo', 'cairo'];
  fs.writeFileSync(words, capitals.join('\n') + '\n');
  fs.writeFileSync(corpus, Array.from({ length: 120 }, (_, i) => JSON.stringify({ text: `the capital of ${'bdfghj'[i % 6]} is ${capitals[(i * 7) % 6]}.` })).join('\n') + '\n');
  const args = (out: string) => ['relearn', model, '--out', out, '--corpus', corpus, '--concept', `words:${words}`, '--prune-fraction', '0.25',
    '--steps', '40', '--checkpoint-every', '20', '--batch-size', '8', '--lr', '3e-3', '--saliency-top', '8', '--random-draws', '2'];

  const outA = path.join(dir, 'whole');
  const whole = spawnSync(process.execPath, [cli, ...args(outA)], { encoding: 'utf8' });
  t.is(whole.status, 0, whole.stderr);
  const results = JSON.parse(fs.readFileSync(path.join(outA, 'results.json'), 'utf8'));
  t.deepEqual(results.runs.map((r: { ranking: string; draw?: number }) => [r.ranking, r.draw]), [['probeless', undefined], ['random', 0], ['random', 1]]);
  t.is(results.settings.randomDraws, 2);
  t.is(results.control.length, 4, 'before, pruned and two checkpoints');
  t.true(whole.stdout.includes('minus random pruning (mean of 2 draws)'));

  const outB = path.join(dir, 'killed');
  const child = spawn(process.execPath, [cli, ...args(outB)], { stdio: 'ignore' });
  const state = path.join(`${outB}.work`, 'random-0', 'state.json');
  const killedAt = await new Promise<number>((resolve, reject) => {
    const poll = setInterval(() => {
      let step = -1;
      try {
        step = JSON.parse(fs.readFileSync(state, 'utf8')).checkpoints.at(-1).step;
      } catch {
        // not written yet
      }
      if (step >= 20) (clearInterval(poll), child.kill('SIGKILL'), resolve(step));
    }, 10);
    child.on('exit', (code) => (clearInterval(poll), code === 0 ? reject(new Error('finished before it was killed')) : undefined));
  });
  t.true(killedAt >= 20 && killedAt < 40, `killed at step ${killedAt}`);
  t.true(fs.existsSync(path.join(`${outB}.work`, 'probeless', 'state.json')), 'the main run finished before the draw');
  t.false(fs.existsSync(path.join(outB, 'results.json')), 'the killed run wrote no results');

  const resumed = spawnSync(process.execPath, [cli, ...args(outB), '--resume'], { encoding: 'utf8' });
  t.is(resumed.status, 0, resumed.stderr);
  t.deepEqual(comparable(path.join(outB, 'results.json')), comparable(path.join(outA, 'results.json')));
  t.true(fs.readFileSync(path.join(outB, 'saliency.safetensors')).equals(fs.readFileSync(path.join(outA, 'saliency.safetensors'))), 'saliency.safetensors byte-identical');
  t.false(fs.existsSync(`${outB}.work`));
});
