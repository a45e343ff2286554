// The facts corpus (synth-data --kind facts): deterministic for a seed, held-out templates and unseen
// facts never in training, multiple choice in the qrneuron shape; its word-level tokenizer loads in our
// tokenizer library and in Hugging Face's `tokenizers` with the same ids; the CLI's coded errors.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/native';
import { initCheckpoint, Model } from '../lib';
import { TextTokenizer } from '../lib/tokenizer';
import { buildFacts, FACT_RELATIONS, factsQrneuron, factsTexts, factsTokenizerConfig, factsTokenizerJson, plainText, words } from '../lib/tasks/facts';
import { referencePython } from './python';
import { codeOf, tempDir } from './helpers';

const DATA = path.join(packageRoot(), '..', 'shared', 'data');
const hasData = fs.existsSync(path.join(DATA, 'lre', 'factual'));
const dataTest = hasData ? test : test.skip;
if (!hasData) console.log(`facts tests skip: ${DATA}/lre/factual is missing`);
const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');

dataTest('the facts corpus is the same for a seed, differs across seeds, and holds every relation', (t) => {
  const a = buildFacts({ dataDir: DATA, seed: 0 }), b = buildFacts({ dataDir: DATA, seed: 0 }), c = buildFacts({ dataDir: DATA, seed: 1 });
  t.deepEqual(a.corpus, b.corpus);
  t.deepEqual(a.eval, b.eval);
  t.notDeepEqual(a.corpus, c.corpus);
  t.deepEqual(a.relations.map((r) => r.name), FACT_RELATIONS.map((r) => r.name));
  for (const r of a.relations) {
    t.true(r.trainFacts.length >= 10, `${r.name}: ${r.trainFacts.length} trained facts`);
    t.true(r.unseenFacts.length >= 3, `${r.name}: ${r.unseenFacts.length} unseen facts`);
    t.is(r.heldOutTemplates.length, 2, r.name);
    t.true(r.trainTemplates.length >= 4, r.name);
    // No template goes on from another ("{} is part of" / "{} is part of the country of"): the object is the only right next word.
    const after = (x: string) => x.slice(x.indexOf('{}') + 2);
    const all = [...r.trainTemplates, ...r.heldOutTemplates];
    for (const u of all) for (const v of all) if (after(u) !== after(v)) t.false(after(u).startsWith(after(v)), `${r.name}: "${u}" goes on from "${v}"`);
    t.true(r.range.length >= 4, `${r.name}: a range of ${r.range.length}`);
  }
});

dataTest('no held-out template and no unseen fact occurs in the training corpus', (t) => {
  const build = buildFacts({ dataDir: DATA, seed: 0 });
  const corpus = build.corpus.join('\n');
  const corpusWords = new Set(build.corpus.flatMap(words));
  for (const r of build.relations) {
    for (const template of r.heldOutTemplates) {
      t.false(r.trainTemplates.includes(template));
      // No trained fact appears in a held-out template, neither as a statement nor inside a question.
      for (const f of r.trainFacts) t.false(corpus.includes(template.replace('{}', f.subject) + ' '), `${template} / ${f.subject}`);
      t.false(r.trainTemplates.some((u) => u.startsWith(template)), `${template} is a prefix of a training template`);
      // Its words are all known: a paraphrase, not new vocabulary.
      for (const w of words(template.replace('{}', ' '))) t.true(corpusWords.has(w), `${r.name}: "${w}" of "${template}"`);
    }
    // An unseen subject is no trained fact's subject in any relation (a country may still occur as an object).
    const trainedSubjects = new Set(build.relations.flatMap((x) => x.trainFacts.map((f) => f.subject)));
    for (const f of r.unseenFacts) {
      t.false(trainedSubjects.has(f.subject), f.subject);
      for (const template of [...r.trainTemplates, ...r.heldOutTemplates]) t.false(corpus.includes(template.replace('{}', f.subject)), `${template} / ${f.subject}`);
    }
  }
  const e = build.eval;
  t.true(e.heldOutTemplates.every((i) => build.relations.find((r) => r.name === i.relation)!.heldOutTemplates.includes(i.template)));
  t.true(e.unseenFacts.length > 0 && e.unseenFacts.every((i) => !corpus.includes(i.prompt)));
});

dataTest('multiple-choice prompts have four options of the range, the answer among them, and end in "Answer:"', (t) => {
  const build = buildFacts({ dataDir: DATA, seed: 0 });
  const letters = new Map<string, number>();
  for (const item of [...build.eval.choice, ...build.eval.choiceUnseen]) {
    const r = build.relations.find((x) => x.name === item.relation)!;
    t.is(item.options.length, 4);
    t.is(new Set(item.options).size, 4);
    t.true(item.options.every((o) => r.range.includes(o)));
    const fact = [...r.trainFacts, ...r.unseenFacts].find((f) => f.subject === item.subject)!;
    t.is(item.options['ABCD'.indexOf(item.answer)], fact.object);
    t.regex(item.prompt, /\[Y\] \.\n A\. .+\n B\. .+\n C\. .+\n D\. .+\nAnswer:$/);
    letters.set(item.answer, (letters.get(item.answer) ?? 0) + 1);
  }
  t.is(letters.size, 4, 'every letter is a right answer somewhere');
  t.true(build.corpus.some((text) => /\nAnswer: [ABCD]$/.test(text)), 'the corpus holds multiple choice');
});

dataTest('the relations come from LRE factual, LRE commonsense and the ICL knowledge files', (t) => {
  const build = buildFacts({ dataDir: DATA, seed: 0 });
  const sources = new Set(FACT_RELATIONS.map((r) => r.source ?? 'lre/factual'));
  t.deepEqual([...sources].sort(), ['icl_task_vectors/knowledge', 'lre/commonsense', 'lre/factual']);
  // A knowledge-file relation ({subject: object}): its facts are the file's pairs.
  const continent = build.relations.find((r) => r.name === 'location_continent')!;
  const file = JSON.parse(fs.readFileSync(path.join(DATA, 'icl_task_vectors', 'knowledge', 'location_continent.json'), 'utf8')) as Record<string, string>;
  for (const f of [...continent.trainFacts, ...continent.unseenFacts]) t.is(plainText(file[f.subject] ?? ''), f.object, f.subject);
  t.true(continent.trainTemplates.length >= 4);
  // A knowledge file that is not an object of strings is a coded error naming the file.
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'icl_task_vectors', 'knowledge'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'icl_task_vectors', 'knowledge', 'location_continent.json'), '[1, 2]');
  const error = t.throws(() => buildFacts({ dataDir: dir, relations: ['location_continent'] }));
  t.is((error as { code?: string }).code, 'E_TASK_FILE');
  t.regex(error!.message, /location_continent\.json: expected an object/);
});

dataTest('the qrneuron-format queries: three prompts per trained fact, the same four options reordered, the gold letter of each', (t) => {
  const build = buildFacts({ dataDir: DATA, seed: 0 });
  const qa = factsQrneuron(build);
  t.is(Object.keys(qa).length, build.relations.reduce((n, r) => n + r.trainFacts.length, 0));
  t.deepEqual(new Set(Object.values(qa).map((q) => q.relation_name)), new Set(build.relations.map((r) => r.name)));
  for (const [id, q] of Object.entries(qa)) {
    const [relation, subject] = [id.slice(0, id.indexOf('/')), id.slice(id.indexOf('/') + 1)];
    const r = build.relations.find((x) => x.name === relation)!;
    const fact = r.trainFacts.find((f) => f.subject === subject)!;
    t.truthy(fact, id);
    t.is(q.sentences.length, 3);
    const optionSets = q.sentences.map((s) => [...s.matchAll(/\n [ABCD]\. (.+)/g)].map((m) => m[1]));
    q.sentences.forEach((s, k) => {
      t.regex(s, /^Question: .+ \[Y\] \.\n A\. .+\n B\. .+\n C\. .+\n D\. .+\nAnswer:$/);
      t.is(optionSets[k]['ABCD'.indexOf(q.obj_label[k])], fact.object, `${id} prompt ${k}`);
      t.deepEqual([...optionSets[k]].sort(), [...optionSets[0]].sort());
      t.true(r.trainTemplates.some((tpl) => s.includes(tpl.replace('{}', subject))), `${id}: a training template`);
    });
  }
  t.deepEqual(factsQrneuron(build), qa, 'deterministic for a seed');
});

dataTest('the facts tokenizer: entities are word tokens, and @huggingface/tokenizers and HF tokenizers give the same ids', (t) => {
  const build = buildFacts({ dataDir: DATA, seed: 0 });
  const json = factsTokenizerJson(factsTexts(build));
  const tok = TextTokenizer.fromJson(json, factsTokenizerConfig(), 'facts tokenizer');
  t.is(tok.eosId, 1);
  // Every object's words are whole tokens; recall is a multi-token exact match over them.
  for (const r of build.relations) for (const object of r.range) t.is(tok.encode(object).length, words(object).length, object);
  t.deepEqual(tok.encode('The capital of France is Paris'), ['The', 'capital', 'of', 'France', 'is', 'Paris'].map((w) => tok.tokenToId(w)!));
  const samples = [...build.corpus.slice(0, 20), ...build.eval.choice.slice(0, 3).map((c) => c.prompt), 'Zorblax is unknown: 42!'];
  // ASCII only: the JS port's Whitespace pre-tokenizer splits on ASCII \w, the Rust one on Unicode \w (the corpus is ASCII).
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(dir, 'samples.json'), JSON.stringify(samples));
  const ref = referencePython(['tokenizers']);
  if ('skip' in ref) {
    t.log(`the Hugging Face comparison skips: ${ref.skip}`);
    return;
  }
  const code = `import json, sys\nfrom tokenizers import Tokenizer\nt = Tokenizer.from_file(sys.argv[1] + '/tokenizer.json')\nprint(json.dumps([t.encode(s).ids for s in json.load(open(sys.argv[1] + '/samples.json'))]))`;
  const r = spawnSync(ref.python, ['-c', code, dir], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), samples.map((s) => tok.encode(s)));
});

dataTest('buildFacts: coded errors for a missing data folder and an unknown relation', async (t) => {
  t.is(await codeOf(() => buildFacts({ dataDir: path.join(tempDir(), 'nowhere') })), 'E_TASK_FILE');
  t.is(await codeOf(() => buildFacts({ dataDir: tempDir() })), 'E_TASK_FILE');
  t.is(await codeOf(() => buildFacts({ dataDir: DATA, relations: ['country_capital_city', 'no_such_relation'] })), 'E_ARG');
});

dataTest('synth-data --kind facts writes the corpus, the tokenizer and the evaluation sets; bad --kind and --data-dir are coded errors', (t) => {
  const dir = tempDir();
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const ok = run('synth-data', '--kind', 'facts', '--out', path.join(dir, 'corpus.jsonl'), '--data-dir', DATA, '--relations', 'country_capital_city,country_language');
  t.is(ok.status, 0, ok.stderr);
  const lines = fs.readFileSync(path.join(dir, 'corpus.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
  t.deepEqual(lines, buildFacts({ dataDir: DATA, relations: ['country_capital_city', 'country_language'] }).corpus);
  t.true(fs.existsSync(path.join(dir, 'tokenizer', 'tokenizer.json')));
  t.true(fs.existsSync(path.join(dir, 'corpus.eval.json')));
  const qa = JSON.parse(fs.readFileSync(path.join(dir, 'corpus.qa.json'), 'utf8'));
  t.deepEqual(qa, factsQrneuron(buildFacts({ dataDir: DATA, relations: ['country_capital_city', 'country_language'] })));
  const badKind = run('synth-data', '--kind', 'poems', '--out', path.join(dir, 'x.jsonl'));
  t.is(badKind.status, 1);
  t.regex(badKind.stderr, /^E_ARG: --kind must be icl, facts, concept or prompts/);
  const badDir = run('synth-data', '--kind', 'facts', '--out', path.join(dir, 'y.jsonl'), '--data-dir', path.join(dir, 'nowhere'));
  t.is(badDir.status, 1);
  t.regex(badDir.stderr, /^E_TASK_FILE: --data-dir .* is not a folder/);
  t.false(fs.existsSync(path.join(dir, 'y.jsonl')));
  const badDirEval = run('eval-facts', 'random:llama-tiny', '--data-dir', path.join(dir, 'nowhere'));
  t.is(badDirEval.status, 1);
  t.regex(badDirEval.stderr, /^E_TASK_FILE: /);
});

dataTest('init --tokenizer: the checkpoint takes the tokenizer, its vocabulary size and its end-of-text id', async (t) => {
  const build = buildFacts({ dataDir: DATA, seed: 0, relations: ['country_capital_city'] });
  const tokDir = tempDir();
  const json = factsTokenizerJson(factsTexts(build)) as { model: { vocab: Record<string, number> } };
  fs.writeFileSync(path.join(tokDir, 'tokenizer.json'), JSON.stringify(json));
  fs.writeFileSync(path.join(tokDir, 'tokenizer_config.json'), JSON.stringify(factsTokenizerConfig()));
  const out = path.join(tempDir(), 'model');
  await initCheckpoint('llama', out, { layers: 1, hidden: 32, heads: 4, kvHeads: 2, tokenizer: tokDir });
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  t.is(config.vocab_size, Object.keys(json.model.vocab).length);
  t.is(config.eos_token_id, 1);
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')), json);
  const model = await Model.load(out);
  t.is(model.info.vocabSize, config.vocab_size);
  t.is(model.tokenizer.encode('The capital of France is').length, 5);
  model.dispose();
  t.is(await codeOf(initCheckpoint('llama', path.join(tempDir(), 'm'), { vocab: config.vocab_size - 1, tokenizer: tokDir })), 'E_ARG');
  t.is(await codeOf(initCheckpoint('llama', path.join(tempDir(), 'm'), { tokenizer: path.join(tempDir(), 'none') })), 'E_TOKENIZER');
});

test('plainText decodes the twice-escaped \\u sequences of some LRE strings and drops accents', (t) => {
  t.is(plainText('Bras\\u00edlia'), 'Brasilia');
  t.is(plainText('Bo\u00f6tes '), 'Bootes');
  t.is(plainText('Paris'), 'Paris');
});
