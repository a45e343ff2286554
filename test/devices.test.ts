/**
 * Several devices in one process (issue 17): replicas (ModelPool, --devices) and one model split over
 * devices (--device-map). On a machine without GPUs the split runs over several CPU "devices": that
 * checks the bookkeeping (which layer lives where, what moves at the boundaries, editing per layer),
 * not real transfers between devices, which only a GPU machine exercises.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { initCheckpoint, Model, ModelPool, readSafetensors } from '../lib';
import { packageRoot } from '../lib/native';
import { codeOf, relDiff, tempDir } from './helpers';

const prompts = [
  { prompt: 'example:dog->bird\nexample:sun->moon\nexample:hot->', target: 'cold', distractor: 'warm', labels: ['bird', 'moon'] },
  { prompt: 'Paris is in ', target: 'France!', distractor: 'Italy', labels: ['Spain', 'Italy'] },
  { prompt: 'one two three ', target: 'four', distractor: 'five', labels: ['six'] },
  { prompt: 'a b c d e f ', target: 'g', distractor: 'h', labels: ['i', 'j'] },
  { prompt: 'red green ', target: 'blue', distractor: 'black', labels: ['white'] },
  { prompt: 'The capital of Spain is ', target: 'Madrid', distractor: 'Rome', labels: ['Paris'] },
];

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
const dirs = new Map<string, string>();
test.before(async () => {
  for (const arch of ['gpt2', 'llama', 'gpt_neox', 'mamba']) {
    const dir = path.join(tempDir(), arch);
    await initCheckpoint(arch, dir, { seed: 5, hidden: 32, heads: 4, layers: 3 });
    dirs.set(arch, dir);
  }
});

// --- --device-map: one model, its layers over several devices -------------------------------------

for (const arch of ['gpt2', 'llama', 'gpt_neox', 'mamba']) {
  test(`${arch}: a model split over cpu "devices" equals the unsplit one bit for bit`, async (t) => {
    const dir = dirs.get(arch)!;
    const whole = await Model.load(dir);
    const split = await Model.load(dir, { deviceMap: '0:cpu,1-2:cpu' });
    const balanced = await Model.load(dir, { deviceMap: 'balanced:cpu,cpu' });
    try {
      t.deepEqual(split.info.layerDevices, ['cpu', 'cpu', 'cpu']);
      t.deepEqual(balanced.info.layerDevices, ['cpu', 'cpu', 'cpu']);
      t.is(whole.info.layerDevices, undefined);
      const text = ['Paris is in ', 'one two three four five '];
      const [a, b, c] = await Promise.all([whole, split, balanced].map((m) => m.logits(text)));
      t.deepEqual(b.data, a.data, 'logits');
      t.deepEqual(c.data, a.data, 'logits (balanced)');
      const chunked = await split.logits(text, { chunkSize: 2 });  // the KV cache across the split
      const wholeChunked = await whole.logits(text, { chunkSize: 2 });
      t.deepEqual(chunked.data, wholeChunked.data, 'logits through the cache');
      t.deepEqual(await split.generate(text, { maxNewTokens: 6 }), await whole.generate(text, { maxNewTokens: 6 }), 'greedy generation');
      for (const method of ['fast', 'reference'] as const) {
        // A small budget splits the rows into several micro-batches (a Mamba row needs more: its scan).
        const options = { prompts: prompts.slice(0, 3), objective: 'logprob' as const, positions: 'answer' as const, steps: 3, method, memoryBudgetMB: arch === 'mamba' ? 8 : 1 };
        const [x, y] = [await whole.attribute(options), await split.attribute(options)];
        x.prompts.forEach((p, i) => {
          t.deepEqual(y.prompts[i].scores, p.scores, `IG ${method}, prompt ${i}`);
          t.deepEqual(y.prompts[i].fBaseline, p.fBaseline);
        });
        const r = await split.attribute({ ...options, site: 'hook_resid_post' });
        t.deepEqual(r.prompts[0].scores, (await whole.attribute({ ...options, site: 'hook_resid_post' })).prompts[0].scores, `IG ${method} at hook_resid_post`);
      }
      const acts = [await whole.activations(text, { withLogits: true }), await split.activations(text, { withLogits: true })];
      for (const l of [0, 1, 2]) t.deepEqual(acts[1].layers.get(l), acts[0].layers.get(l), `activations, layer ${l}`);
      const res = [await whole.residuals(text), await split.residuals(text)];
      for (const l of [0, 1, 2]) t.deepEqual(res[1].layers.get(l), res[0].layers.get(l), `residuals, layer ${l}`);
      const patch = { layer: 1, vectors: res[0].layers.get(1)!.map((v) => v * 1.5), maxNewTokens: 4 };
      t.deepEqual(await split.generatePatched(text, patch), await whole.generatePatched(text, patch), 'patched generation');
      const units = [{ layer: 0, index: 3 }, { layer: 2, index: 4 }];
      t.deepEqual(await split.unitNorms('resid', units), await whole.unitNorms('resid', units), 'residual unit norms (every layer\'s weights)');
      t.deepEqual(await split.unitNorms('mlp', units), await whole.unitNorms('mlp', units), 'MLP unit norms');

      // Editing: the weights of layers 0 and 2 live on different devices of the map.
      const neurons = [{ layer: 0, index: 1 }, { layer: 2, index: 5 }, { layer: 1, index: 7 }];
      const before = await split.logits(text);
      const [pw, ps] = [await whole.prune(neurons, { full: true }), await split.prune(neurons, { full: true })];
      t.deepEqual((await split.logits(text)).data, (await whole.logits(text)).data, 'pruned');
      t.notDeepEqual((await split.logits(text)).data, before.data, 'pruning changed the logits');
      const [sw, ss] = [await whole.scale(neurons, 2), await split.scale(neurons, 2)];
      t.deepEqual((await split.logits(text)).data, (await whole.logits(text)).data, 'pruned and scaled');
      for (const [m, e] of [[whole, pw], [whole, sw], [split, ps], [split, ss]] as const) await m.restore(e);
      t.deepEqual((await split.logits(text)).data, before.data, 'restored bit for bit');
    } finally {
      for (const m of [whole, split, balanced]) m.dispose();
    }
  });
}

test('random models split over a device map draw the same weights', async (t) => {
  const whole = await Model.load('random:llama-tiny', { seed: 3 }).catch(() => undefined);
  if (!whole) return t.pass('no random:llama-tiny preset');
  const split = await Model.load('random:llama-tiny', { seed: 3, deviceMap: `balanced:${Array(whole.info.nLayers).fill('cpu').join(',')}` });
  try {
    t.deepEqual((await split.logits([[1, 2, 3, 4]])).data, (await whole.logits([[1, 2, 3, 4]])).data);
  } finally {
    whole.dispose();
    split.dispose();
  }
});

test('device maps that do not fit the model or name a missing device are refused with codes', async (t) => {
  const dir = dirs.get('gpt2')!;
  t.is(await codeOf(Model.load(dir, { deviceMap: '0-1:cpu' })), 'E_ARG');  // layer 2 not placed
  const e = await Model.load(dir, { deviceMap: '0-1:cpu' }).catch((x) => x);
  t.regex(e.message, /layer 2/);
  t.is(await codeOf(Model.load(dir, { deviceMap: '0-1:cpu,1-2:cpu' })), 'E_ARG');  // layer 1 twice
  t.is(await codeOf(Model.load(dir, { deviceMap: '0-5:cpu' })), 'E_ARG');  // more layers than the model
  t.is(await codeOf(Model.load(dir, { deviceMap: 'sideways' })), 'E_ARG');
  t.is(await codeOf(Model.load(dir, { deviceMap: '' })), 'E_ARG');
  const missing = await Model.load(dir, { deviceMap: '0:cpu,1-2:cuda:7' }).catch((x) => x);
  t.is(missing.code, 'E_DEVICE');
  t.regex(missing.message, /cuda:7/);
  t.is(await codeOf(Model.load(dir, { deviceMap: 'balanced:cpu,tpu' })), 'E_DEVICE');
  const auto = await Model.load(dir, { deviceMap: 'auto:cpu,cpu' });  // no free-memory figures on CPU: an equal split
  t.deepEqual(auto.info.layerDevices, ['cpu', 'cpu', 'cpu']);
  auto.dispose();
  const split = await Model.load(dir, { deviceMap: '0:cpu,1-2:cpu' });
  try {
    // Calls not yet made to follow a split say so instead of failing on a device mismatch.
    t.is(await codeOf(() => split.circuitGraph()), 'E_DEVICE');
  } finally {
    split.dispose();
  }
});

test('CLI: --device-map on info, generate and attribute; a bad map exits with its code', async (t) => {
  const dir = dirs.get('llama')!;
  const info = spawnSync(process.execPath, [cli, 'info', dir, '--device-map', '0:cpu,1-2:cpu', '--json'], { encoding: 'utf8' });
  t.is(info.status, 0, info.stderr);
  t.deepEqual(JSON.parse(info.stdout).layerDevices, ['cpu', 'cpu', 'cpu']);
  const text = spawnSync(process.execPath, [cli, 'info', dir, '--device-map', '0:cpu,1-2:cpu'], { encoding: 'utf8' });
  t.regex(text.stdout, /layers on\s+0-2 cpu\n/);
  const gen = (map?: string) => spawnSync(process.execPath, [cli, 'generate', dir, '--prompt', 'Paris is', '--max-new-tokens', '4', '--json', ...(map ? ['--device-map', map] : [])], { encoding: 'utf8' });
  t.is(JSON.parse(gen('balanced:cpu,cpu').stdout).text, JSON.parse(gen().stdout).text);
  const bad = gen('0-1:cpu');
  t.is(bad.status, 1);
  t.regex(bad.stderr, /^E_ARG: .*layer 2/);
  const gone = gen('0-2:cuda:3');
  t.regex(gone.stderr, /^E_DEVICE: .*cuda:3/);
});

// --- --devices: one replica per device, prompts handed out from a shared queue ------------------

test('ModelPool: replicas on cpu,cpu give one model\'s results, in prompt order, and both take work', async (t) => {
  const dir = dirs.get('gpt2')!;
  const pool = await ModelPool.load(dir, { devices: 'cpu,cpu' });
  const one = await Model.load(dir);
  try {
    t.deepEqual(pool.devices, ['cpu', 'cpu']);
    const options = { prompts, objective: 'copy' as const, steps: 4, layers: [0, 2] };
    const seen: Array<[number, number]> = [];
    const pooled = await pool.attribute({ ...options, chunkSize: 2, onProgress: (d, n) => seen.push([d, n]) });
    t.is(pooled.prompts.length, prompts.length);
    pooled.prompts.forEach((p, i) => t.is(p.prompt, prompts[i], `prompt ${i} in order`));
    t.true(pooled.replicas.every((r) => r.chunks > 0), JSON.stringify(pooled.replicas));
    t.is(pooled.replicas.reduce((s, r) => s + r.prompts, 0), prompts.length);
    // Bit for bit against one model over the same chunks (the same native calls).
    for (let start = 0; start < prompts.length; start += 2) {
      const part = await one.attribute({ ...options, prompts: prompts.slice(start, start + 2) });
      part.prompts.forEach((p, i) => {
        t.deepEqual(pooled.prompts[start + i].scores, p.scores);
        t.deepEqual(pooled.prompts[start + i].fFull, p.fFull);
      });
    }
    // Against one call over every prompt: float tolerance (other padding and batch shapes).
    const all = await one.attribute(options);
    t.true(relDiff(pooled, all) < 1e-5, `relative difference ${relDiff(pooled, all)}`);
    t.is(pooled.rows, all.rows);
    // Progress over both replicas: never backwards, ending at the total.
    t.true(seen.every(([d], i) => i === 0 || d >= seen[i - 1][0]));
    t.deepEqual(seen[seen.length - 1], [all.rows, all.rows]);
  } finally {
    pool.dispose();
    one.dispose();
  }
});

test('two models run their calls at the same time (no global lock)', async (t) => {
  const dir = dirs.get('llama')!;
  const [a, b] = [await Model.load(dir), await Model.load(dir)];
  try {
    const spans: Array<[number, number]> = [[Infinity, 0], [Infinity, 0]];
    const options = (k: number) => ({
      prompts: prompts.concat(prompts), steps: 8, method: 'reference' as const, memoryBudgetMB: 1,
      onProgress: () => {
        const now = performance.now();
        spans[k] = [Math.min(spans[k][0], now), Math.max(spans[k][1], now)];
      },
    });
    await Promise.all([a.attribute(options(0)), b.attribute(options(1))]);
    // Each reports progress while the other is still running.
    t.true(spans[1][0] < spans[0][1] && spans[0][0] < spans[1][1], JSON.stringify(spans));
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('ModelPool: an abort cancels every replica; a failing chunk fails the run; bad options are refused', async (t) => {
  const dir = dirs.get('gpt2')!;
  const pool = await ModelPool.load(dir, { devices: ['cpu', 'cpu'] });
  try {
    const controller = new AbortController();
    let calls = 0;
    const aborted = pool.attribute({
      prompts: prompts.concat(prompts, prompts), steps: 16, method: 'reference', memoryBudgetMB: 1, chunkSize: 1, signal: controller.signal,
      onProgress: () => {
        if (++calls === 3) controller.abort();
      },
    });
    t.is(await codeOf(aborted), 'E_ABORTED');
    // Both replicas still work afterwards.
    const ok = await pool.attribute({ prompts: prompts.slice(0, 2), steps: 2, chunkSize: 1 });
    t.is(ok.prompts.length, 2);
    const bad = [...prompts, { prompt: [1, 2, 999999], target: [3] }];
    t.is(await codeOf(pool.attribute({ prompts: bad, steps: 2, chunkSize: 1 })), 'E_RANGE');
    t.is(await codeOf(pool.attribute({ prompts, steps: 0 })), 'E_ARG');
    t.is(await codeOf(pool.attribute({ prompts, chunkSize: 0 })), 'E_ARG');
  } finally {
    pool.dispose();
  }
  t.is(await codeOf(ModelPool.load(dir, { devices: 'cpu,cuda:9' })), 'E_DEVICE');
  t.is(await codeOf(ModelPool.load(dir, { devices: '' })), 'E_ARG');
  t.is(await codeOf(pool.attribute({ prompts })), 'E_DISPOSED');
});

test('CLI: attribute --devices cpu,cpu writes the bytes one device writes with the same chunks, with the replicas in summary.json', async (t) => {
  const dir = dirs.get('gpt2')!;
  const file = path.join(tempDir(), 'prompts.jsonl');
  fs.writeFileSync(file, prompts.map((p) => JSON.stringify(p)).join('\n') + '\n');
  const run = (out: string, ...extra: string[]) =>
    spawnSync(process.execPath, [cli, 'attribute', dir, '--prompts', file, '--out', out, '--steps', '4', '--layers', '0,1', ...extra], { encoding: 'utf8' });
  const [single, multi] = [path.join(tempDir(), 'one'), path.join(tempDir(), 'two')];
  // The same chunks (one native call each) on one model and on two replicas: the same bytes.
  t.is(run(single, '--chunk-size', '2').status, 0);
  const r = run(multi, '--devices', 'cpu,cpu', '--chunk-size', '2');
  t.is(r.status, 0, r.stderr);
  const summary = JSON.parse(fs.readFileSync(path.join(multi, 'summary.json'), 'utf8'));
  t.is(summary.devices.replicas.length, 2);
  t.is(summary.devices.chunkSize, 2);
  t.is(summary.prompts, prompts.length);
  const [a, b] = [await readSafetensors(path.join(single, 'attributions.safetensors')), await readSafetensors(path.join(multi, 'attributions.safetensors'))];
  t.deepEqual(Object.keys(b.tensors).sort(), Object.keys(a.tensors).sort());
  for (const [name, x] of Object.entries(a.tensors)) t.true(b.tensors[name].data.equals(x.data), `${name}: replicas wrote other bytes than one model`);
  t.is(summary.devices.replicas.reduce((n: number, r: { prompts: number }) => n + r.prompts, 0), prompts.length);
  const both = run(path.join(tempDir(), 'x'), '--devices', 'cpu,cpu', '--device-map', 'balanced:cpu,cpu');
  t.regex(both.stderr, /^E_ARG: --devices/);
});

test('CLI: Ctrl-C during attribute --devices cancels every replica and writes nothing', async (t) => {
  const dir = dirs.get('gpt2')!;
  const file = path.join(tempDir(), 'prompts.jsonl');
  fs.writeFileSync(file, prompts.map((p) => JSON.stringify(p)).join('\n') + '\n');
  const out = path.join(tempDir(), 'out');
  const child = spawn(process.execPath, [cli, 'attribute', dir, '--prompts', file, '--out', out, '--devices', 'cpu,cpu', '--chunk-size', '1',
    '--method', 'reference', '--steps', '10000', '--memory-budget-mb', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  await new Promise((r) => setTimeout(r, 3000));  // loaded and computing (the whole run takes minutes)
  const sent = Date.now();
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.is(code, 1, stderr);
  t.regex(stderr, /^E_ABORTED: /m);
  t.true(Date.now() - sent < 10_000, 'settled within seconds');
  t.false(fs.existsSync(path.join(out, 'summary.json')));
});
