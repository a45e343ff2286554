// Files a stranger could hand us in a model folder: FIFOs and devices, folders where files belong,
// symlinks out of the folder. Each is refused with a code naming the file, quickly, and the process
// carries on.
import test from 'ava';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Model, readSafetensors } from '../lib';
import { copyDir, tempDir, tinyGpt2 } from './helpers';

let dir: string;
test.before(async () => {
  dir = await tinyGpt2();
});

/** Replaces `name` in a copy of the model folder by what `make` puts at that path. */
function withReplaced(name: string, make: (file: string) => void): string {
  const copy = copyDir(dir);
  fs.rmSync(path.join(copy, name));
  make(path.join(copy, name));
  return copy;
}

async function refused(t: any, folder: string, code: string, message: RegExp) {
  const started = Date.now();
  const e = await t.throwsAsync(Model.load(folder));
  t.is(e.code, code);
  t.regex(e.message, message);
  t.true(Date.now() - started < 5000, 'refused quickly, not after a hang');
}

for (const [name, code] of [['config.json', 'E_CONFIG'], ['model.safetensors', 'E_CHECKPOINT']] as const) {
  test(`a FIFO as ${name} is ${code}, without waiting for a writer`, async (t) => {
    await refused(t, withReplaced(name, (f) => execFileSync('mkfifo', [f])), code, new RegExp(`${name.replace('.', '\\.')}: not a regular file`));
  });
  test(`/dev/zero linked as ${name} is ${code}`, async (t) => {
    // The link leaves the folder, and /dev/zero is no regular file: either reason is a refusal.
    await refused(t, withReplaced(name, (f) => fs.symlinkSync('/dev/zero', f)), code, new RegExp(`${name.replace('.', '\\.')}: (not a regular file|resolves to /dev/zero, outside the model folder)`));
  });
  test(`a folder as ${name} is ${code}`, async (t) => {
    await refused(t, withReplaced(name, (f) => fs.mkdirSync(f)), code, /not a regular file/);
  });
  test(`${name} linked to a file outside the model folder is ${code}`, async (t) => {
    const outside = path.join(tempDir(), name);
    fs.copyFileSync(path.join(dir, name), outside);
    await refused(t, withReplaced(name, (f) => fs.symlinkSync(outside, f)), code, /outside the model folder/);
  });
}

test('symlinks inside the model folder load as before', async (t) => {
  const copy = copyDir(dir);
  fs.mkdirSync(path.join(copy, 'blobs'));
  for (const name of ['config.json', 'model.safetensors']) {
    fs.renameSync(path.join(copy, name), path.join(copy, 'blobs', name));
    fs.symlinkSync(path.join('blobs', name), path.join(copy, name));
  }
  const model = await Model.load(copy);
  t.is(model.info.nLayers, 2);
  model.dispose();
});

test('an HF cache snapshot whose files link into the repo blobs/ loads', async (t) => {
  const home = tempDir();
  const repo = path.join(home, 'hub', 'models--org--linked');
  const snapshot = path.join(repo, 'snapshots', 'rev1');
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.mkdirSync(snapshot, { recursive: true });
  for (const name of fs.readdirSync(dir)) {
    fs.copyFileSync(path.join(dir, name), path.join(repo, 'blobs', `blob-${name}`));
    fs.symlinkSync(path.join('..', '..', 'blobs', `blob-${name}`), path.join(snapshot, name));
  }
  const model = await Model.load(snapshot);
  t.is(model.info.nLayers, 2);
  model.dispose();
  t.true('transformer.wte.weight' in (await readSafetensors(path.join(snapshot, 'model.safetensors'))).tensors);
});

test('a FIFO as tokenizer.json is E_TOKENIZER, without waiting for a writer', async (t) => {
  await refused(t, withReplaced('tokenizer.json', (f) => execFileSync('mkfifo', [f])), 'E_TOKENIZER', /tokenizer\.json: not a regular file/);
});

test('tokenizer.json linked to a file outside the model folder is E_TOKENIZER', async (t) => {
  const outside = path.join(tempDir(), 'tokenizer.json');
  fs.copyFileSync(path.join(dir, 'tokenizer.json'), outside);
  await refused(t, withReplaced('tokenizer.json', (f) => fs.symlinkSync(outside, f)), 'E_TOKENIZER', /outside the model folder/);
});

test('save never copies a side file that links outside the source folder', async (t) => {
  const secret = path.join(tempDir(), 'secret.txt');
  fs.writeFileSync(secret, 'not yours\n');
  const copy = copyDir(dir);
  fs.symlinkSync(secret, path.join(copy, 'merges.txt'));
  const model = await Model.load(copy);
  const out = path.join(tempDir(), 'saved');
  const e: any = await t.throwsAsync(model.save(out));
  t.is(e.code, 'E_CHECKPOINT');
  t.regex(e.message, /merges\.txt: resolves to .*outside the model folder/);
  t.false(fs.existsSync(out), 'nothing written');
  t.deepEqual(fs.readdirSync(path.dirname(out)), [], 'no temporary folder left');
  model.dispose();
});

test('an HF cache refs/main that is a path, not a revision, is refused', async (t) => {
  const home = tempDir();
  const repo = path.join(home, 'hub', 'models--org--escape');
  fs.mkdirSync(path.join(repo, 'snapshots', 'rev1'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'refs'));
  fs.writeFileSync(path.join(repo, 'refs', 'main'), '../..\n');
  const before = process.env.HF_HOME;
  process.env.HF_HOME = home;
  try {
    const e: any = await t.throwsAsync(Model.load('org/escape'));
    t.is(e.code, 'E_NOT_FOUND');
    t.regex(e.message, /refs\/main: "\.\.\/\.\." is not a revision name/);
  } finally {
    if (before === undefined) delete process.env.HF_HOME;
    else process.env.HF_HOME = before;
  }
});

// Arguments that reached the core truncated, wrapped or read as 0 (silent wrong answers), and
// argument shapes that threw plain TypeErrors: each is now a NeuropruneError naming the field.
test('bad API arguments get a coded error naming the field', async (t) => {
  const model = await Model.load(dir);
  const prompt = [1, 2, 3];
  const cases: Array<[string, () => Promise<unknown>, string, RegExp]> = [
    ['target NaN', () => model.attribute({ prompts: [{ prompt, target: [NaN] }] }), 'E_ARG', /prompts\[0\]\.target\[0\] = NaN/],
    ['target 1.5', () => model.attribute({ prompts: [{ prompt, target: [1.5] }] }), 'E_ARG', /target\[0\] = 1\.5/],
    ['a token id of 2^32 + 1', () => model.logits([2 ** 32 + 1]), 'E_RANGE', /4294967297: token id outside the vocabulary \[0, 257\)/],
    ['a negative token id in a prompt', () => model.attribute({ prompts: [{ prompt: [1, -1], target: [2] }] }), 'E_RANGE', /prompts\[0\]\.prompt\[1\] = -1/],
    ['layers [NaN]', () => model.attribute({ prompts: [{ prompt, target: [4] }], layers: [NaN] }), 'E_ARG', /layers\[0\] = NaN: a layer must be an integer/],
    ["layers ['1']", () => model.attribute({ prompts: [{ prompt, target: [4] }], layers: ['1' as never] }), 'E_ARG', /layers\[0\] = "1"/],
    ['a layer listed twice', () => model.activations(prompt, { layers: [1, 1] }), 'E_RANGE', /listed twice/],
    ['memoryBudgetMB Infinity', () => model.attribute({ prompts: [{ prompt, target: [4] }], memoryBudgetMB: Infinity }), 'E_ARG', /memoryBudgetMB must be a number in \(0, 1048576\], got Infinity/],
    ['steps 1e15', () => model.attribute({ prompts: [{ prompt, target: [4] }], steps: 1e15 }), 'E_ARG', /steps must be an integer in \[1, 10000\]/],
    ['prompts that are not an array', () => model.attribute({ prompts: 'abc' as never }), 'E_ARG', /prompts must be a non-empty array/],
    ['a null prompt', () => model.attribute({ prompts: [null as never] }), 'E_ARG', /prompts\[0\] must be an object/],
    ['logits(null)', () => model.logits(null as never), 'E_ARG', /input must be text/],
    ['prune(null)', () => model.prune(null as never), 'E_ARG', /neurons must be an array/],
    ['an input longer than the context', () => model.logits(new Array(1025).fill(1)), 'E_RANGE', /1025 tokens is longer than the model's context of 1024/],
  ];
  for (const [what, call, code, message] of cases) {
    const e: any = await t.throwsAsync(call(), undefined, what);
    t.is(e?.code, code, what);
    t.regex(e?.message ?? '', message, what);
  }
  t.is((await model.logits(prompt)).shape[1], 3, 'the model still works');
  model.dispose();
});

test('an exception thrown in onProgress stops the attribution and is what it rejects with', async (t) => {
  const model = await Model.load(dir);
  let calls = 0;
  const boom = new Error('from onProgress');
  const e = await t.throwsAsync(
    model.attribute({
      prompts: [{ prompt: [1, 2, 3], target: [4] }], steps: 8, memoryBudgetMB: 0.05,
      onProgress: () => {
        calls++;
        throw boom;
      },
    }),
  );
  t.is(e, boom);
  t.is(calls, 1, 'not called again after it threw');
  t.is((await model.logits([1, 2])).shape[1], 2);
  model.dispose();
});

test('Llama and NeoX report their context, and generation is bounded by it', async (t) => {
  for (const preset of ['random:llama-tiny', 'random:pythia-tiny']) {
    const model = await Model.load(preset);
    t.true(model.info.maxPositions > 0, `${preset}: maxPositions ${model.info.maxPositions}`);
    const e: any = await t.throwsAsync(model.generate('ab', { maxNewTokens: 1e9 }));
    t.is(e.code, 'E_RANGE');
    model.dispose();
  }
});

test('the README documents every error code the library and the CLI can give', (t) => {
  const root = path.join(__dirname, '..');
  const union = fs.readFileSync(path.join(root, 'lib', 'errors.ts'), 'utf8');
  const codes = [...union.matchAll(/\| '(E_[A-Z_]+)'/g)].map((m) => m[1]);
  t.true(codes.length >= 20);
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const table = readme.split('\n').filter((l) => /^\| `E_/.test(l)).join('\n');
  for (const code of codes) t.true(table.includes(`\`${code}\``), `${code} is in the README's code table`);
});

test('CLI attribute refuses an --out that is a file before computing', (t) => {
  const out = path.join(tempDir(), 'taken');
  fs.writeFileSync(out, 'x');
  const prompts = path.join(tempDir(), 'p.jsonl');
  fs.writeFileSync(prompts, JSON.stringify({ prompt: 'abc', target: 'd' }) + '\n');
  const cli = path.join(__dirname, '..', 'dist', 'lib', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [cli, 'attribute', dir, '--prompts', prompts, '--out', out], { encoding: 'utf8' });
  t.is(r.status, 1);
  t.regex(r.stderr, /^E_ARG: --out .*taken exists and is not a folder/);
});

test.serial('an abort settles within one layer of work, even when the whole run is one micro-batch', async (t) => {
  const model = await Model.load('random:gpt2-small');
  const ids = (seed: number) => Array.from({ length: 64 }, (_, i) => (i * 7919 + seed) % 256);
  const options = { prompts: [0, 1, 2].map((s) => ({ prompt: ids(s), target: [5] })), steps: 20 };
  const started = performance.now();
  const full = await model.attribute(options);
  const fullMs = performance.now() - started;
  t.is(full.microBatches, 1, 'the default budget holds the whole run');
  // Early (in the forward pass) and later (in the backward pass); a run that beats its abort (the
  // machine got faster) is tried again with an earlier abort.
  for (const start of [0.15, 0.55]) {
    for (let fraction = start, attempt = 0; ; fraction *= 0.7, attempt++) {
      const delay = fullMs * fraction;
      const controller = new AbortController();
      setTimeout(() => controller.abort(), delay);
      const begin = performance.now();
      const outcome: any = await model.attribute({ ...options, signal: controller.signal }).then(() => undefined, (e) => e);
      const settled = performance.now() - begin - delay;
      if (outcome === undefined && attempt < 5) continue;
      t.is(outcome?.code, 'E_ABORTED');
      t.log(`full run ${fullMs.toFixed(0)} ms; abort at ${delay.toFixed(0)} ms settled ${settled.toFixed(0)} ms later (${outcome?.message})`);
      t.true(settled < Math.max(0.25 * fullMs, 300), `settled ${settled.toFixed(0)} ms after the abort`);
      break;
    }
  }
  const again = await model.attribute(options);
  t.deepEqual(Array.from(again.prompts[0].scores.subarray(0, 50)), Array.from(full.prompts[0].scores.subarray(0, 50)), 'the model is as it was');
  model.dispose();
});

/** A copy of the model whose tokenizer.json is edited by `edit`. */
function withTokenizer(edit: (json: any) => void): string {
  const copy = copyDir(dir);
  const file = path.join(copy, 'tokenizer.json');
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json));
  return copy;
}

test('a 50 MB one-line prompt is E_RANGE before tokenizing (it exhausted the V8 heap)', async (t) => {
  const model = await Model.load(dir);
  const e: any = await t.throwsAsync(model.logits('x'.repeat(50 << 20)));
  t.is(e.code, 'E_RANGE');
  t.regex(e.message, /52428800 characters is longer than the 4000000 a prompt may have/);
  t.is((await model.logits('ok')).shape[1], 2);
  model.dispose();
});

test('a backtracking pre-tokenizer pattern gives E_TOKENIZER within its time limit instead of hanging', async (t) => {
  const copy = withTokenizer((j) => {
    j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '^(a+)+$' }, behavior: 'Isolated', invert: false }, j.pre_tokenizer] };
  });
  const model = await Model.load(copy);
  t.deepEqual(model.tokenizer.encode('aab').length, 3, 'ordinary text still encodes');
  const started = Date.now();
  const e: any = t.throws(() => model.tokenizer.encode('a'.repeat(40) + 'b'));
  t.is(e.code, 'E_TOKENIZER');
  t.regex(e.message, /tokenizer\.json: tokenizing a text of 41 characters took more than 2001 ms/);
  t.true(Date.now() - started < 10_000);
  model.dispose();
});

test('a post-processor missing its fields is E_TOKENIZER at load, not a TypeError at every call', async (t) => {
  const copy = withTokenizer((j) => {
    j.post_processor = { type: 'TemplateProcessing' };
  });
  const e: any = await t.throwsAsync(Model.load(copy));
  t.is(e.code, 'E_TOKENIZER');
  t.regex(e.message, /tokenizer\.json: (cannot build the tokenizer|tokenizing a text of \d+ characters failed)/);
});

test('staging folders of killed runs are removed by the next run into that folder; a live one is kept', async (t) => {
  const base = tempDir();
  const out = path.join(base, 'saved');
  // A PID that no longer runs: a child that has exited.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout.trim();
  fs.mkdirSync(path.join(base, `saved.tmp-${dead}-abc123`));
  fs.writeFileSync(path.join(base, `saved.tmp-${dead}-abc123`, 'model.safetensors'), 'partial');
  const live = path.join(base, `saved.tmp-${process.ppid}-def456`);  // our parent runs: a writer still at work
  fs.mkdirSync(live);
  const model = await Model.load(dir);
  await model.save(out);
  model.dispose();
  t.deepEqual(fs.readdirSync(base).sort(), ['saved', path.basename(live)]);
  fs.rmSync(live, { recursive: true });
});

test('Ctrl-C during CLI init ends with E_ABORTED and leaves no folder behind', async (t) => {
  const base = tempDir();
  const out = path.join(base, 'big');
  const cli = path.join(__dirname, '..', 'dist', 'lib', 'cli', 'main.js');
  const child = spawn(process.execPath, [cli, 'init', 'gpt2-medium', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  // Interrupt once the weights are being written (the staging folder exists).
  const deadline = Date.now() + 60_000;
  while (!fs.readdirSync(base).some((n) => n.startsWith('big.tmp-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.is(code, 1, stderr);
  t.regex(stderr, /^E_ABORTED: /m);
  t.deepEqual(fs.readdirSync(base), [], 'neither the folder nor its staging folder is left');
});

// Serial: other tests of this file running at the same time would grow this process's RSS too.
test.serial('aborted attributions give their memory back as completed ones do', async (t) => {
  const model = await Model.load('random:gpt2-small');
  const ids = Array.from({ length: 64 }, (_, i) => (i * 7919 + 1) % 256);
  const options = { prompts: [0, 1].map(() => ({ prompt: ids, target: [5] })), steps: 20 };
  await model.attribute(options);
  await model.attribute(options);
  const settled = process.memoryUsage().rss;
  for (let i = 0; i < 4; i++) {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300 + 150 * i);
    await model.attribute({ ...options, signal: controller.signal }).catch(() => undefined);
  }
  const grown = (process.memoryUsage().rss - settled) / 2 ** 20;
  t.log(`RSS after 4 aborted runs: ${grown.toFixed(0)} MiB above two completed ones`);
  t.true(grown < 150, `${grown.toFixed(0)} MiB kept`);
  model.dispose();
});
