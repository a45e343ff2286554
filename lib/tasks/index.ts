/** Task names -> tasks: Hendel files, generated algorithmic tasks, the vowel-count proxy, classification files. */
import { NeuropruneError } from '../errors';
import { TextTokenizer } from '../tokenizer';
import { algorithmicTask, ALGORITHMIC_TASKS } from './algorithmic';
import { classificationTask } from './classification';
import { hendelTask } from './hendel';
import { PROXY_TASK, vowelCountTask } from './proxy';
import { Task } from './types';

export * from './types';
export { ALGORITHMIC_TASKS } from './algorithmic';
export { PROXY_TASK, countVowels, vowelCountTask, BUILTIN_WORDS, MIN_WORDS_PER_COUNT, splitProxyPairs, usableCounts } from './proxy';
export type { ProxySplit } from './proxy';
export { syntheticCorpus } from './synthetic';
export { buildPrompts, HENDEL_TEMPLATE, renderPrompt, singleTokenPairs } from './prompts';
export type { IclPrompt, PromptTemplate } from './prompts';
export { scorePrediction } from './scoring';
export { classificationTask } from './classification';
export { hendelTask } from './hendel';

/** The 18 tasks Hendel et al. (2023) evaluate. */
export const HENDEL18 = [
  'fr_en', 'es_en', 'en_fr', 'en_es',
  'present_simple_gerund', 'present_simple_past_simple', 'plural_singular', 'antonyms',
  'country_capital', 'person_language', 'location_continent', 'location_religion',
  'next_letter', 'prev_letter', 'list_first', 'list_last', 'to_upper', 'to_lower',
];

/** Expands `hendel18` and comma lists; keeps order, drops repeats. */
export function resolveTaskNames(names: string[]): string[] {
  const out = names.flatMap((n) => n.split(',')).map((n) => n.trim()).filter(Boolean).flatMap((n) => (n === 'hendel18' ? HENDEL18 : [n]));
  return [...new Set(out)];
}

export interface TaskSource {
  /** Folder with the Hendel task files (knowledge/, linguistic/, translation/). */
  dataDir?: string;
  /** For generated tasks. */
  seed?: number;
  /** The model's tokenizer and vocabulary size: the proxy task draws its words from them. */
  tokenizer?: TextTokenizer;
  vocabSize?: number;
  /** For classification files (NAME.jsonl): label -> answer word. */
  labelWords?: Record<string, string>;
}

export function loadTask(name: string, source: TaskSource = {}): Task {
  if (ALGORITHMIC_TASKS.includes(name)) return algorithmicTask(name, source.seed ?? 0);
  if (name === PROXY_TASK) {
    if (!source.tokenizer || !source.vocabSize) throw new NeuropruneError('E_ARG', `task "${name}" needs the model's tokenizer`);
    return vowelCountTask(source.tokenizer, source.vocabSize);
  }
  if (name.endsWith('.jsonl')) return classificationTask(name, source.labelWords ?? {});
  if (!source.dataDir) {
    throw new NeuropruneError('E_ARG', `task "${name}" is read from a data folder: pass --data-dir (generated tasks: ${[...ALGORITHMIC_TASKS, PROXY_TASK].join(', ')})`);
  }
  return hendelTask(source.dataDir, name);
}
