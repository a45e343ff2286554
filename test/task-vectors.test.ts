// Task vectors: residual reads and patches agree with plain forwards, a hand-built model whose task
// lives in the residual after layer 0 is recovered by patching there and only there, errors carry
// codes, and the CLI writes complete results or nothing.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint, Model, parseTaskVectorsConfig, taskVectorCurveSvg, taskVectors } from '../lib';
import { native, packageRoot } from '../lib/native';
import { taskVectorModel } from './fixtures-taskvec';
import { codeOf, tempDir, tinyGpt2 } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
const PROMPTS = ['example:a->A\nexample:b->', 'hello world', 'x', 'example:dog->cat\nexample:sun->moon\nexample:up->'];

let gpt2: string, llama: string, mamba: string, handBuilt: string;
test.before(async () => {
  gpt2 = await tinyGpt2({ layers: 3 });
  llama = path.join(tempDir(), 'llama');
  await initCheckpoint('llama', llama, { layers: 3, hidden: 32, heads: 4, kvHeads: 2, seed: 2 });
  mamba = path.join(tempDir(), 'mamba');
  await initCheckpoint('mamba', mamba, { layers: 3, hidden: 32, seed: 2 });
  handBuilt = await taskVectorModel(path.join(tempDir(), 'taskvec'));
});

for (const arch of ['gpt2', 'llama', 'mamba'] as const) {
  test(`${arch}: patching each prompt's own residual at any layer leaves generation exactly as generate()`, async (t) => {
    const model = await Model.load({ gpt2, llama, mamba }[arch]);
    const plain = await model.generate(PROMPTS, { maxNewTokens: 6, stopAtEos: false });
    const res = await model.residuals(PROMPTS);
    t.deepEqual(res.shape, [PROMPTS.length, model.info.dModel]);
    for (let layer = 0; layer < model.info.nLayers; layer++) {
      const patched = await model.generatePatched(PROMPTS, { layer, vectors: res.layers.get(layer)!, maxNewTokens: 6, stopAtEos: false });
      t.deepEqual(patched.map((g) => g.tokens), plain.map((g) => g.tokens), `layer ${layer}`);
    }
    // The same with one array per prompt, and a batch of one.
    const rows = PROMPTS.map((_, b) => res.layers.get(1)!.slice(b * model.info.dModel, (b + 1) * model.info.dModel));
    t.deepEqual((await model.generatePatched(PROMPTS, { layer: 1, vectors: rows, maxNewTokens: 6, stopAtEos: false })).map((g) => g.tokens), plain.map((g) => g.tokens));
    const alone = await model.residuals(PROMPTS[3], { layers: [1] });
    t.deepEqual((await model.generatePatched(PROMPTS[3], { layer: 1, vectors: alone.layers.get(1)!, maxNewTokens: 6, stopAtEos: false })).tokens, plain[3].tokens);
    model.dispose();
  });

  test(`${arch}: B patched with A's residual at layer L, where B shares all but A's last token, predicts A's next token`, async (t) => {
    // Positions before the last are the same in A and B, so after the patch every later layer sees
    // exactly A's run at the last position; with a wrong residual (position, layer, row) it would not.
    const model = await Model.load({ gpt2, llama, mamba }[arch]);
    const a = ['example:a->', 'the cat sat', 'zq', 'lorem ipsum dolor'];
    const b = ['example:a-=', 'the cat saw', 'z!', 'lorem ipsum dolo.'];
    const nextA = (await model.generate(a, { maxNewTokens: 1, stopAtEos: false })).map((g) => g.tokens[0]);
    const nextB = (await model.generate(b, { maxNewTokens: 1, stopAtEos: false })).map((g) => g.tokens[0]);
    t.notDeepEqual(nextA, nextB, 'the test needs prompts whose next tokens differ');
    const res = await model.residuals(a);
    for (let layer = 0; layer < model.info.nLayers; layer++) {
      const patched = await model.generatePatched(b, { layer, vectors: res.layers.get(layer)!, maxNewTokens: 1, stopAtEos: false });
      t.deepEqual(patched.map((g) => g.tokens[0]), nextA, `layer ${layer}`);
    }
    model.dispose();
  });
}

test('residuals at the last layer give the logits: final LayerNorm and the tied unembedding, computed here', async (t) => {
  const model = await Model.load(gpt2);
  const last = model.info.nLayers - 1;
  const res = await model.residuals(PROMPTS, { layers: [last] });
  const logits = await model.logits(PROMPTS, { lastOnly: true });
  const { readSafetensors } = await import('../lib');
  const st = await readSafetensors(path.join(gpt2, 'model.safetensors'));
  const f32 = (name: string) => {
    const x = st.tensors[name] ?? st.tensors[`transformer.${name}`];
    return new Float32Array(x.data.buffer.slice(x.data.byteOffset, x.data.byteOffset + x.data.byteLength));
  };
  const wte = f32('transformer.wte.weight'), g = f32('transformer.ln_f.weight'), beta = f32('transformer.ln_f.bias');
  const d = model.info.dModel, V = model.info.vocabSize;
  let worst = 0;
  for (let b = 0; b < PROMPTS.length; b++) {
    const x = res.layers.get(last)!.subarray(b * d, (b + 1) * d);
    const mean = x.reduce((s, v) => s + v, 0) / d;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / d;
    const h = Array.from(x, (v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * g[i] + beta[i]);
    const want = logits.at(b, 0);
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += h[i] * wte[v * d + i];
      worst = Math.max(worst, Math.abs(s - want[v]));
    }
  }
  t.true(worst < 1e-3, `max |difference| ${worst}`);
  model.dispose();
});

test('hand-built model: the task vector recovers to_upper at layer 0, where zero-shot fails, and not at layer 1', async (t) => {
  const model = await Model.load(handBuilt);
  // The model's own behaviour first: zero-shot answers the letter, 4-shot ICL the uppercase letter.
  const [zero, icl] = await model.generate(['example:c->', 'example:a->A\nexample:q->Q\nexample:x->X\nexample:m->M\nexample:c->'], { maxNewTokens: 1 });
  t.is(zero.text, 'c');
  t.is(icl.text, 'C');
  const config = parseTaskVectorsConfig({ tasks: ['to_upper', 'next_letter'], n: 30, devN: 10 });
  const r = await taskVectors(model, config);
  t.deepEqual(r.layers, [0, 1]);
  const upper = r.tasks.find((x) => x.task === 'to_upper')!;
  t.is(upper.zeroShot.accuracy, 0);
  t.is(upper.icl.accuracy, 1);
  t.is(upper.perLayer[0].accuracy, 1, JSON.stringify(upper.perLayer));
  t.is(upper.perLayer[1].accuracy, 0, 'after layer 1 the vector already holds the dummy query\'s answer');
  t.is(upper.perLayer[1].dummyAnswerRate, 1);
  t.is(upper.perLayer[0].dummyAnswerRate, 0);
  t.is(upper.bestLayer, 0);
  t.is(upper.bestLayerAccuracy, 1);
  // next_letter leaves no trace in this model: nothing to recover at any layer.
  const next = r.tasks.find((x) => x.task === 'next_letter')!;
  t.true(next.perLayer.every((p) => p.accuracy === 0), JSON.stringify(next.perLayer));
  t.deepEqual(r.mean.perLayer.map((p) => p.accuracy), [0.5, 0]);
  t.is(r.config.shots, 4);

  // Averaging over several dummy queries keeps what the vectors share: the task at layer 0. At layer 1
  // the mean still answers as one of the dummies did.
  const averaged = await taskVectors(model, parseTaskVectorsConfig({ tasks: ['to_upper'], n: 30, devN: 10, dummies: 4 }));
  const up4 = averaged.tasks[0];
  t.is(up4.perLayer[0].accuracy, 1, JSON.stringify(up4.perLayer));
  t.is(up4.icl.accuracy, 1);
  t.like(up4.perLayer[1], { accuracy: 0, dummyAnswerRate: 1 });
  t.is(averaged.config.dummies, 4);
  model.dispose();
});

test('a bad layer is E_RANGE and a wrong vector length E_SHAPE, in the API and in the binding', async (t) => {
  const model = await Model.load(gpt2);
  const d = model.info.dModel, L = model.info.nLayers;
  t.is(await codeOf(model.generatePatched(['a', 'b'], { layer: L, vectors: new Float32Array(2 * d) })), 'E_RANGE');
  t.is(await codeOf(model.generatePatched(['a', 'b'], { layer: -1, vectors: new Float32Array(2 * d) })), 'E_RANGE');
  t.is(await codeOf(model.generatePatched(['a', 'b'], { layer: 0, vectors: new Float32Array(2 * d - 1) })), 'E_SHAPE');
  t.is(await codeOf(model.generatePatched(['a', 'b'], { layer: 0, vectors: [new Float32Array(d), new Float32Array(d + 1)] })), 'E_SHAPE');
  t.is(await codeOf(model.generatePatched(['a'], { layer: 0, vectors: new Float32Array(d).fill(NaN) })), 'E_ARG');
  t.is(await codeOf(model.residuals('a', { layers: [L] })), 'E_RANGE');
  model.dispose();
  // The binding checks on its own too (for callers that bypass lib/model.ts).
  const raw = await native().loadModel(gpt2, 'cpu', 'float32');
  const ids = Int32Array.from([97, 98]), mask = Uint8Array.from([1, 1]);
  const codeOfSync = (f: () => unknown) => {
    try {
      f();
    } catch (error) {
      return (error as { code?: string }).code;
    }
    return 'none';
  };
  t.is(codeOfSync(() => raw.generatePatched(ids, mask, 1, 2, 1, -1, L, new Float32Array(d))), 'E_RANGE');
  t.is(codeOfSync(() => raw.generatePatched(ids, mask, 1, 2, 1, -1, 0, new Float32Array(d + 3))), 'E_SHAPE');
  t.is(codeOfSync(() => raw.residuals(ids, mask, 1, 2, Int32Array.from([L]))), 'E_RANGE');
  raw.dispose();
});

test('config: defaults are filled in and recorded; unknown fields are E_CONFIG', (t) => {
  t.deepEqual(parseTaskVectorsConfig({}), {
    seed: 0, tasks: ['next_letter', 'prev_letter', 'list_first', 'list_last', 'to_upper', 'to_lower'], dataDir: null,
    shots: 4, n: 50, devN: 20, dummies: 1, layers: null, batchSize: 32,
  });
  t.throws(() => parseTaskVectorsConfig({ shot: 4 }), { code: 'E_CONFIG' } as never);
  t.throws(() => parseTaskVectorsConfig({ n: 0 }), { code: 'E_CONFIG' } as never);
});

test('taskVectorCurveSvg draws one line per model and the reference lines', (t) => {
  const svg = taskVectorCurveSvg(
    [
      { name: 'before', perLayer: [{ layer: 0, accuracy: 0.2 }, { layer: 1, accuracy: 0.6 }] },
      { name: 'after <pruning>', perLayer: [{ layer: 0, accuracy: 0.1 }, { layer: 1, accuracy: 0.4 }] },
    ],
    { references: [{ name: 'zero-shot', accuracy: 0.05 }] },
  );
  t.is((svg.match(/<polyline/g) ?? []).length, 3);
  t.true(svg.includes('after &lt;pruning&gt;'));
  t.true(svg.includes('stroke-dasharray'));
});

test('abort: a raised signal stops the pipeline with E_ABORTED', async (t) => {
  const model = await Model.load(handBuilt);
  const controller = new AbortController();
  const config = parseTaskVectorsConfig({ tasks: ['to_upper'], n: 40, devN: 10, batchSize: 4 });
  let calls = 0;
  const run = taskVectors(model, config, { signal: controller.signal, onProgress: () => ++calls === 3 && controller.abort() });
  t.is(await codeOf(run), 'E_ABORTED');
  model.dispose();
});

test('CLI: task-vectors writes results.json and report.html, every default recorded', async (t) => {
  const dir = tempDir();
  const out = path.join(dir, 'out');
  const configFile = path.join(dir, 'config.yaml');
  fs.writeFileSync(configFile, 'tasks: [to_upper]\nn: 8\n');
  const r = spawnSync(process.execPath, [cli, 'task-vectors', handBuilt, '--out', out, '--config', configFile, '--n', '12', '--dev-n', '6'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /to_upper\s+0%\s+100%\s+100%\s+0%\s+L0 \(100%\)/);
  t.deepEqual(fs.readdirSync(out).sort(), ['report.html', 'results.json']);
  t.deepEqual(fs.readdirSync(dir).sort(), ['config.yaml', 'out'], 'no temporary folder left');
  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  t.deepEqual(Object.keys(results).sort(), ['config', 'environment', 'layers', 'mean', 'method', 'model', 'skipped', 'tasks', 'timings']);
  t.deepEqual(results.config, { seed: 0, tasks: ['to_upper'], dataDir: null, shots: 4, n: 12, devN: 6, dummies: 1, layers: null, batchSize: 32 });
  t.like(results.tasks[0], { task: 'to_upper', bestLayer: 0, bestLayerAccuracy: 1, zeroShot: { accuracy: 0, n: 12 }, icl: { accuracy: 1 } });
  t.deepEqual(results.tasks[0].perLayer.map((p: { accuracy: number }) => p.accuracy), [1, 0]);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  t.true(html.startsWith('<!doctype html>') && html.includes('<svg') && !html.includes('<script'));

  // A second run into a non-empty folder needs --force.
  const again = spawnSync(process.execPath, [cli, 'task-vectors', handBuilt, '--out', out, '--tasks', 'to_upper', '--n', '2', '--dev-n', '2'], { encoding: 'utf8' });
  t.is(again.status, 1);
  t.regex(again.stderr, /E_ARG/);
  const bad = spawnSync(process.execPath, [cli, 'task-vectors', handBuilt, '--out', path.join(dir, 'bad'), '--layers', '5'], { encoding: 'utf8' });
  t.is(bad.status, 1);
  t.regex(bad.stderr, /E_RANGE/);
  t.false(fs.existsSync(path.join(dir, 'bad')));
});

test('CLI: Ctrl-C stops cleanly with nothing written; a killed run leaves no --out and its staging goes next time', async (t) => {
  const dir = tempDir();
  const out = path.join(dir, 'out');
  const args = [cli, 'task-vectors', 'random:gpt2-small', '--out', out, '--n', '400', '--dev-n', '50', '--tasks', 'to_upper'];
  const started = (child: ReturnType<typeof spawn>) =>
    new Promise<void>((resolve) => {
      // The staging folder appears once the model is loaded and the run has begun.
      const poll = setInterval(() => {
        if (fs.readdirSync(dir).some((n) => n.startsWith('out.tmp-'))) clearInterval(poll), setTimeout(resolve, 500);
      }, 100);
      child.on('exit', () => (clearInterval(poll), resolve()));
    });
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  await started(child);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve)));
  t.is(code, 1, stderr);
  t.regex(stderr, /E_ABORTED/);
  t.deepEqual(fs.readdirSync(dir), [], 'neither the output folder nor a temporary one remains');

  const killed = spawn(process.execPath, args, { stdio: 'ignore' });
  await started(killed);
  killed.kill('SIGKILL');
  await new Promise((resolve) => (killed.exitCode !== null || killed.signalCode !== null ? resolve(null) : killed.on('exit', resolve)));
  t.false(fs.existsSync(out), 'no partial --out');
  const small = spawnSync(process.execPath, [cli, 'task-vectors', handBuilt, '--out', out, '--tasks', 'to_upper', '--n', '2', '--dev-n', '2'], { encoding: 'utf8' });
  t.is(small.status, 0, small.stderr);
  t.deepEqual(fs.readdirSync(dir), ['out'], 'the killed run\'s staging folder was removed');
});
