// A real scheduler: starts a single-node Slurm from Debian's packages (scripts/slurm-local.sh), submits
// examples/slurm/submit.sh as it is (an array job of 3 shards and the merge that depends on it) on a
// tiny model, and checks that the merged files equal one unsharded process's: every tensor byte for
// byte, every field of summary.json but the timing. Skips, with the script's reason, where Slurm
// cannot start (not root, packages missing, daemons refused by the container).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensors } from '../lib/checkpoint';
import { packageRoot } from '../lib/native';
import { tempDir, tinyGpt2 } from './helpers';

const root = packageRoot();
const cli = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const slurmScript = path.join(root, 'scripts', 'slurm-local.sh');
const submitScript = path.join(root, 'examples', 'slurm', 'submit.sh');
// The whole test (submission to merged files) must not take longer; a job still running then is
// cancelled and the test fails with the logs.
const JOB_TIMEOUT_MS = 120_000;

type Slurm = { conf: string; ours: boolean } | { skip: string } | { error: string };

/** Starts the local Slurm (or finds it running); decided when the file loads, so a skip shows as one. */
function startSlurm(): Slurm {
  // Never installs packages from a test: .ci/run does that, as root.
  const env = { ...process.env, NEUROPRUNE_SLURM_INSTALL: '0' };
  const running = spawnSync('bash', [slurmScript, 'status'], { env, encoding: 'utf8', timeout: 30_000 }).status === 0;
  const r = spawnSync('bash', [slurmScript, 'start'], { env, encoding: 'utf8', timeout: 180_000 });
  const conf = /^export SLURM_CONF=(.+)$/m.exec(r.stdout ?? '')?.[1];
  if (r.status === 0 && conf) return { conf, ours: !running };
  const reason = (r.stderr ?? '').split('\n').filter((l) => l.includes('cannot start here')).pop()?.replace(/^\[slurm-local\] /, '');
  if (r.status === 77) return { skip: reason ?? 'scripts/slurm-local.sh exited 77' };
  return { error: `scripts/slurm-local.sh exited ${r.status ?? r.signal}: ${r.stderr}` };
}

const slurm = startSlurm();
const slurmEnv = 'conf' in slurm ? { ...process.env, SLURM_CONF: slurm.conf } : process.env;

/** Runs a Slurm client command (squeue, scontrol, scancel) against the local Slurm. */
function client(cmd: string, ...args: string[]) {
  return spawnSync(cmd, args, { env: slurmEnv, encoding: 'utf8', timeout: 30_000 });
}

/** The job's state (COMPLETED, PENDING, ...) from scontrol; '' once Slurm has forgotten the job. */
function jobState(id: string): string {
  const r = client('scontrol', '-o', 'show', 'job', id);
  return /JobState=(\S+)/.exec(r.stdout ?? '')?.[1] ?? '';
}

function runCli(env: Record<string, string>, ...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
}

/** What is left to compare in summary.json: every number and setting, not the wall-clock time. */
function comparable(summary: Record<string, unknown>): Record<string, unknown> {
  const { timing, ...rest } = summary;
  return rest;
}

function logs(dir: string): string {
  if (!fs.existsSync(dir)) return '(no logs)';
  return fs.readdirSync(dir).map((f) => `--- ${f}\n${fs.readFileSync(path.join(dir, f), 'utf8')}`).join('\n');
}

if ('skip' in slurm) {
  console.log(`# Slurm tests skipped: ${slurm.skip}`);
  test.skip(`Slurm array job and merge (skipped: ${slurm.skip})`, () => {});
} else if ('error' in slurm) {
  test('the local Slurm starts', (t) => t.fail(slurm.error));
} else {
  test.after.always(() => {
    if (slurm.ours) spawnSync('bash', [slurmScript, 'stop'], { encoding: 'utf8', timeout: 60_000 });
  });

  test.serial('Slurm: the example array job (3 shards) and its dependent merge equal one unsharded run', async (t) => {
    t.timeout(JOB_TIMEOUT_MS + 60_000);
    const model = await tinyGpt2();
    const work = tempDir('neuroprune-slurm-');
    // The example as it is, with only MODEL and OUT set (and the checkout's build as the command): it
    // makes its 36 prompts from ../shared/data into OUT/prompts.jsonl, three chunks at the default
    // chunk size (16), one per shard.
    const out = path.join(work, 'sharded');
    const prompts = path.join(out, 'prompts.jsonl');
    const submit = spawnSync('bash', [submitScript], {
      cwd: work,
      env: { ...slurmEnv, MODEL: model, OUT: out, NEUROPRUNE: `${process.execPath} ${cli}` },
      encoding: 'utf8',
      timeout: 60_000,
    });
    t.is(submit.status, 0, submit.stderr);
    const arrayJob = /^attribute array job: (\d+)/m.exec(submit.stdout)?.[1];
    const mergeJob = /^merge job: (\d+)/m.exec(submit.stdout)?.[1];
    if (!arrayJob || !mergeJob) return t.fail(`no job ids in submit.sh's output: ${submit.stdout}`);
    t.teardown(() => void client('scancel', arrayJob, mergeJob));

    // Waits for the merge job to end: it starts only after every array task succeeded.
    const deadline = Date.now() + JOB_TIMEOUT_MS;
    let state = jobState(mergeJob);
    while (Date.now() < deadline && !['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'BOOT_FAIL', 'DEADLINE', ''].includes(state)) {
      await new Promise((r) => setTimeout(r, 1000));
      state = jobState(mergeJob);
    }
    if (state !== 'COMPLETED') {
      const queue = client('squeue', '-j', `${arrayJob},${mergeJob}`).stdout;
      return t.fail(`merge job ${mergeJob} ended ${state || 'unknown'} (queue:\n${queue})\n${logs(path.join(out, 'logs'))}`);
    }

    t.is(fs.readFileSync(prompts, 'utf8').trim().split('\n').length, 36);
    // One process, no shards: the reference, with the thread count of the array's tasks
    // (attribute.sbatch: the task's CPUs, 1 here): the thread count changes float sums.
    const single = path.join(work, 'single');
    const ref = runCli({ OMP_NUM_THREADS: '1' }, 'attribute', model, '--prompts', prompts, '--out', single);
    t.is(ref.status, 0, ref.stderr);

    // Three shards were written, each complete; the merge wrote the unsharded run's files.
    const shards = fs.readdirSync(path.join(out, 'shards')).sort();
    t.deepEqual(shards, ['0-of-3', '1-of-3', '2-of-3']);
    for (const s of shards) t.true(fs.existsSync(path.join(out, 'shards', s, 'complete.json')), `${s} has no complete.json`);

    const a = await readSafetensors(path.join(single, 'attributions.safetensors'));
    const b = await readSafetensors(path.join(out, 'attributions.safetensors'));
    t.deepEqual(Object.keys(b.tensors).sort(), Object.keys(a.tensors).sort());
    t.deepEqual(b.metadata, a.metadata);
    for (const [name, x] of Object.entries(a.tensors)) {
      const y = b.tensors[name];
      t.deepEqual([y.dtype, y.shape], [x.dtype, x.shape], name);
      t.true(y.data.equals(x.data), `${name}: the merged bytes differ from the unsharded run's`);
    }
    const sa = JSON.parse(fs.readFileSync(path.join(single, 'summary.json'), 'utf8'));
    const sb = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    t.deepEqual(comparable(sb), comparable(sa));
  });
}
