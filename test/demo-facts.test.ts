// The embedded facts model: a Llama (grouped-query attention) on the word-level facts tokenizer that
// recalls trained facts in templates it never saw, fails on facts it never saw (so recall is knowledge,
// not a template trick), and answers multiple choice in the qrneuron format. Then one relation's neurons.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildFacts, CHOICE_LETTERS, evaluateFacts, factsQrneuron, Model } from '../lib';
import { packageRoot } from '../lib/native';
import { factsPrune } from '../lib/pipelines/facts-prune';
import { referencePython } from './python';

const MODEL = path.join(packageRoot(), 'models', 'demo-facts');
const DATA = path.join(packageRoot(), '..', 'shared', 'data');
const hasData = fs.existsSync(path.join(DATA, 'lre', 'factual'));
if (!hasData) console.log(`demo-facts tests skip: ${DATA}/lre/factual is missing (the evaluation sets are built from it)`);
const dataTest = hasData ? test.serial : test.skip;

test('models/demo-facts is a small Llama with grouped-query attention on the facts tokenizer', async (t) => {
  const model = await Model.load(MODEL);
  t.like(model.info, { architecture: 'LlamaForCausalLM', nLayers: 4, dModel: 128, nHeads: 4 });
  t.is((model.info.config as { num_key_value_heads: number }).num_key_value_heads, 2);
  t.true(fs.statSync(path.join(MODEL, 'model.safetensors')).size <= 10 * 1024 * 1024);
  const training = JSON.parse(fs.readFileSync(path.join(MODEL, 'training.json'), 'utf8'));
  t.true(training.ms / 1000 <= 30 * 60, `trained in ${training.ms / 1000} s`);
  t.deepEqual(model.tokenizer.encode('The capital of France is Paris').length, 6, 'word tokens');
  model.dispose();
});

dataTest('models/demo-facts recalls trained facts in held-out templates, not unseen facts, and answers multiple choice on trained facts only', async (t) => {
  const model = await Model.load(MODEL);
  const build = buildFacts({ dataDir: DATA, seed: 0 });
  const r = await evaluateFacts(model, build.eval, build.relations);
  const by = (name: string) => r.relations.find((s) => s.relation === name)!;
  for (const s of r.relations) {
    t.log(`${s.relation}: held-out templates ${s.heldOutTemplates.toFixed(2)} (ranked ${s.heldOutRanked.toFixed(2)}), unseen ${s.unseenFacts.toFixed(2)}, MC ${s.choice.toFixed(2)}, MC unseen ${s.choiceUnseen.toFixed(2)}`);
  }
  for (const name of ['country_capital_city', 'city_in_country', 'landmark_in_country', 'person_occupation', 'company_hq']) t.true(by(name).heldOutTemplates >= 0.9, `${name}: ${by(name).heldOutTemplates}`);
  t.true(r.mean.heldOutTemplates >= 0.8, `mean recall on held-out templates ${r.mean.heldOutTemplates}`);
  t.true(r.mean.heldOutRanked >= 0.9, `mean ranked recall on held-out templates ${r.mean.heldOutRanked}`);
  t.is(r.mean.trainTemplates, 1, 'the corpus itself is learnt');
  t.true(r.mean.unseenFacts <= 0.15, `mean recall of unseen facts ${r.mean.unseenFacts}`);
  t.true(r.mean.heldOutTemplates >= r.mean.unseenFacts + 0.6);
  // Multiple choice: the recalled object is found among the options on trained facts, not on unseen ones.
  t.true(r.mean.choice >= 0.9, `multiple choice ${r.mean.choice} (chance 0.25)`);
  t.true(r.mean.choiceUnseen <= 0.45, `multiple choice on unseen facts ${r.mean.choiceUnseen}`);
  t.true(Math.min(...r.relations.map((s) => s.choice)) >= 0.85, 'every relation');
  model.dispose();
});

dataTest("pruning one relation's top Integrated-Gradients neurons hurts that relation beyond random neurons", async (t) => {
  const model = await Model.load(MODEL);
  const build = buildFacts({ dataDir: DATA, seed: 0 });
  const before = await model.weightsDigest();
  const r = await factsPrune(model, build, { relation: 'person_occupation', top: 50, prompts: 48, steps: 10, draws: 2 });
  t.is(r.neurons.length, 50);
  t.is(await model.weightsDigest(), before, 'every edit is restored');
  const randomAfter = r.random.reduce((a, x) => a + x.after.person_occupation, 0) / r.random.length;
  t.log(`person_occupation: ${r.before.person_occupation.toFixed(2)} -> top ${r.after.person_occupation.toFixed(2)}, random ${randomAfter.toFixed(2)}`);
  t.true(r.after.person_occupation <= randomAfter - 0.1, `top ${r.after.person_occupation} vs random ${randomAfter}`);
  // The drop has a paired-bootstrap interval that excludes 0 and lies beyond every random draw.
  const change = r.change.person_occupation;
  t.true(change.high < 0 && Math.abs(change.delta - (r.after.person_occupation - r.before.person_occupation)) < 1e-12, JSON.stringify(change));
  t.true(change.delta < r.randomRange.person_occupation[0], `${change.delta} vs random ${r.randomRange.person_occupation}`);
  // Every relation is measured before and after; whether the set spares the others is a finding, not a
  // guarantee (on this model it does not: README, "The facts model"), so it is logged, not asserted.
  t.deepEqual(Object.keys(r.after).sort(), build.relations.map((x) => x.name).sort());
  t.log(Object.entries(r.change).map(([n, c]) => `${n} ${(100 * c.delta).toFixed(0)}`).join(', '));
  model.dispose();
});

dataTest('models/demo-facts answers the qrneuron-format queries of its facts (what query-neurons reads)', async (t) => {
  const model = await Model.load(MODEL);
  const qa = Object.values(factsQrneuron(buildFacts({ dataDir: DATA, seed: 0 })));
  const sample = qa.filter((_, i) => i % 10 === 0);
  const letters = CHOICE_LETTERS.map((l) => model.tokenizer.encode(' ' + l, { addSpecialTokens: false })[0]);
  const prompts = sample.flatMap((q) => q.sentences);
  const gold = sample.flatMap((q) => q.obj_label);
  const logits = await model.logits(prompts, { lastOnly: true });
  let right = 0;
  prompts.forEach((_, b) => {
    const row = logits.at(b, 0);
    const best = letters.reduce((a, id, k) => (row[id] > row[letters[a]] ? k : a), 0);
    if (CHOICE_LETTERS[best] === gold[b]) right++;
  });
  t.log(`${right} of ${prompts.length} qrneuron prompts answered`);
  t.true(right / prompts.length >= 0.9, `${right} / ${prompts.length}`);
  model.dispose();
});

test("HF transformers loads models/demo-facts with its tokenizer.json and continues prompts as we do", async (t) => {
  const ref = referencePython(['transformers', 'torch']);
  if ('skip' in ref) {
    t.log(`skipped: ${ref.skip}`);
    t.pass();
    return;
  }
  const prompts = ['The capital of France is the city of', 'Q: Where is Ipsos MORI based? A:', 'Question: Peru, where most people speak [Y] .\n A. Korean\n B. Urdu\n C. Turkish\n D. Spanish\nAnswer:'];
  const code = [
    'import json, sys, torch',
    'from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast',
    'tok = PreTrainedTokenizerFast(tokenizer_file=sys.argv[1] + "/tokenizer.json")',
    'm = AutoModelForCausalLM.from_pretrained(sys.argv[1])',
    'out = []',
    'for p in json.loads(sys.argv[2]):',
    '    ids = tok(p, return_tensors="pt").input_ids',
    '    out.append(m.generate(ids, max_new_tokens=3, do_sample=False)[0][ids.shape[1]:].tolist())',
    'print(json.dumps(out))',
  ].join('\n');
  const r = spawnSync(ref.python, ['-c', code, MODEL, JSON.stringify(prompts)], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  t.is(r.status, 0, r.stderr);
  const model = await Model.load(MODEL);
  const ours = await model.generate(prompts, { maxNewTokens: 3 });
  t.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), ours.map((g) => g.tokens));
  model.dispose();
});
