/** Few-shot prompts from task pairs, Hendel's way by default: `example:{x}->{y}` lines joined by `\n`. */
import { NeuropruneError } from '../errors';
import { TextTokenizer } from '../tokenizer';
import { Rng, subSeed } from './random';
import { Pair, Task } from './types';

export interface PromptTemplate {
  /** One demonstration; {x} and {y} are the input and output. */
  example: string;
  /** The query; {x} is its input. */
  query: string;
  separator: string;
}

export const HENDEL_TEMPLATE: PromptTemplate = { example: 'example:{x}->{y}', query: 'example:{x}->', separator: '\n' };

export interface IclPrompt {
  task: string;
  shots: number;
  text: string;
  query: Pair;
  examples: Pair[];
  /** The right answer as it appears in prompts (leading space included when that made it one token). */
  expected: string;
  /** The example labels shown in the prompt. */
  labels: string[];
}

/**
 * Keeps the pairs whose output is one token, trying the leading-space variant (" Paris") when the
 * bare output is not, as Hendel et al. do. Outputs are rewritten to the variant that is one token.
 */
export function singleTokenPairs(pairs: Pair[], tokenizer: TextTokenizer): Pair[] {
  const one = (s: string) => tokenizer.encode(s, { addSpecialTokens: false }).length === 1;
  return pairs.flatMap((p) => (one(p.output) ? [p] : one(` ${p.output}`) ? [{ input: p.input, output: ` ${p.output}` }] : []));
}

export function renderPrompt(examples: Pair[], query: Pair, template: PromptTemplate = HENDEL_TEMPLATE): string {
  const fill = (s: string, p: Pair) => s.split('{x}').join(p.input).split('{y}').join(p.output);
  return [...examples.map((e) => fill(template.example, e)), fill(template.query, query)].join(template.separator);
}

/**
 * n prompts with k examples each, the same for the same seed. Queries walk a seeded shuffle of the
 * pairs; examples are other pairs (with a different input; for the proxy task, a different answer).
 * With `balanceAnswers`, queries take each answer in turn, so that no constant answer scores above
 * one in (number of answers).
 */
export function buildPrompts(
  task: Task,
  pairs: Pair[],
  shots: number,
  n: number,
  seed: number,
  template = HENDEL_TEMPLATE,
  options: { balanceAnswers?: boolean } = {},
): IclPrompt[] {
  if (pairs.length === 0) throw new NeuropruneError('E_ARG', `task "${task.name}": no usable pairs`);
  const shuffled = new Rng(subSeed(seed, task.name, shots, 'queries')).shuffle(pairs);
  const queries = options.balanceAnswers ? interleaveByAnswer(shuffled) : shuffled;
  return Array.from({ length: n }, (_, i) => {
    const rng = new Rng(subSeed(seed, task.name, shots, i));
    const query = queries[i % queries.length];
    const allowed = pairs.filter((p) => p.input !== query.input && (!task.answerNeverInExamples || p.output.trim() !== query.output.trim()));
    if (allowed.length < shots) {
      throw new NeuropruneError('E_ARG', `task "${task.name}": only ${allowed.length} pairs can serve as examples for "${query.input}", ${shots} needed`);
    }
    const examples = rng.shuffle(allowed).slice(0, shots);
    return {
      task: task.name,
      shots,
      text: renderPrompt(examples, query, template),
      query,
      examples,
      expected: query.output,
      labels: examples.map((e) => e.output),
    };
  });
}

/** Pairs reordered to take each answer in turn (answers sorted; each answer's pairs in their order, cycled). */
function interleaveByAnswer(pairs: Pair[]): Pair[] {
  const groups = new Map<string, Pair[]>();
  for (const p of pairs) groups.set(p.output.trim(), [...(groups.get(p.output.trim()) ?? []), p]);
  const answers = [...groups.keys()].sort();
  const longest = Math.max(...[...groups.values()].map((g) => g.length));
  const out: Pair[] = [];
  for (let i = 0; i < longest; i++) for (const a of answers) out.push(groups.get(a)![i % groups.get(a)!.length]);
  return out;
}

/**
 * Prompts for `attribute --prompts` ({prompt, target} per line) from tasks: `perTask` few-shot prompts
 * of each, `shots` examples apiece, the same for the same seed.
 */
export function attributionPrompts(tasks: Task[], shots: number, perTask: number, seed: number): Array<{ prompt: string; target: string }> {
  return tasks.flatMap((task) => buildPrompts(task, task.pairs, shots, perTask, seed).map((p) => ({ prompt: p.text, target: p.expected })));
}
