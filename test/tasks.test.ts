// Tasks, prompts, scoring, and evaluation counting right on a model whose answer is forced.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { evaluate, initCheckpoint, Model, readSafetensors, TextTokenizer, writeSafetensors } from '../lib';
import { packageRoot } from '../lib/native';
import { byteLevelTokenizerConfig, byteLevelTokenizerJson } from '../lib/tokenizer';
import { ALGORITHMIC_TASKS, BUILTIN_WORDS, syntheticCorpus, Task, buildPrompts, classificationTask, countVowels, HENDEL18, hendelTask, loadTask, MIN_WORDS_PER_COUNT, resolveTaskNames, scorePrediction, singleTokenPairs, splitProxyPairs, vowelCountTask } from '../lib/tasks';
import { codeOf, tempDir } from './helpers';

const DATA = path.join(packageRoot(), '..', 'shared', 'data', 'icl_task_vectors');
const byteLevel = TextTokenizer.byteLevel();

/** The byte-level tokenizer plus whole-word added tokens (ids from 257 on). */
function tokenizerWithWords(words: string[]): TextTokenizer {
  const json = byteLevelTokenizerJson() as { added_tokens: object[] };
  words.forEach((content, i) =>
    json.added_tokens.push({ id: 257 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }),
  );
  return TextTokenizer.fromJson(json, byteLevelTokenizerConfig(), 'test tokenizer');
}

test('generated tasks and prompts are the same for a seed and differ across seeds', (t) => {
  for (const name of ALGORITHMIC_TASKS) {
    const a = loadTask(name, { seed: 1 }), b = loadTask(name, { seed: 1 });
    t.deepEqual(a.pairs, b.pairs, name);
    t.true(a.pairs.length >= 9, name);
    t.true(a.pairs.every((p) => p.output.length > 0 && p.input.length > 0), name);
  }
  t.notDeepEqual(loadTask('list_first', { seed: 1 }).pairs, loadTask('list_first', { seed: 2 }).pairs);
  const task = loadTask('list_last', { seed: 0 });
  t.deepEqual(buildPrompts(task, task.pairs, 4, 20, 7), buildPrompts(task, task.pairs, 4, 20, 7));
  t.notDeepEqual(buildPrompts(task, task.pairs, 4, 20, 7), buildPrompts(task, task.pairs, 4, 20, 8));
});

test('hand-checked pairs and prompts', (t) => {
  t.deepEqual(loadTask('next_letter').pairs.slice(0, 2), [{ input: 'a', output: 'b' }, { input: 'b', output: 'c' }]);
  t.is(loadTask('next_letter').pairs.length, 25);
  t.deepEqual(loadTask('prev_letter').pairs[0], { input: 'b', output: 'a' });
  t.deepEqual(loadTask('to_upper').pairs[2], { input: 'c', output: 'C' });
  t.deepEqual(loadTask('int_to_char').pairs[0], { input: '1', output: 'a' });
  for (const p of loadTask('list_first', { seed: 3 }).pairs) t.is(p.output, p.input.split(',')[0]);
  for (const p of loadTask('list_max', { seed: 3 }).pairs) t.is(Number(p.output), Math.max(...p.input.split(',').map(Number)));
  for (const p of loadTask('list_length', { seed: 3 }).pairs) t.is(Number(p.output), p.input.split(',').length);
  t.is(countVowels('New York'), 2);
  t.is(countVowels('rhythm'), 0, 'y is not a vowel');
  const [prompt] = buildPrompts(loadTask('to_upper'), loadTask('to_upper').pairs, 2, 1, 0);
  const lines = prompt.text.split('\n');
  t.is(lines.length, 3);
  t.regex(lines[0], /^example:[a-z]->[A-Z]$/);
  t.is(lines[2], `example:${prompt.query.input}->`);
  t.deepEqual(prompt.labels, prompt.examples.map((e) => e.output));
  t.false(prompt.examples.some((e) => e.input === prompt.query.input));
});

test('proxy prompts never contain their answer among the example labels', (t) => {
  // 45 words with one vowel and 45 with two: two usable counts, so the vocabulary is used.
  const consonants = 'bcdfghjklmnpqrstvwxz';
  const vocabWords = Array.from({ length: 90 }, (_, i) => `ba${consonants[i % 15]}${i >= 45 ? 'e' : ''}${consonants[Math.floor((i % 45) / 15)]}`);
  const fromVocab = vowelCountTask(tokenizerWithWords(vocabWords), 257 + vocabWords.length);
  t.regex(fromVocab.source, /model vocabulary \(90 words\)/);
  const tooFew = vowelCountTask(tokenizerWithWords(vocabWords.slice(0, 60)), 257 + 60);
  t.regex(tooFew.source, /built-in word list .*the vocabulary has 60 whole words/, 'one count of 45 and one of 15: not enough');
  const builtin = vowelCountTask(byteLevel, 257);
  t.regex(builtin.source, /built-in word list/);
  for (const task of [fromVocab, builtin]) {
    for (const p of task.pairs) t.is(p.output, String(countVowels(p.input)));
    for (const k of [1, 2, 4, 8]) {
      for (const prompt of buildPrompts(task, task.pairs, k, 200, 5)) {
        t.false(prompt.labels.includes(prompt.expected), `${prompt.text}`);
        t.is(prompt.examples.length, k);
      }
    }
  }
});

test('balanced proxy prompts take each answer in turn and still never show it as a label', (t) => {
  const task = vowelCountTask(byteLevel, 257);
  const answers = [...new Set(task.pairs.map((p) => p.output))].sort();
  const prompts = buildPrompts(task, task.pairs, 4, answers.length * 25, 2, undefined, { balanceAnswers: true });
  const count = (a: string) => prompts.filter((p) => p.expected === a).length;
  for (const a of answers) t.is(count(a), 25, `answer ${a}`);
  t.true(prompts.every((p) => !p.labels.includes(p.expected)));
  t.deepEqual(prompts, buildPrompts(task, task.pairs, 4, answers.length * 25, 2, undefined, { balanceAnswers: true }));
});

test('one-token filtering keeps the leading-space variant as Hendel does', (t) => {
  const tokenizer = tokenizerWithWords([' Paris', ' Rome']);
  const kept = singleTokenPairs(
    [
      { input: 'France', output: 'Paris' },
      { input: 'x', output: 'b' },
      { input: 'y', output: 'cd' },
      { input: 'Italy', output: 'Rome' },
    ],
    tokenizer,
  );
  t.deepEqual(kept, [
    { input: 'France', output: ' Paris' },
    { input: 'x', output: 'b' },
    { input: 'Italy', output: ' Rome' },
  ]);
});

test('scoring: exact after stripping, knowledge prefixes, copy errors', (t) => {
  t.deepEqual(scorePrediction(' Paris', 'Paris', ['Rome'], 'exact'), { correct: true, copyError: false });
  t.deepEqual(scorePrediction('Par', 'Paris', ['Rome'], 'exact'), { correct: false, copyError: false });
  t.deepEqual(scorePrediction('Par', ' Paris', ['Rome'], 'prefix'), { correct: true, copyError: false });
  t.deepEqual(scorePrediction('Paris Texas', 'Paris', [], 'prefix'), { correct: true, copyError: false });
  t.deepEqual(scorePrediction(' Rome', 'Paris', ['Rome', 'Oslo'], 'exact'), { correct: false, copyError: true });
  t.deepEqual(scorePrediction('', 'Paris', [''], 'prefix'), { correct: false, copyError: false });
  t.deepEqual(scorePrediction('Oslo', 'Oslo', ['Oslo'], 'exact'), { correct: true, copyError: false });
});

test('Hendel task files load from the shared data, and bad files are E_TASK_FILE', async (t) => {
  if (!fs.existsSync(DATA)) {
    t.log(`skipped: ${DATA} is absent`);
    console.log(`# Hendel data tests skipped: ${DATA} is absent`);
    return t.pass();
  }
  const capitals = hendelTask(DATA, 'country_capital');
  t.is(capitals.kind, 'knowledge');
  t.is(capitals.scoring, 'prefix');
  t.is(capitals.pairs.length, 139);
  t.true(capitals.pairs.some((p) => p.input === 'Uusimaa' && p.output === 'Helsinki'));
  t.is(hendelTask(DATA, 'antonyms').kind, 'linguistic');
  t.is(hendelTask(DATA, 'en_fr').kind, 'translation');
  t.deepEqual(resolveTaskNames(['hendel18', 'vowel_count,to_upper']), [...HENDEL18, 'vowel_count']);
  for (const name of HENDEL18) t.true(loadTask(name, { dataDir: DATA }).pairs.length > 0, name);

  const bad = tempDir();
  fs.mkdirSync(path.join(bad, 'knowledge'));
  fs.writeFileSync(path.join(bad, 'knowledge', 'broken.json'), '{"a": "b",');
  fs.writeFileSync(path.join(bad, 'knowledge', 'nested.json'), JSON.stringify({ a: { b: 'c' } }));
  t.is(await codeOf(() => hendelTask(bad, 'broken')), 'E_TASK_FILE');
  const e = t.throws(() => hendelTask(bad, 'nested'));
  t.regex(e!.message, /nested\.json: key "a": Expected string/);
  t.is(await codeOf(() => hendelTask(bad, 'missing')), 'E_NOT_FOUND');
  t.is(await codeOf(() => loadTask('antonyms')), 'E_ARG');
});

test('classification JSONL with label words', async (t) => {
  const file = path.join(tempDir(), 'sst2.jsonl');
  fs.writeFileSync(file, '{"text": "a great film", "label": 1}\n{"text": "dull", "label": 0}\n');
  const task = classificationTask(file, { 0: 'negative', 1: 'positive' });
  t.deepEqual(task.pairs, [{ input: 'a great film', output: 'positive' }, { input: 'dull', output: 'negative' }]);
  fs.appendFileSync(file, '{"text": "meh", "label": 2}\n');
  const e = t.throws(() => classificationTask(file, { 0: 'negative', 1: 'positive' }));
  t.regex(e!.message, /sst2\.jsonl:3: label "2" has no word/);
  t.is(await codeOf(() => classificationTask(file, {})), 'E_ARG');
});

/** A GPT-2 whose every prediction is `token`: ln_f squashes the state to its bias e0, lm_head maps e0 to `token`. */
async function forcedModel(token: number): Promise<string> {
  const dir = path.join(tempDir(), 'forced');
  await initCheckpoint('gpt2', dir, { seed: 4, hidden: 32 });
  const file = path.join(dir, 'model.safetensors');
  const st = await readSafetensors(file);
  const E = 32, V = 257;
  const tensors = Object.entries(st.tensors).map(([name, raw]) => ({ name, ...raw }));
  const set = (name: string, data: Float32Array) => (tensors.find((x) => x.name === name)!.data = Buffer.from(data.buffer));
  set('transformer.ln_f.weight', new Float32Array(E));
  const bias = new Float32Array(E);
  bias[0] = 1;
  set('transformer.ln_f.bias', bias);
  const head = new Float32Array(V * E);
  head[token * E] = 10;
  tensors.push({ name: 'lm_head.weight', dtype: 'F32', shape: [V, E], data: Buffer.from(head.buffer) });
  await writeSafetensors(file, tensors);
  const configFile = path.join(dir, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), tie_word_embeddings: false }));
  return dir;
}

test('evaluation counts right when the answer is forced', async (t) => {
  const model = await Model.load(await forcedModel('1'.charCodeAt(0)));
  const result = await evaluate(model, ['vowel_count', 'char_to_int'], { shots: [0, 2, 4], n: 40, seed: 3, keepRecords: true });
  t.deepEqual(result.skipped, []);
  for (const name of ['vowel_count', 'char_to_int']) {
    const task = loadTask(name, { tokenizer: model.tokenizer, vocabSize: 257, seed: 3 });
    for (const k of [0, 2, 4]) {
      const prompts = buildPrompts(task, singleTokenPairs(task.pairs, model.tokenizer), k, 40, 3);
      const right = prompts.filter((p) => p.expected === '1').length;
      const copies = prompts.filter((p) => p.expected !== '1' && p.labels.includes('1')).length;
      const s = result.scores.find((x) => x.task === name && x.shots === k)!;
      t.is(s.correct, right, `${name} ${k}-shot correct`);
      t.is(s.copyErrors, copies, `${name} ${k}-shot copy errors`);
      t.is(s.accuracy, right / 40);
      if (k === 4 && name === 'char_to_int') t.true(copies > 0, 'some prompts show a "1" label');
    }
  }
  t.true(result.records!.every((r) => r.prediction === '1'));
  const mean = result.mean.find((m) => m.shots === 4)!;
  t.is(mean.tasks, 1, 'the proxy task is not in the headline mean');
  t.deepEqual(result.excludedFromMean, ['vowel_count']);
  t.is(mean.accuracy, result.scores.find((x) => x.task === 'char_to_int' && x.shots === 4)!.accuracy);
  model.dispose();
});

test('CLI: eval prints a table and writes results.json; prompts are the same run to run', async (t) => {
  const dir = await forcedModel('1'.charCodeAt(0));
  const out = path.join(tempDir(), 'eval');
  const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
  const args = ['eval', dir, '--tasks', 'vowel_count,next_letter', '--shots', '0,4', '--n', '20', '--seed', '1', '--out', out];
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /vowel_count\s+\d+% \/\s+\d+%/);
  t.regex(r.stdout, /^mean [^\n]*\nvowel_count /m, 'the proxy task on its own row after the mean');
  const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  t.like(results.options, { shots: [0, 4], n: 20, seed: 1, singleToken: true });
  t.regex(results.environment.libtorch.version, /^\d+\.\d+\.\d+$/);
  t.is(results.scores.length, 4);
  t.is(results.records.length, 80);
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).records.map((x: { prompt: string }) => x.prompt), results.records.map((x: { prompt: string }) => x.prompt));
  const bad = spawnSync(process.execPath, [cli, 'eval', dir, '--tasks', 'antonyms'], { encoding: 'utf8' });
  t.regex(bad.stderr, /^E_ARG: task "antonyms" is read from a data folder/);
});

test('the proxy split: every used vowel count has 40+ words, the same number per count, attribution and dev words disjoint', (t) => {
  const task = vowelCountTask(byteLevel, 257);
  const perCount = new Map<string, number>();
  for (const p of task.pairs) perCount.set(p.output, (perCount.get(p.output) ?? 0) + 1);
  t.deepEqual([...perCount.keys()].sort(), ['1', '2', '3', '4']);
  for (const [count, n] of perCount) t.true(n >= MIN_WORDS_PER_COUNT, `${n} words with ${count} vowels`);
  t.is(new Set(BUILTIN_WORDS).size, BUILTIN_WORDS.length, 'no word twice');
  t.true(BUILTIN_WORDS.every((w) => /^[a-z]+$/.test(w)));

  const split = splitProxyPairs(task.pairs, 0);
  t.deepEqual(split.counts, [1, 2, 3, 4]);
  const words = (ps: typeof split.dev) => new Set(ps.map((p) => p.input));
  t.is([...words(split.attribution)].filter((w) => words(split.dev).has(w)).length, 0, 'disjoint');
  for (const part of [split.attribution, split.dev]) {
    for (const c of split.counts) t.is(part.filter((p) => p.output === String(c)).length, split.wordsPerCount);
  }
  t.true(2 * split.wordsPerCount >= MIN_WORDS_PER_COUNT);
  t.deepEqual(splitProxyPairs(task.pairs, 0), split, 'the same for a seed');
  t.notDeepEqual(splitProxyPairs(task.pairs, 1).dev, split.dev);

  // A count with too few words is dropped; fewer than two usable counts is an error that says why.
  const sparse = [...task.pairs.filter((p) => p.output !== '4').slice(0, 200), ...task.pairs.filter((p) => p.output === '4').slice(0, 10)];
  t.false(splitProxyPairs(sparse, 0).counts.includes(4));
  t.is(splitProxyPairs(sparse, 0).dropped['4'], 10);
  const one = task.pairs.filter((p) => p.output === '1');
  const error = t.throws(() => splitProxyPairs(one, 0));
  t.regex(error!.message, /at least two vowel counts need 40 words each; words per count: 1: \d+/);
});

test('whole multi-token answers: exact match of the generated answer, copy errors are whole-answer copies', async (t) => {
  const model = await Model.load(await forcedModel('1'.charCodeAt(0))); // always answers "1", token after token
  const dir = tempDir();
  const file = path.join(dir, 'sst.jsonl');
  fs.writeFileSync(file, Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: `review ${i}`, label: i % 3 === 0 ? 1 : 0 })).join('\n'));
  const labelWords = { '0': '11', '1': '12' }; // two tokens each in the byte-level vocabulary
  const oneToken = await evaluate(model, [file], { shots: [4], n: 30, labelWords });
  t.deepEqual(oneToken.scores, []);
  t.regex(oneToken.skipped[0].reason, /0 of 30 pairs usable \(one-token answers\)/);

  const knowledge: Task = { name: 'facts', kind: 'knowledge', scoring: 'prefix', source: 'test', pairs: ['a', 'b', 'c', 'd', 'e', 'f'].map((x, i) => ({ input: x, output: i % 2 ? '11' : '1' })) };
  const whole = await evaluate(model, [file, knowledge], { shots: [4], n: 30, labelWords, singleToken: false, keepRecords: true });
  t.deepEqual(whole.skipped, []);
  const task = classificationTask(file, labelWords);
  const prompts = buildPrompts(task, task.pairs, 4, 30, 0);
  const sst = whole.scores.find((s) => s.task === 'sst')!;
  t.true(whole.records!.filter((r) => r.task === 'sst').every((r) => r.prediction === '11'), 'two tokens generated, the whole answer kept');
  t.is(sst.correct, prompts.filter((p) => p.expected === '11').length);
  t.is(sst.copyErrors, prompts.filter((p) => p.expected === '12' && p.labels.includes('11')).length);
  t.true(sst.copyErrors > 0 && sst.correct > 0);
  // "11" for "1" is a prefix match, but a whole answer must match exactly.
  const facts = whole.records!.filter((r) => r.task === 'facts');
  t.true(facts.every((r) => r.prediction === '11' && r.correct === (r.expected === '11')));
  t.true(facts.some((r) => r.expected === '1'));
  model.dispose();
});

test('synthetic corpus: copy-bias label noise repeats the previous label at the asked rate, and is off by default', (t) => {
  const lines = (texts: string[]) => texts.map((x) => x.split('\n').map((l) => l.split('->')[1]));
  const rate = (texts: string[]) => {
    let repeats = 0, total = 0;
    for (const labels of lines(texts)) for (let k = 1; k < labels.length; k++) (total += 1), (repeats += Number(labels[k] === labels[k - 1]));
    return repeats / total;
  };
  const clean = syntheticCorpus({ samples: 3000, seed: 2, randomMapShare: 0 });
  const noisy = syntheticCorpus({ samples: 3000, seed: 2, randomMapShare: 0, copyShare: 0.3 });
  t.deepEqual(syntheticCorpus({ samples: 50, seed: 2 }), syntheticCorpus({ samples: 50, seed: 2, copyShare: 0 }), 'copyShare 0 is the old corpus');
  // Clean labels repeat by chance now and then (list tasks); with the noise, about 30% more of them do.
  const base = rate(clean), got = rate(noisy);
  t.true(base < 0.15, `clean ${base}`);
  t.true(Math.abs(got - (base + 0.3 * (1 - base))) < 0.03, `clean ${base}, noisy ${got}`);
  // Vowel counting is trained on random strings of 3-12 letters with 1-4 vowels, each count about as often.
  const counts = new Map<number, number>();
  for (const text of clean) for (const line of text.split('\n')) {
    const m = /^example:([a-z]{3,})->(\d)$/.exec(line);
    if (m && m[1].length > 1) counts.set(countVowels(m[1]), (counts.get(countVowels(m[1])) ?? 0) + 1);
  }
  t.deepEqual([...counts.keys()].sort(), [1, 2, 3, 4]);
  const shares = [...counts.values()].map((n) => n / [...counts.values()].reduce((a, b) => a + b));
  t.true(shares.every((x) => Math.abs(x - 0.25) < 0.07), JSON.stringify([...counts]));
  // The first line of a sample keeps its right label: vowel-count first lines always count right.
  const vowelFirst = noisy.map((x) => x.split('\n')[0]).filter((l) => /^example:[a-z]+->\d$/.test(l) && !/^example:[a-z]->/.test(l));
  t.true(vowelFirst.length > 50);
  for (const l of vowelFirst) t.is(l.split('->')[1], String(countVowels(l.slice(8).split('->')[0])), l);
});
