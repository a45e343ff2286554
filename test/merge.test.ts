// Sharded runs end to end through the CLI: N shard processes then `neuroprune merge` write exactly the
// files one unsharded run writes, with byte-identical numbers (attribute, eval, query-neurons,
// circuit); a shard killed with SIGKILL mid-run and resumed loses and repeats nothing; merge refuses
// missing or mismatched shards; staging folders do not outlive the merge.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { mergeShards, readSafetensors } from '../lib';
import { packageRoot } from '../lib/native';
import { plantedData, plantedModel } from './fixtures-qrneuron';
import { tempDir } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');

/** The environment without any scheduler's array variables, so that only --shard decides. */
function cleanEnv(extra: Record<string, string> = {}) {
  const env = { ...process.env, ...extra };
  for (const k of ['SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_COUNT', 'JOB_COMPLETION_INDEX', 'NEUROPRUNE_SHARD_COUNT']) if (!(k in extra)) delete env[k];
  return env;
}

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: cleanEnv(env) });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the shards as concurrent processes; resolves when all exit, failing on a non-zero exit. */
async function shards(N: number, args: (i: number) => string[]) {
  await Promise.all(
    Array.from({ length: N }, (_, i) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [cli, ...args(i)], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() });
        let err = '';
        child.stderr.on('data', (d) => (err += d));
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`shard ${i} exited ${code}: ${err}`))));
      }),
    ),
  );
}

const json = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
/** A JSON output without what differs between runs: timings and the environment. */
function numeric(file: string, drop: string[]) {
  const v = json(file);
  for (const k of ['environment', ...drop]) delete v[k];
  return v;
}

/** The tensors of two safetensors files, byte for byte. */
async function sameTensors(t: { is: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void }, a: string, b: string) {
  const x = await readSafetensors(a), y = await readSafetensors(b);
  t.is(Object.keys(y.tensors).sort().join(), Object.keys(x.tensors).sort().join());
  for (const name of Object.keys(x.tensors)) {
    const p = x.tensors[name] as { data: Uint8Array }, q = y.tensors[name] as { data: Uint8Array };
    t.true(Buffer.from(p.data).equals(Buffer.from(q.data)), `tensor ${name} differs`);
  }
}

const noStaging = (dir: string) => fs.readdirSync(path.dirname(dir)).filter((n) => n.startsWith(`${path.basename(dir)}.tmp-`) || n === `${path.basename(dir)}.partial`);

let dir: string, tiny: string, prompts: string;
test.before(() => {
  dir = tempDir();
  tiny = path.join(dir, 'tiny');
  const r = run(['init', 'gpt2', '--out', tiny, '--layers', '2', '--hidden', '32', '--heads', '4', '--seed', '3']);
  if (r.code !== 0) throw new Error(r.stderr);
  prompts = path.join(dir, 'prompts.jsonl');
  const words = ['cat', 'dog', 'sun', 'tree', 'river', 'stone', 'cloud', 'bird', 'fish', 'moon', 'star', 'leaf', 'rain', 'snow'];
  const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `The ${words[i % 14]} and the ${words[(i * 5 + 3) % 14]}${' is'.repeat(i % 4)} near the`, target: ` ${words[(i * 3 + 1) % 14]}` }));
  fs.writeFileSync(prompts, lines.join('\n') + '\n');
});

const attributeArgs = (out: string, ...more: string[]) => ['attribute', tiny, '--prompts', prompts, '--out', out, '--steps', '6', '--chunk-size', '3', ...more];

test.serial('attribute: 3 shard processes then merge == one unsharded run, byte for byte', async (t) => {
  const whole = path.join(tempDir(), 'whole');
  const one = run(attributeArgs(whole));
  t.is(one.code, 0, one.stderr);
  t.deepEqual(fs.readdirSync(whole).sort(), ['attributions.safetensors', 'summary.json']);
  t.deepEqual(noStaging(whole), []);

  const sharded = path.join(tempDir(), 'sharded');
  await shards(3, (i) => attributeArgs(sharded, '--shard', `${i}/3`));
  t.deepEqual(fs.readdirSync(path.join(sharded, 'shards')).sort(), ['0-of-3', '1-of-3', '2-of-3']);
  t.false(fs.existsSync(path.join(sharded, 'summary.json')), 'a shard writes no final file');
  t.deepEqual(fs.readdirSync(path.join(sharded, 'shards', '1-of-3')).sort(), ['chunk-1.bin', 'chunk-10.bin', 'chunk-13.bin', 'chunk-4.bin', 'chunk-7.bin', 'complete.json', 'manifest.json']);

  const merged = run(['merge', sharded]);
  t.is(merged.code, 0, merged.stderr);
  t.regex(merged.stdout, /merged 3 attribute shards \(14 chunks\)/);
  t.true(fs.readFileSync(path.join(sharded, 'attributions.safetensors')).equals(fs.readFileSync(path.join(whole, 'attributions.safetensors'))), 'attributions.safetensors is the same file');
  await sameTensors(t, path.join(whole, 'attributions.safetensors'), path.join(sharded, 'attributions.safetensors'));
  t.deepEqual(numeric(path.join(sharded, 'summary.json'), ['timing']), numeric(path.join(whole, 'summary.json'), ['timing']));
  t.deepEqual(noStaging(sharded), []);

  // Into another folder, through the API, from the shard folders themselves.
  const elsewhere = path.join(tempDir(), 'elsewhere');
  const r = await mergeShards([0, 1, 2].map((i) => path.join(sharded, 'shards', `${i}-of-3`)), { out: elsewhere });
  t.deepEqual(r.files, ['attributions.safetensors', 'summary.json']);
  t.true(fs.readFileSync(path.join(elsewhere, 'attributions.safetensors')).equals(fs.readFileSync(path.join(whole, 'attributions.safetensors'))));
});

test.serial('attribute: the shard comes from Slurm or Kubernetes variables; a bad one is E_ARG naming it', async (t) => {
  const out = path.join(tempDir(), 'env');
  const slurm = run(attributeArgs(out), { SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_MIN: '6', SLURM_ARRAY_TASK_COUNT: '2' });
  t.is(slurm.code, 0, slurm.stderr);
  t.regex(slurm.stdout, /attribute shard 1\/2 \(from slurm\)/);
  const k8s = run(attributeArgs(out), { JOB_COMPLETION_INDEX: '0', NEUROPRUNE_SHARD_COUNT: '2' });
  t.is(k8s.code, 0, k8s.stderr);
  t.regex(k8s.stdout, /attribute shard 0\/2 \(from kubernetes\)/);
  t.is(run(['merge', out]).code, 0);
  t.true(fs.existsSync(path.join(out, 'attributions.safetensors')));

  const bad = run(attributeArgs(path.join(tempDir(), 'bad')), { JOB_COMPLETION_INDEX: '1' });
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^E_ARG: JOB_COMPLETION_INDEX is set .* NEUROPRUNE_SHARD_COUNT/m);
  const badFlag = run(attributeArgs(path.join(tempDir(), 'bad'), '--shard', '3/3'));
  t.regex(badFlag.stderr, /^E_ARG: --shard must be i\/N/m);
  // --shard 0/1 forces one run whatever the environment says.
  const forced = path.join(tempDir(), 'forced');
  const one = run(attributeArgs(forced, '--shard', '0/1'), { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '4' });
  t.is(one.code, 0, one.stderr);
  t.true(fs.existsSync(path.join(forced, 'attributions.safetensors')));
});

test.serial('attribute: a shard killed with SIGKILL and resumed repeats no chunk, and the merge equals one run', async (t) => {
  const whole = path.join(tempDir(), 'whole');
  const args = (out: string, ...more: string[]) => ['attribute', tiny, '--prompts', prompts, '--out', out, '--steps', '12', '--chunk-size', '1', ...more];
  t.is(run(args(whole)).code, 0);
  const out = path.join(tempDir(), 'killed');
  const shard0 = path.join(out, 'shards', '0-of-2');
  const chunks = () => (fs.existsSync(shard0) ? fs.readdirSync(shard0).filter((n) => /^chunk-\d+\.bin$/.test(n)) : []);
  const child = spawn(process.execPath, [cli, ...args(out, '--shard', '0/2')], { stdio: 'ignore', env: cleanEnv() });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const started = Date.now();
  while (chunks().length < 2 && child.exitCode === null && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 2));
  child.kill('SIGKILL');
  await exited;
  const had = chunks();
  t.true(had.length >= 2 && had.length < 20, `killed after ${had.length} of 20 chunks`);
  t.false(fs.existsSync(path.join(shard0, 'complete.json')));
  const before = new Map(had.map((n) => [n, fs.statSync(path.join(shard0, n))]));

  // Not complete: merge names the shard.
  t.is(run(args(out, '--shard', '1/2')).code, 0);
  const early = run(['merge', out]);
  t.is(early.code, 1);
  t.regex(early.stderr, /E_SHARD: shard 0 of 2 .* is not complete: \d+ of 20 chunks written; rerun it with --shard 0\/2 --resume/);

  const resumed = run(args(out, '--shard', '0/2', '--resume'));
  t.is(resumed.code, 0, resumed.stderr);
  const done = json(path.join(shard0, 'complete.json'));
  t.is(done.resumed, had.length, 'every chunk written before the kill is kept');
  t.is(done.computed, 20 - had.length, 'and none of them is computed again');
  for (const [n, st] of before) {
    const now = fs.statSync(path.join(shard0, n));
    t.is(now.mtimeMs, st.mtimeMs, `${n} was not rewritten`);
    t.is(now.ino, st.ino, `${n} was not replaced`);
  }
  t.is(run(['merge', out]).code, 0);
  t.true(fs.readFileSync(path.join(out, 'attributions.safetensors')).equals(fs.readFileSync(path.join(whole, 'attributions.safetensors'))));

  // Resuming with other settings is E_ARG.
  const other = run(['attribute', tiny, '--prompts', prompts, '--out', out, '--steps', '11', '--chunk-size', '1', '--shard', '0/2', '--resume']);
  t.is(other.code, 1);
  t.regex(other.stderr, /E_ARG: .*other settings/);
});

test.serial('attribute: Ctrl-C stops a shard between chunks with E_ABORTED, keeping what it wrote for --resume', async (t) => {
  const out = path.join(tempDir(), 'interrupted');
  const args = ['attribute', tiny, '--prompts', prompts, '--out', out, '--steps', '12', '--chunk-size', '1', '--shard', '1/2'];
  const shard1 = path.join(out, 'shards', '1-of-2');
  const chunks = () => (fs.existsSync(shard1) ? fs.readdirSync(shard1).filter((n) => /^chunk-\d+\.bin$/.test(n)).length : 0);
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  while (chunks() < 1 && child.exitCode === null) await new Promise((r) => setTimeout(r, 2));
  child.kill('SIGINT');
  const code = await exited;
  if (code === 0) return t.pass('finished before the signal arrived');
  t.is(code, 1);
  t.regex(stderr, /E_ABORTED/);
  t.regex(stderr, /continue with --resume/);
  t.false(fs.existsSync(path.join(shard1, 'complete.json')));
  t.false(fs.readdirSync(shard1).some((n) => n.includes('.tmp-')), 'no half-written chunk');
  const had = chunks();
  const r = run([...args, '--resume']);
  t.is(r.code, 0, r.stderr);
  t.like(json(path.join(shard1, 'complete.json')), { resumed: had, computed: 20 - had });
});

test.serial('attribute: an unsharded run killed with SIGKILL resumes from DIR.partial', async (t) => {
  const out = path.join(tempDir(), 'one');
  const args = ['attribute', tiny, '--prompts', prompts, '--out', out, '--steps', '12', '--chunk-size', '1'];
  const partial = `${out}.partial`;
  const chunks = () => (fs.existsSync(partial) ? fs.readdirSync(partial).filter((n) => /^chunk-\d+\.bin$/.test(n)).length : 0);
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'ignore', env: cleanEnv() });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  while (chunks() < 1 && child.exitCode === null) await new Promise((r) => setTimeout(r, 2));
  child.kill('SIGKILL');
  await exited;
  const had = chunks();
  t.true(had >= 1 && had < 40, `killed after ${had}`);
  t.false(fs.existsSync(out));
  const r = run([...args, '--resume']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`\\(${had} of 40 chunks resumed\\)`));
  t.false(fs.existsSync(partial));
});

test.serial('merge: a missing shard, and shards made with other settings, are E_SHARD naming them', async (t) => {
  const out = path.join(tempDir(), 'missing');
  t.is(run(attributeArgs(out, '--shard', '0/3')).code, 0);
  t.is(run(attributeArgs(out, '--shard', '2/3')).code, 0);
  const missing = run(['merge', out]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^E_SHARD: shard 1 of 3 missing .*1-of-3/m);
  t.false(fs.existsSync(path.join(out, 'summary.json')));

  const other = path.join(tempDir(), 'other');
  t.is(run(['attribute', tiny, '--prompts', prompts, '--out', other, '--steps', '5', '--chunk-size', '3', '--shard', '1/3']).code, 0);
  const mixed = run(['merge', path.join(out, 'shards', '0-of-3'), path.join(other, 'shards', '1-of-3'), path.join(out, 'shards', '2-of-3'), '--out', path.join(tempDir(), 'x')]);
  t.is(mixed.code, 1);
  t.regex(mixed.stderr, /^E_SHARD: shard 1 of 3 .* other settings .*: run\.options\.steps is 5 there, 6 here/m);
  const chunkSize = path.join(tempDir(), 'chunks');
  t.is(run(['attribute', tiny, '--prompts', prompts, '--out', chunkSize, '--steps', '6', '--chunk-size', '4', '--shard', '1/3']).code, 0);
  const sized = run(['merge', path.join(out, 'shards', '0-of-3'), path.join(chunkSize, 'shards', '1-of-3'), path.join(out, 'shards', '2-of-3'), '--out', path.join(tempDir(), 'y')]);
  t.regex(sized.stderr, /^E_SHARD: .*chunks\.size is 4 there, 3 here/m);
});

test.serial('eval: 3 shard processes then merge == one unsharded run', async (t) => {
  const args = (out: string, ...more: string[]) => ['eval', tiny, '--tasks', 'vowel_count', '--shots', '0,2', '--n', '9', '--batch-size', '4', '--out', out, ...more];
  const whole = path.join(tempDir(), 'whole');
  const one = run(args(whole));
  t.is(one.code, 0, one.stderr);
  const sharded = path.join(tempDir(), 'sharded');
  await shards(3, (i) => args(sharded, '--shard', `${i}/3`));
  t.false(fs.existsSync(path.join(sharded, 'results.json')));
  const merged = run(['merge', sharded]);
  t.is(merged.code, 0, merged.stderr);
  t.regex(merged.stdout, /merged 3 eval shards \(5 chunks\)/);
  const a = numeric(path.join(whole, 'results.json'), ['ms']), b = numeric(path.join(sharded, 'results.json'), ['ms']);
  t.is(b.records.length, 18);
  t.deepEqual(b, a);
  t.deepEqual(noStaging(sharded), []);
  // --resume after losing a chunk computes that chunk only, and the merge is unchanged.
  const shard1 = path.join(sharded, 'shards', '1-of-3');
  fs.rmSync(path.join(shard1, 'chunk-1.bin'));
  fs.rmSync(path.join(shard1, 'complete.json'));
  t.is(run(args(sharded, '--shard', '1/3', '--resume')).code, 0);
  t.like(json(path.join(shard1, 'complete.json')), { computed: 1, resumed: 1, chunks: [1, 4] });
  t.is(run(['merge', sharded]).code, 0);
  t.deepEqual(numeric(path.join(sharded, 'results.json'), ['ms']), a);
  const noOut = run(['eval', tiny, '--tasks', 'vowel_count', '--shard', '0/2']);
  t.regex(noOut.stderr, /^E_ARG: a sharded eval .* needs --out/m);
});

test.serial('query-neurons: 3 shard processes then merge (which finishes the pipeline) == one unsharded run', async (t) => {
  const qdir = tempDir();
  const model = await plantedModel(path.join(qdir, 'planted'));
  const data = plantedData(path.join(qdir, 'planted.json'));
  const args = (out: string, ...more: string[]) => ['query-neurons', model, '--data', data, '--out', out, '--steps', '6', ...more];
  const whole = path.join(tempDir(), 'whole');
  const one = run(args(whole));
  t.is(one.code, 0, one.stderr);
  const sharded = path.join(tempDir(), 'sharded');
  await shards(3, (i) => args(sharded, '--shard', `${i}/3`));
  t.deepEqual(fs.readdirSync(sharded), ['shards']);
  const merged = run(['merge', sharded]);
  t.is(merged.code, 0, merged.stderr);
  t.deepEqual(fs.readdirSync(sharded).sort(), ['attributions.safetensors', 'neurons', 'report.html', 'results.json', 'shards']);
  const a = numeric(path.join(whole, 'results.json'), ['timings']), b = numeric(path.join(sharded, 'results.json'), ['timings']);
  t.deepEqual(b, a);
  t.is(json(path.join(sharded, 'results.json')).timings.attributedItems, 0, 'merge attributes nothing again');
  t.true(fs.readFileSync(path.join(sharded, 'attributions.safetensors')).equals(fs.readFileSync(path.join(whole, 'attributions.safetensors'))));
  t.deepEqual(fs.readdirSync(path.join(sharded, 'neurons')).sort(), fs.readdirSync(path.join(whole, 'neurons')).sort());
  t.deepEqual(noStaging(sharded), []);
});

test.serial('circuit: 3 shard processes then merge (which finishes the pipeline) == one unsharded run', async (t) => {
  // The tiny random model on subjects of three lengths (three length groups, one a chunk), every fact
  // counted as known (knownTopK above the vocabulary).
  const cdir = tempDir();
  const relation = path.join(cdir, 'relation.json');
  const subjects = ['ab', 'cd', 'ef', 'gh', 'ij', 'kl', 'mno', 'pqr', 'stu', 'vwx', 'yza', 'bcd', 'efgh', 'ijkl', 'mnop', 'qrst', 'uvwx', 'yzab'];
  fs.writeFileSync(relation, JSON.stringify({
    name: 'toy', prompt_templates: ['{} is'], prompt_templates_zs: ['{} is'],
    samples: subjects.map((s, i) => ({ subject: s, object: ' ' + 'XYZW'[i % 4] })),
  }));
  const config = path.join(cdir, 'circuit.json');
  fs.writeFileSync(config, JSON.stringify({ knownTopK: 1000 }));
  const args = (out: string, ...more: string[]) => ['circuit', tiny, '--relation', relation, '--config', config, '--out', out, '--top-n', '5', '--random-draws', '2', '--steps', '3', ...more];
  const whole = path.join(tempDir(), 'whole');
  const one = run(args(whole));
  t.is(one.code, 0, one.stderr);
  const sharded = path.join(tempDir(), 'sharded');
  await shards(3, (i) => args(sharded, '--shard', `${i}/3`));
  const manifest = json(path.join(sharded, 'shards', '0-of-3', 'manifest.json'));
  t.is(manifest.chunks.total, 3, 'three length groups');
  t.false(fs.existsSync(path.join(sharded, 'circuit.json')));
  const merged = run(['merge', sharded]);
  t.is(merged.code, 0, merged.stderr);
  const a = numeric(path.join(whole, 'circuit.json'), ['timings']), b = numeric(path.join(sharded, 'circuit.json'), ['timings']);
  for (const v of [a, b]) delete v.scoring?.ms, delete v.scoring?.resumedGroups;
  t.deepEqual(b, a);
  t.is(json(path.join(sharded, 'circuit.json')).scoring.resumedGroups, 3, 'merge scores no group again');
  await sameTensors(t, path.join(whole, 'edges.safetensors'), path.join(sharded, 'edges.safetensors'));
  t.deepEqual(noStaging(sharded), []);
});

test.serial('copybias: 3 shard processes of the attribution stage then merge (which finishes the pipeline) == one unsharded run', async (t) => {
  const args = (out: string, ...more: string[]) => [
    'copybias', tiny, '--out', out, '--attribution-prompts', '12', '--dev-prompts', '8', '--steps', '3', '--chunk-size', '2',
    '--fractions', '0.05', '--tasks', 'vowel_count', '--shots', '1', '--n', '6', '--draws', '1', ...more,
  ];
  const whole = path.join(tempDir(), 'whole');
  const one = run(args(whole));
  t.is(one.code, 0, one.stderr);
  const sharded = path.join(tempDir(), 'sharded');
  await shards(3, (i) => args(sharded, '--shard', `${i}/3`));
  t.deepEqual(fs.readdirSync(sharded), ['shards']);
  const merged = run(['merge', sharded]);
  t.is(merged.code, 0, merged.stderr);
  t.deepEqual(fs.readdirSync(sharded).sort(), [...fs.readdirSync(whole), 'shards'].sort());
  const a = numeric(path.join(whole, 'results.json'), ['timings']), b = numeric(path.join(sharded, 'results.json'), ['timings']);
  for (const v of [a, b]) delete v.attribution.ms;
  t.deepEqual(b, a);
  t.true(fs.readFileSync(path.join(sharded, 'attributions.safetensors')).equals(fs.readFileSync(path.join(whole, 'attributions.safetensors'))));
  t.deepEqual(json(path.join(sharded, 'neurons.json')).neurons, json(path.join(whole, 'neurons.json')).neurons);
  t.is(fs.readFileSync(path.join(sharded, 'predictions.jsonl'), 'utf8'), fs.readFileSync(path.join(whole, 'predictions.jsonl'), 'utf8'));
});
