import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/native';
import { tempDir } from './helpers';

const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test.before((t) => {
  if (!fs.existsSync(cli)) t.fail(`${cli} is missing: npm test builds it (npm run build:ts)`);
});

test('init writes an HF folder that info and generate read', (t) => {
  const out = path.join(tempDir(), 'tiny');
  const init = run('init', 'gpt2', '--out', out, '--layers', '3', '--hidden', '48', '--heads', '6', '--vocab', '300', '--seed', '5');
  t.is(init.code, 0, init.stderr);
  t.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  t.like(config, { model_type: 'gpt2', n_layer: 3, n_embd: 48, n_head: 6, vocab_size: 300 });

  const info = run('info', out, '--json');
  t.is(info.code, 0, info.stderr);
  t.like(JSON.parse(info.stdout), { architecture: 'GPT2LMHeadModel', nLayers: 3, dModel: 48, nHeads: 6, dMlp: 192, vocabSize: 300, dtype: 'float32', device: 'cpu' });
  const text = run('info', out);
  t.regex(text.stdout, /MLP neurons per layer\s+192 at blocks\.\{l\}\.mlp\.hook_post/);

  const gen = run('generate', out, '--prompt', 'Once upon', '--max-new-tokens', '7', '--json');
  t.is(gen.code, 0, gen.stderr);
  const g = JSON.parse(gen.stdout);
  t.is(g.prompt, 'Once upon');
  t.true(g.tokens.length <= 7 && g.tokens.length > 0);
  // Same seed, same checkpoint: the same continuation.
  const again = JSON.parse(run('generate', out, '--prompt', 'Once upon', '--max-new-tokens', '7', '--json').stdout);
  t.deepEqual(again.tokens, g.tokens);
  t.is(run('generate', out, '--prompt', 'Once upon', '--max-new-tokens', '7', '--dtype', 'bfloat16').code, 0);
});

test('init refuses a non-empty folder unless --force, and writes nothing half-done', (t) => {
  const out = tempDir();
  fs.writeFileSync(path.join(out, 'keep.txt'), 'x');
  const r = run('init', 'gpt2', '--out', out);
  t.is(r.code, 1);
  t.regex(r.stderr, /^E_ARG: .*not empty/);
  t.deepEqual(fs.readdirSync(out), ['keep.txt']);
  t.is(run('init', 'gpt2', '--out', out, '--force').code, 0);
  t.false(fs.existsSync(path.join(out, 'keep.txt')));
  t.deepEqual(fs.readdirSync(path.dirname(out)).filter((f) => f.startsWith(path.basename(out) + '.tmp-')), []);
});

test('errors print code: message on stderr and exit non-zero', (t) => {
  const missing = run('info', path.join(tempDir(), 'nothing-here'));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^E_NOT_FOUND: model ".*nothing-here"/);
  const empty = tempDir();
  const noConfig = run('info', empty);
  t.is(noConfig.code, 1);
  t.regex(noConfig.stderr, /^E_CONFIG: .*config\.json is missing/);
  const badArch = run('init', 'bert', '--out', path.join(tempDir(), 'x'));
  t.regex(badArch.stderr, /^E_NOT_FOUND: unknown architecture or preset "bert"/);
  const badVocab = run('init', 'gpt2', '--out', path.join(tempDir(), 'x'), '--vocab', '100');
  t.regex(badVocab.stderr, /^E_ARG: vocab must be at least 257/);
  const badFlag = run('generate', 'random:gpt2-tiny');
  t.not(badFlag.code, 0);
  t.regex(badFlag.stderr, /E_ARG: required option '--prompt <text>'/);
  const badInt = run('generate', 'random:gpt2-tiny', '--prompt', 'x', '--max-new-tokens', 'lots');
  t.not(badInt.code, 0);
  t.regex(badInt.stderr, /E_ARG: --max-new-tokens must be a non-negative integer/);
});

test('random: models work from the command line', (t) => {
  const r = run('info', 'random:gpt2-tiny', '--json');
  t.is(r.code, 0, r.stderr);
  t.like(JSON.parse(r.stdout), { id: 'random:gpt2-tiny', nLayers: 2 });
});
