#!/usr/bin/env node
/** The `neuroprune` command. */
import { Command, CommanderError, Option } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { OBJECTIVES, POSITIONS, RULES, writeJson } from '../attribution';
import { progressBar } from './progress';
import { initCheckpoint } from '../checkpoint';
import { NeuropruneError, toNeuropruneError } from '../errors';
import { DType, ModelInfo } from '../model';
import { neuronSet, readNeuronSet } from '../neurons';
import { runCopyBias } from './copybias';
import { runQueryNeurons } from './query-neurons';
import { runCircuit } from './circuit';
import { runAttribute } from './attribute';
import { runEval } from './eval';
import { runMerge } from './merge';
import { DEFAULT_ATTRIBUTE_CHUNK } from '../pipelines/attribute-chunks';
import { evaluateFacts, formatFactsTable } from '../pipelines/facts';
import { factsPrune, formatFactsPruneTable } from '../pipelines/facts-prune';
import { runTaskVectors } from './task-vectors';
import { runRelearn } from './relearn';
import { buildLocationConcept, conceptJsonl } from '../tasks/concept';
import { interruptible, withModel } from './session';
import { readCorpus } from '../training';
import { loadTask, resolveTaskNames, syntheticCorpus } from '../tasks';
import { attributionPrompts } from '../tasks/prompts';
import { buildFacts, FACT_RELATIONS, factsQrneuron, factsTexts, factsTokenizerConfig, factsTokenizerJson } from '../tasks/facts';
import { familyNames, presetNames } from '../presets';
import { environment, versionLine } from '../environment';

const int = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new NeuropruneError('E_ARG', `--${name} must be a non-negative integer, got "${value}"`);
  return n;
};

const deviceOption = () => new Option('--device <device>', 'cpu, cuda or cuda:N').default('cpu');
const shardOption = () =>
  new Option('--shard <i/N>', 'do shard i of N (0-based) into DIR/shards/<i>-of-<N>; default from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX with NEUROPRUNE_SHARD_COUNT; 0/1 forces one unsharded run');
// Several devices (README "Several devices"): replicas (--devices) or one model split over them (--device-map).
const devicesOption = () => new Option('--devices <list>', 'one model replica per device, prompts shared out: cuda:0,cuda:1,... (or cpu,cpu; all = every GPU)');
const deviceMapOption = () => new Option('--device-map <map>', 'split the layers over devices: auto, balanced, auto:DEV,..., balanced:DEV,... or 0-5:cuda:0,6-11:cuda:1');
const dtypeOption = () => new Option('--dtype <dtype>', 'weights dtype').choices(['float32', 'bfloat16', 'float16']).default('float32');

function formatInfo(info: ModelInfo): string {
  const rows: Array<[string, string | number]> = [
    ['model', info.id],
    ['architecture', `${info.architecture} (${info.modelType})`],
    ['layers', info.nLayers],
    ['hidden size', info.dModel],
    ['heads', info.nHeads],
    [info.neuronSite === 'mlp.hook_post' ? 'MLP neurons per layer' : 'neurons per layer', `${info.dMlp} at blocks.{l}.${info.neuronSite}`],
    ['vocab', info.vocabSize],
    ['parameters', info.nParams.toLocaleString('en-US')],
    ['dtype', info.dtype],
    ['device', info.device],
  ];
  // --device-map: runs of layers per device, e.g. "0-5 cuda:0, 6-11 cuda:1".
  if (info.layerDevices) {
    const runs: string[] = [];
    info.layerDevices.forEach((d, l) => {
      if (l > 0 && d === info.layerDevices![l - 1]) runs[runs.length - 1] = runs[runs.length - 1].replace(/^(\d+)(-\d+)? /, `$1-${l} `);
      else runs.push(`${l} ${d}`);
    });
    rows.push(['layers on', runs.join(', ')]);
  }
  return rows.map(([k, v]) => `${k.padEnd(22)} ${v}`).join('\n');
}

/** --label-words 0=negative,1=positive -> { '0': 'negative', '1': 'positive' } */
function parseLabelWords(value: string | undefined): Record<string, string> {
  return Object.fromEntries(
    (value ?? '').split(',').filter(Boolean).map((kv) => {
      const [k, ...w] = kv.split('=');
      if (!w.length || !w.join('=')) throw new NeuropruneError('E_ARG', `--label-words: "${kv}" is not label=word`);
      return [k, w.join('=')];
    }),
  );
}

export function buildProgram(): Command {
  const program = new Command('neuroprune')
    .description('Find, score and switch off the neurons of large language models')
    .option('-V, --version', 'print the versions of neuroprune and of the LibTorch it runs on (and where that is)')
    .showHelpAfterError()
    // Set before the subcommands are added: they copy these settings.
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error: ') ? `E_ARG: ${s.slice(7)}` : s) });

  program
    .command('init')
    .description(`write a random checkpoint in HF layout (families: ${familyNames().join(', ')}; presets: ${presetNames().join(', ')})`)
    .argument('<arch>', 'architecture family or preset')
    .requiredOption('--out <dir>', 'output folder')
    .option('--layers <n>', 'number of layers', int('layers'))
    .option('--hidden <n>', 'hidden size', int('hidden'))
    .option('--heads <n>', 'attention heads', int('heads'))
    .option('--kv-heads <n>', 'key/value heads (Llama family: grouped-query attention)', int('kv-heads'))
    .option('--vocab <n>', 'vocabulary size (at least 257)', int('vocab'))
    .option('--mlp <n>', 'MLP neurons per layer (default 4 x hidden)', int('mlp'))
    .option('--seed <n>', 'random seed', int('seed'), 0)
    .option('--tokenizer <dir>', "use DIR/tokenizer.json (and tokenizer_config.json) instead of the byte-level one; the vocabulary size and end-of-text id follow it")
    .addOption(dtypeOption())
    .option('--force', 'replace a non-empty output folder')
    .action(async (arch: string, o) => {
      const out = await interruptible((signal) => initCheckpoint(arch, o.out, {
        layers: o.layers, hidden: o.hidden, heads: o.heads, kvHeads: o.kvHeads, vocab: o.vocab, mlp: o.mlp,
        seed: o.seed, dtype: o.dtype as DType, force: Boolean(o.force), tokenizer: o.tokenizer, signal,
      }));
      process.stdout.write(`wrote ${out}\n`);
    });

  program
    .command('info')
    .description('architecture, sizes, neurons per layer, parameters, dtype and device')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .addOption(deviceMapOption())
    .option('--json', 'print JSON')
    .action(async (id: string, o) => {
      await withModel(id, { device: o.device, dtype: o.dtype, deviceMap: o.deviceMap }, async (model) => {
        const { config, ...info } = model.info;
        process.stdout.write(o.json ? JSON.stringify({ ...info, config }, null, 2) + '\n' : formatInfo(model.info) + '\n');
      });
    });

  program
    .command('generate')
    .description('greedy continuation of a prompt')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--max-new-tokens <n>', 'tokens to generate', int('max-new-tokens'), 20)
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .option('--neurons <file>', 'a neuron-set file whose activations --scale multiplies')
    .option('--scale <factor>', 'activation factor for --neurons (0 suppresses, 2 enhances)', parseFloat)
    .option('--json', 'print JSON')
    .addOption(deviceMapOption())
    .action(async (id: string, o) => {
      if ((o.neurons === undefined) !== (o.scale === undefined)) throw new NeuropruneError('E_ARG', '--neurons and --scale go together');
      const neurons = o.neurons ? await readNeuronSet(o.neurons) : undefined;
      await withModel(id, { device: o.device, dtype: o.dtype, deviceMap: o.deviceMap }, async (model, signal) => {
        if (neurons) await model.scale(neurons, o.scale);
        const started = performance.now();
        const g = await model.generate(o.prompt as string, { maxNewTokens: o.maxNewTokens, signal });
        const ms = performance.now() - started;
        if (o.json) process.stdout.write(JSON.stringify({ model: id, ...g, ms: Math.round(ms) }) + '\n');
        else process.stdout.write(`${g.prompt}${g.text}\n`);
      });
    });

  program
    .command('attribute')
    .description('Integrated Gradients over the MLP neurons of every layer; writes attributions.safetensors and summary.json')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--prompts <file>', 'JSONL: {"prompt", "target", "distractor"?, "labels"?} per line')
    .requiredOption('--out <dir>', 'output folder')
    .addOption(new Option('--objective <name>', 'what F measures').choices(OBJECTIVES).default('prob'))
    .option('--steps <n>', 'Riemann steps', int('steps'), 20)
    .addOption(new Option('--rule <rule>', 'Riemann rule').choices(RULES).default('riemann_right'))
    .addOption(new Option('--positions <which>', 'positions whose activations are scaled').choices(POSITIONS).default('last'))
    .option('--layers <list>', 'comma-separated layers (default all)', (v: string) => v.split(',').map((x) => int('layers')(x.trim())))
    .addOption(new Option('--method <method>', 'fast path or the per-layer reference').choices(['fast', 'reference']).default('fast'))
    .option('--memory-budget-mb <n>', 'memory for activations kept for the backward pass', parseFloat, 2048)
    .option('--top <n>', 'top neurons listed in summary.json', int('top'), 50)
    .option('--chunk-size <n>', `prompts per chunk: one native call, one resumable file, one item of the --devices queue (${DEFAULT_ATTRIBUTE_CHUNK}); shards and unsharded runs must agree`, int('chunk-size'))
    .addOption(shardOption())
    .option('--resume', 'continue a killed run from its chunks (DIR.partial, or DIR/shards/<i>-of-<N> for a shard)')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .addOption(devicesOption())
    .addOption(deviceMapOption())
    .action(async (id: string, o) => {
      await runAttribute(id, o);
    });

  program
    .command('merge')
    .description('put the shards of a sharded run (DIR/shards/<i>-of-<N>) together into the files one unsharded run writes, checking that every shard is there, complete and made with the same settings')
    .argument('<dirs...>', 'run folders holding shards/, or shard folders themselves')
    .option('--out <dir>', 'where the outputs go (default: the run folder DIR)')
    .option('--model <model>', 'copybias, query-neurons, circuit: the model that finishes the pipeline (default: the one the shards used)')
    .option('--device <device>', 'copybias, query-neurons, circuit: device for the stages merge runs (default: the shards\' device)')
    .addOption(new Option('--dtype <dtype>', 'copybias, query-neurons, circuit: must be the shards\' dtype').choices(['float32', 'bfloat16', 'float16']))
    .action(async (dirs: string[], o) => {
      await runMerge(dirs, o);
    });

  program
    .command('eval')
    .description('few-shot accuracy and copy-error rate on ICL tasks; prints a table and writes results.json')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--tasks <list>', 'comma-separated task names, hendel18, vowel_count, or FILE.jsonl')
    .option('--shots <list>', 'shot counts', (v: string) => v.split(',').map((x) => int('shots')(x.trim())), [0, 1, 2, 4])
    .option('--n <n>', 'prompts per task and shot count', int('n'), 100)
    .option('--seed <n>', 'seed for prompts and generated tasks', int('seed'), 0)
    .option('--data-dir <dir>', 'folder with the Hendel task files (knowledge/, linguistic/, translation/)')
    .option('--label-words <map>', 'for FILE.jsonl tasks: label=word,... (e.g. 0=negative,1=positive)')
    .option('--all-answers', 'keep pairs whose answer is several tokens (default: one-token answers, as Hendel et al.)')
    .option('--batch-size <n>', 'prompts per forward pass', int('batch-size'), 32)
    .option('--neurons <file>', 'a neuron-set file whose activations --scale multiplies')
    .option('--scale <factor>', 'activation factor for --neurons', parseFloat)
    .option('--out <dir>', 'output folder for results.json (a shard writes DIR/shards/<i>-of-<N>/)')
    .addOption(shardOption())
    .option('--resume', 'a shard: continue from the batches already in DIR/shards/<i>-of-<N>')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .addOption(deviceMapOption())
    .action(async (id: string, o) => {
      await runEval(id, { ...o, labelWords: parseLabelWords(o.labelWords) });
    });

  program
    .command('eval-facts')
    .description('does the model know the facts of `synth-data --kind facts`? recall per relation on held-out templates, on unseen facts, and multiple choice; writes results.json')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .option('--data-dir <dir>', 'the shared data folder holding lre/ and icl_task_vectors/', '../shared/data')
    .option('--relations <list>', 'comma-separated LRE relations (default: those of synth-data --kind facts)', (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .option('--seed <n>', 'the seed the corpus was built with', int('seed'), 0)
    .option('--batch-size <n>', 'prompts per forward pass', int('batch-size'), 32)
    .option('--neurons <file>', 'a neuron-set file whose activations --scale multiplies')
    .option('--scale <factor>', 'activation factor for --neurons (0 suppresses)', parseFloat)
    .option('--out <dir>', 'output folder for results.json')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      if ((o.neurons === undefined) !== (o.scale === undefined)) throw new NeuropruneError('E_ARG', '--neurons and --scale go together');
      const build = buildFacts({ dataDir: o.dataDir, seed: o.seed, relations: o.relations });
      const neurons = o.neurons ? await readNeuronSet(o.neurons) : undefined;
      await withModel(id, { device: o.device, dtype: o.dtype }, async (model, signal) => {
        if (neurons) await model.scale(neurons, o.scale);
        const bar = progressBar('eval-facts');
        const result = await evaluateFacts(model, build.eval, build.relations, {
          batchSize: o.batchSize, keepRecords: Boolean(o.out), onProgress: bar.update, signal,
        }).finally(bar.stop);
        process.stdout.write(formatFactsTable(result) + '\n');
        if (o.out) {
          const { config, ...info } = model.info;
          await writeJson(path.join(o.out, 'results.json'), {
            environment: environment(), model: info, facts: build.options,
            scale: neurons ? { neurons: o.neurons, factor: o.scale } : undefined, ...result,
          });
          process.stdout.write(`wrote ${path.join(o.out, 'results.json')}\n`);
        }
      });
    });

  program
    .command('facts-prune')
    .description("one relation's neurons in the facts model: Integrated Gradients (logprob of the object), prune the top neurons, recall of every relation before/after beside random neurons")
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--relation <name>', 'the relation whose neurons are found and pruned')
    .requiredOption('--out <dir>', 'output folder: results.json, neurons.json')
    .option('--data-dir <dir>', 'the shared data folder holding lre/ and icl_task_vectors/', '../shared/data')
    .option('--relations <list>', 'comma-separated LRE relations (default: those of synth-data --kind facts)', (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .option('--seed <n>', 'the seed the corpus was built with (and of the random draws)', int('seed'), 0)
    .option('--top <n>', 'neurons to prune', int('top'), 20)
    .option('--prompts <n>', 'attribution prompts', int('prompts'), 48)
    .option('--steps <n>', 'Integrated Gradients steps', int('steps'), 20)
    .option('--draws <n>', 'random-neuron control draws', int('draws'), 3)
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      const build = buildFacts({ dataDir: o.dataDir, seed: o.seed, relations: o.relations });
      if (fs.existsSync(o.out) && !fs.statSync(o.out).isDirectory()) throw new NeuropruneError('E_ARG', `--out ${o.out} exists and is not a folder`);
      await withModel(id, { device: o.device, dtype: o.dtype }, async (model, signal) => {
        const result = await factsPrune(model, build, {
          relation: o.relation, top: o.top, prompts: o.prompts, steps: o.steps, draws: o.draws, seed: o.seed, signal,
          onStage: (stage) => process.stderr.write(`${stage}\n`),
        });
        process.stdout.write(formatFactsPruneTable(result) + '\n');
        const { config, ...info } = model.info;
        await writeJson(path.join(o.out, 'neurons.json'), neuronSet(id, result.neurons, { method: 'facts-prune', relation: result.relation, objective: 'logprob', steps: o.steps }));
        await writeJson(path.join(o.out, 'results.json'), { environment: environment(), model: info, facts: build.options, ...result });
        process.stdout.write(`wrote ${path.join(o.out, 'results.json')} and ${path.join(o.out, 'neurons.json')}\n`);
      });
    });

  program
    .command('copybias')
    .description('find copying neurons with Integrated Gradients on a proxy task, prune them, evaluate ICL before and after')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--out <dir>', 'output folder: results.json, neurons.json, attributions.safetensors, report.html')
    .option('--config <file>', 'JSON or YAML config (flags override it)')
    .option('--seed <n>', 'seed for prompts', int('seed'))
    .option('--steps <n>', 'Integrated Gradients steps', int('steps'))
    .option('--attribution-prompts <n>', 'proxy prompts for attribution', int('attribution-prompts'))
    .option('--dev-prompts <n>', 'proxy prompts for choosing the fraction', int('dev-prompts'))
    .option('--fractions <list>', 'fractions of neurons to try, e.g. 0.001,0.005', (v: string) => v.split(',').map(Number))
    .option('--tasks <list>', 'ICL tasks for before/after (hendel18 needs --data-dir)', (v: string) => v.split(','))
    .option('--shots <list>', 'shot counts for before/after', (v: string) => v.split(',').map((x) => int('shots')(x.trim())))
    .option('--n <n>', 'prompts per task and shot count', int('n'))
    .option('--data-dir <dir>', 'folder with the Hendel task files')
    .option('--all-answers', 'score whole multi-token answers (exact match) instead of one-token answers')
    .option('--label-words <map>', 'for FILE.jsonl tasks: label=word,... (e.g. 0=negative,1=positive)')
    .option('--draws <n>', 'random-neuron control draws (0 = none)', int('draws'))
    .option('--task-vectors', 'also measure task-vector ICL per layer before and after pruning')
    .option('--save-model', 'also write the pruned checkpoint to DIR/model')
    .addOption(shardOption())
    .option('--resume', 'a shard: continue from the chunks already in DIR/shards/<i>-of-<N>')
    .option('--chunk-size <n>', 'attribution prompts per chunk (16); shards and unsharded runs must agree', int('chunk-size'))
    .option('--force', 'replace a non-empty output folder')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      await runCopyBias(id, { ...o, labelWords: o.labelWords === undefined ? undefined : parseLabelWords(o.labelWords) });
    });

  program
    .command('query-neurons')
    .description('query-relevant neurons (QRNCA, Chen et al. 2024) or knowledge neurons (Dai et al. 2022) of MCQA queries or fill-in facts, boosted and suppressed beside baselines')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--data <file>', 'qrneuron MCQA JSON (e.g. ../shared/data/qrneuron/subject_qa.json), an LRE relation file or folder, or facts JSONL')
    .requiredOption('--out <dir>', 'output folder: results.json, neurons/<domain>.json, attributions.safetensors, report.html')
    .addOption(new Option('--method <method>', 'selection rule').choices(['qrnca', 'knowledge-neurons']).default('qrnca'))
    .addOption(new Option('--site <site>', 'neuron site (default: mlp.hook_pre for qrnca, the model\'s neuron site for knowledge neurons)').choices(['mlp.hook_pre', 'mlp.hook_post', 'mixer.hook_post']))
    .option('--steps <n>', 'Integrated Gradients steps m (16)', int('steps'))
    .option('--t <x>', 'per-template threshold t x max (0.2)', Number)
    .option('--u <x>', 'common-neuron share of clusters (0.3)', Number)
    .option('--v <n>', 'neurons kept per query (20)', int('v'))
    .option('--p <x>', 'knowledge neurons: share of prompts a neuron must exceed (0.5)', Number)
    .addOption(new Option('--clusters <kind>', 'ICA clusters').choices(['queries', 'domains']))
    .option('--domains <list>', 'only these domains', (v: string) => v.split(','))
    .option('--per-domain <n>', 'at most n queries per domain (the first in the file)', int('per-domain'))
    .addOption(new Option('--scale-positions <where>', 'where boosting/suppressing scales (last, as the paper)').choices(['last', 'all']))
    .option('--unrelated <n>', 'unrelated queries per query in the evaluation (1)', int('unrelated'))
    .option('--no-evaluate', 'skip the boost/suppress evaluation')
    .option('--seed <n>', 'seed for unrelated queries and random baselines', int('seed'))
    .option('--memory-budget <mb>', 'IG memory budget in MiB (2048)', Number)
    .option('--resume', 'continue a killed run from DIR.partial (a shard: from DIR/shards/<i>-of-<N>)')
    .addOption(shardOption())
    .option('--force', 'replace a non-empty output folder')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      await runQueryNeurons(id, o);
    });

  program
    .command('circuit')
    .description('the knowledge circuit of a relation (Yao et al. 2024): edge attribution (EAP-IG, EAP) or ACDC over heads, MLPs and their q/k/v inputs, with faithfulness and Hit@10 beside random circuits')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .option('--relation <file>', 'relation file: LRE (../shared/data/lre/factual/country_capital_city.json) or Hendel et al. {subject: object}; repeat for several', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .requiredOption('--out <dir>', 'output folder: circuit.json, edges.safetensors, circuit.dot, report.html')
    .option('--config <file>', 'JSON or YAML config (flags override it)')
    .option('--template <text>', "prompt template with {} for the subject (default: the relation's zero-shot template)")
    .addOption(new Option('--method <method>', 'eap-ig (default), eap, or acdc (small models)').choices(['eap-ig', 'eap', 'acdc']))
    .option('--top-n <n>', 'edges in the circuit by |score| (200)', int('top-n'))
    .option('--threshold <x>', 'keep edges with |score| >= x instead of the top n', Number)
    .option('--steps <m>', 'EAP-IG steps (5)', int('steps'))
    .addOption(new Option('--metric <metric>', 'log p(answer) (default), logit difference to the corrupted answer, or KL to the clean output').choices(['logprob', 'logit_diff', 'kl']))
    .addOption(new Option('--ablation <kind>', 'what an ablated edge carries (default: corrupted; zero for acdc)').choices(['corrupted', 'mean', 'zero']))
    .option('--seed <n>', 'seed: partners, split, random circuits (0)', int('seed'))
    .option('--per-relation <n>', 'at most n paired facts per relation (seeded)', int('per-relation'))
    .option('--random-draws <n>', 'random circuits of the same size (5)', int('random-draws'))
    .option('--tau <list>', 'ACDC thresholds, run in turn; the last one gives the circuit (0.02,0.01,0.005)', (v: string) => v.split(',').map(Number))
    .option('--acdc-max-edges <n>', 'refuse ACDC on graphs with more edges (5000)', int('acdc-max-edges'))
    .option('--memory-budget <mb>', 'EAP-IG micro-batch memory budget in MiB (2048)', Number)
    .option('--resume', 'continue a killed run from DIR.partial (a shard: from DIR/shards/<i>-of-<N>)')
    .addOption(shardOption())
    .option('--force', 'replace a non-empty output folder')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      await runCircuit(id, o);
    });

  program
    .command('task-vectors')
    .description('task vectors (Hendel et al. 2023): patch the residual stream of k demonstrations into zero-shot queries, per layer')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--out <dir>', 'output folder: results.json, report.html')
    .option('--config <file>', 'JSON or YAML config (flags override it)')
    .option('--tasks <list>', 'ICL tasks (hendel18 needs --data-dir)', (v: string) => v.split(','))
    .option('--shots <n>', 'demonstrations per prompt (default 4; Hendel et al. use 5)', int('shots'))
    .option('--n <n>', 'test prompts per task (default 50)', int('n'))
    .option('--dev-n <n>', 'dev prompts per task, to choose the layer (default 20)', int('dev-n'))
    .option('--dummies <n>', 'dummy queries averaged per task vector (default 1, as Hendel et al.)', int('dummies'))
    .option('--layers <list>', 'layers to patch (default all)', (v: string) => v.split(',').map((x) => int('layers')(x.trim())))
    .option('--data-dir <dir>', 'folder with the Hendel task files')
    .option('--seed <n>', 'seed for prompts', int('seed'))
    .option('--batch-size <n>', 'prompts per forward pass (default 32)', int('batch-size'))
    .option('--force', 'replace a non-empty output folder')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      await runTaskVectors(id, o);
    });

  program
    .command('relearn')
    .description('relearning after pruning (Lo, Cohen & Barez 2024): prune a concept\'s units, retrain, and measure its return at every checkpoint beside random pruning')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--out <dir>', 'output folder: results.json, neurons.json, saliency.safetensors, report.html')
    .option('--corpus <file>', 'JSONL: {"text", "spans"} with --concept spans, {"text"} with --concept words:FILE')
    .option('--concept <spec>', 'spans | words:FILE (a word list marked in --corpus) | locations (built from --data-dir)', 'spans')
    .addOption(new Option('--site <site>', 'units to rank and prune').choices(['mlp.hook_post', 'mlp.hook_pre', 'hook_resid_post']).default('mlp.hook_post'))
    .option('--prune-fraction <f>', 'share of the units to prune', parseFloat, 0.05)
    .addOption(new Option('--mode <mode>', 'frozen: pruned units stay exactly zero; free: zeroed once, may regrow').choices(['frozen', 'free']).default('frozen'))
    .addOption(new Option('--ranking <r>', 'how concept units are ranked').choices(['probeless', 'ig', 'random']).default('probeless'))
    .option('--steps <n>', 'retraining steps', int('steps'), 200)
    .option('--checkpoint-every <k>', 'measure (and keep a resumable checkpoint) every k steps', int('checkpoint-every'), 50)
    .option('--batch-size <n>', 'training batch size', int('batch-size'), 16)
    .option('--lr <x>', 'peak learning rate', parseFloat, 1e-3)
    .option('--seed <n>', 'seed (batch order, held-out split, random ranking)', int('seed'), 0)
    .option('--saliency-top <n>', 'units of a fresh ranking that score saliency 1', int('saliency-top'), 100)
    .option('--measure-texts <n>', 'held-out texts each measurement reads (at most; 10% of the corpus is held out)', int('measure-texts'), 64)
    .option('--no-control', 'skip the random-pruning control runs')
    .option('--random-draws <n>', 'random rankings the control runs (seeded draws, each a whole retraining)', int('random-draws'), 3)
    .option('--data-dir <dir>', 'locations: the shared data folder', '../shared/data')
    .option('--limit <n>', 'use the first n texts of the concept corpus', int('limit'))
    .option('--resume', 'continue a killed run from its last checkpoint')
    .option('--force', 'replace a non-empty output folder')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      await runRelearn(id, o);
    });

  program
    .command('synth-data')
    .description('write a synthetic training corpus (JSONL {"text"} lines) for train: in-context-learning tasks (--kind icl) or facts (--kind facts), location sentences with concept spans for relearn (--kind concept), or {prompt, target} lines for attribute from real tasks (--kind prompts)')
    .requiredOption('--out <file>', 'output JSONL file')
    .addOption(new Option('--kind <kind>', 'icl: few-shot prompts of generated tasks; facts: LRE facts in many templates and multiple choice').default('icl'))
    .option('--samples <n>', 'number of samples (icl)', int('samples'), 50000)
    .option('--seed <n>', 'seed', int('seed'), 0)
    .option('--max-shots <n>', 'most examples per prompt (icl)', int('max-shots'), 6)
    .option('--copy-share <x>', "share of labels that repeat the previous line's label (icl: copy-bias label noise)", parseFloat, 0)
    .option('--data-dir <dir>', 'facts, concept, prompts: the shared data folder holding lre/ and icl_task_vectors/', '../shared/data')
    .option('--relations <list>', `facts: comma-separated relations (default ${FACT_RELATIONS.map((r) => r.name).join(',')})`, (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .option('--choice-per-fact <n>', 'facts: multiple-choice training prompts per fact', int('choice-per-fact'), 24)
    .option('--tokenizer-out <dir>', 'facts: where the word-level tokenizer.json goes (default: a folder "tokenizer" beside --out)')
    .option('--tasks <list>', 'prompts: comma-separated tasks (Hendel task files under --data-dir, or generated tasks)', 'antonyms,country_capital')
    .option('--per-task <n>', 'prompts: prompts per task', int('per-task'), 18)
    .option('--shots <n>', 'prompts: examples per prompt', int('shots'), 2)
    .action(async (o) => {
      await interruptible(async () => {
        if (o.kind === 'concept') {
          const concept = buildLocationConcept({ dataDir: o.dataDir, seed: o.seed });
          const tmp = `${o.out}.tmp-${process.pid}`;
          fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
          fs.writeFileSync(tmp, conceptJsonl(concept));
          fs.renameSync(tmp, o.out);
          process.stdout.write(`wrote ${concept.length} location sentences with concept spans to ${o.out}\n`);
          return;
        }
        if (o.kind === 'prompts') {
          // {prompt, target} lines for `attribute --prompts`: few-shot prompts of real tasks.
          // --data-dir is the shared data folder (its icl_task_vectors/ holds the task files) or that folder itself.
          const taskDir = fs.existsSync(path.join(o.dataDir, 'icl_task_vectors')) ? path.join(o.dataDir, 'icl_task_vectors') : o.dataDir;
          const tasks = resolveTaskNames([o.tasks]).map((name) => loadTask(name, { dataDir: taskDir, seed: o.seed }));
          const prompts = attributionPrompts(tasks, o.shots, o.perTask, o.seed);
          const tmp = `${o.out}.tmp-${process.pid}`;
          fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
          fs.writeFileSync(tmp, prompts.map((p) => JSON.stringify(p)).join('\n') + '\n');
          fs.renameSync(tmp, o.out);
          process.stdout.write(`wrote ${prompts.length} prompts (${tasks.map((t) => t.name).join(', ')}, ${o.shots} shots) to ${o.out}\n`);
          return;
        }
        if (o.kind !== 'icl' && o.kind !== 'facts') throw new NeuropruneError('E_ARG', `--kind must be icl, facts, concept or prompts, got "${o.kind}"`);
        let texts: string[];
        const dir = path.dirname(path.resolve(o.out));
        if (o.kind === 'facts') {
          const build = buildFacts({ dataDir: o.dataDir, seed: o.seed, relations: o.relations, choicePerFact: o.choicePerFact });
          texts = build.corpus;
          const tokDir = o.tokenizerOut ?? path.join(dir, 'tokenizer');
          fs.mkdirSync(tokDir, { recursive: true });
          fs.writeFileSync(path.join(tokDir, 'tokenizer.json'), JSON.stringify(factsTokenizerJson(factsTexts(build))));
          fs.writeFileSync(path.join(tokDir, 'tokenizer_config.json'), JSON.stringify(factsTokenizerConfig(), null, 2) + '\n');
          const stem = o.out.replace(/\.jsonl$/, '');
          await writeJson(`${stem}.eval.json`, { options: build.options, relations: build.relations, ...build.eval });
          await writeJson(`${stem}.qa.json`, factsQrneuron(build));
          process.stdout.write(`wrote ${path.join(tokDir, 'tokenizer.json')}, the evaluation sets to ${stem}.eval.json and multiple-choice queries (qrneuron format) to ${stem}.qa.json\n`);
        } else {
          if (!(o.copyShare >= 0 && o.copyShare <= 1)) throw new NeuropruneError('E_ARG', `--copy-share must be in [0, 1], got ${o.copyShare}`);
          texts = syntheticCorpus({ samples: o.samples, seed: o.seed, maxShots: o.maxShots, copyShare: o.copyShare });
        }
        const tmp = `${o.out}.tmp-${process.pid}`;
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(tmp, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
        fs.renameSync(tmp, o.out);
        process.stdout.write(`wrote ${texts.length} samples to ${o.out}\n`);
      });
    });

  program
    .command('train')
    .description('train a model on a JSONL corpus ({"text"} per line); checkpoints in HF layout')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--data <file>', 'JSONL corpus')
    .requiredOption('--out <dir>', 'output folder (HF layout, rewritten atomically at each checkpoint)')
    .option('--steps <n>', 'optimizer steps', int('steps'), 1000)
    .option('--batch-size <n>', 'sequences per step', int('batch-size'), 16)
    .option('--lr <x>', 'peak learning rate', parseFloat, 1e-3)
    .option('--warmup <n>', 'warm-up steps', int('warmup'))
    .option('--min-lr-ratio <x>', 'final lr / peak lr (cosine)', parseFloat, 0.1)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', parseFloat, 0.1)
    .option('--grad-clip <x>', 'max global gradient norm (0 = off)', parseFloat, 1.0)
    .option('--max-length <n>', 'tokens kept per sample', int('max-length'), 512)
    .option('--checkpoint-every <n>', 'steps between checkpoints', int('checkpoint-every'), 200)
    .option('--seed <n>', 'seed for batch order and random: models', int('seed'), 0)
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .action(async (id: string, o) => {
      const samples = readCorpus(o.data);
      await withModel(id, { device: o.device, dtype: o.dtype, seed: o.seed }, async (model, signal) => {
        const bar = progressBar('train', '{loss} loss | {tps} tok/s');
        const result = await model.train({
          samples, steps: o.steps, batchSize: o.batchSize, lr: o.lr, warmup: o.warmup, minLrRatio: o.minLrRatio, weightDecay: o.weightDecay,
          gradClip: o.gradClip, maxLength: o.maxLength, seed: o.seed, checkpoint: { dir: o.out, every: o.checkpointEvery }, signal,
          onStep: (p) => bar.update(p.step, o.steps, { loss: p.loss.toFixed(3), tps: p.tokensPerSecond }),
        }).finally(bar.stop);
        await writeJson(path.join(o.out, 'training.json'), { environment: environment(), model: id, data: o.data, ...result });
        const last = result.curve[result.curve.length - 1];
        process.stdout.write(`trained ${result.steps} steps (${result.tokens} tokens) in ${(result.ms / 1000).toFixed(0)} s; final loss ${last.loss.toFixed(3)}; wrote ${o.out}\n`);
      });
    });

  program
    .command('prune')
    .description('zero the weights of the neurons in a neuron-set file and save the pruned checkpoint')
    .argument('<model>', 'folder, hub id in the local HF cache, or random:PRESET')
    .requiredOption('--neurons <file>', 'neuron-set JSON file')
    .requiredOption('--out <dir>', 'output folder for the pruned checkpoint')
    .option('--full', 'also zero the up/gate rows and biases, not only the down projection')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .option('--force', 'replace a non-empty output folder')
    .action(async (id: string, o) => {
      const neurons = await readNeuronSet(o.neurons);
      await withModel(id, { device: o.device, dtype: o.dtype }, async (model, signal) => {
        await model.prune(neurons, { full: Boolean(o.full) });
        const out = await model.save(o.out, { force: Boolean(o.force), signal });
        process.stdout.write(`pruned ${neurons.neurons.length} neurons; wrote ${out}\n`);
      });
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  // Each replica's calls occupy a libuv worker thread for their whole run; libuv's pool (4 threads,
  // sized when first used) must outnumber the replicas or they would queue behind each other.
  const devices = argv.indexOf('--devices');
  if (devices >= 0 && !process.env.UV_THREADPOOL_SIZE) {
    const list = argv[devices + 1] ?? '';
    process.env.UV_THREADPOOL_SIZE = String(Math.max(4, (list === 'all' ? 16 : list.split(',').length) + 2));
  }
  const program = buildProgram();
  try {
    if (argv.length === 3 && (argv[2] === '--version' || argv[2] === '-V')) {
      process.stdout.write(versionLine() + '\n');
      return 0;
    }
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    const e = toNeuropruneError(error);
    process.stderr.write(`${e.code}: ${e.message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
