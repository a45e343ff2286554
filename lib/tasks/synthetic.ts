/**
 * A synthetic in-context-learning corpus for small models: few-shot prompts in Hendel's format with
 * their answers, mixing the generated tasks, vowel counting (of random letter strings, so the proxy
 * task's real words stay unseen), and random mappings (a fresh
 * letter -> symbol map per sample whose query repeats an example's input, so it is solved by looking
 * the answer up in the context, as induction heads do; such training also breeds copy bias), and
 * optionally label noise toward the last example's label (`copyShare`), which makes the bias strong.
 */
import { algorithmicTask, ALGORITHMIC_TASKS } from './algorithmic';
import { renderPrompt, HENDEL_TEMPLATE } from './prompts';
import { countVowels } from './proxy';
import { Rng, subSeed } from './random';
import { Pair } from './types';

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const SYMBOLS = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface CorpusOptions {
  samples: number;
  seed: number;
  /** Most examples per prompt (each sample draws 0..maxShots). */
  maxShots?: number;
  /** Words for vowel counting (default: random letter strings, so real words stay unseen). */
  words?: string[];
  /** Share of random-mapping samples (default 0.25). */
  randomMapShare?: number;
  /**
   * Share of labels after a sample's first line that repeat the previous line's label instead of
   * the right one (default 0): label noise that rewards copying the most recent label, so the
   * trained model has the copy bias Ali, Wolf & Titov's method targets. Applied to every line, not
   * only the answer: a causal model cannot tell the answer line from a demonstration, so noise on the
   * answer alone is diluted by the clean demonstrations (tried: 45% on the answer alone left 6% copy errors).
   */
  copyShare?: number;
}

export function syntheticCorpus(o: CorpusOptions): string[] {
  const rng = new Rng(subSeed(o.seed, 'corpus'));
  const maxShots = o.maxShots ?? 6;
  const tasks: Array<{ name: string; pairs: Pair[] }> = [
    ...ALGORITHMIC_TASKS.map((name) => ({ name, pairs: algorithmicTask(name, subSeed(o.seed, 'corpus', name), 400).pairs })),
    { name: 'vowel_count', pairs: (o.words ?? pseudoWords(rng, 2000)).map((w) => ({ input: w, output: String(countVowels(w)) })) },
  ];
  const out: string[] = [];
  for (let i = 0; i < o.samples; i++) {
    const shots = rng.int(maxShots + 1);
    if (rng.next() < (o.randomMapShare ?? 0.25)) {
      const inputs = rng.shuffle(LETTERS.split('')).slice(0, Math.max(2, shots));
      const examples = inputs.map((x) => ({ input: x, output: rng.pick(SYMBOLS.split('')) }));
      const query = rng.pick(examples);
      out.push(renderPrompt(examples, query, HENDEL_TEMPLATE) + query.output);
      continue;
    }
    const task = rng.pick(tasks);
    const chosen = rng.shuffle(task.pairs).slice(0, shots + 1);
    // Label noise toward copying: each line after the first may show the previous line's label instead.
    const shown = chosen.map((p) => ({ ...p }));
    if ((o.copyShare ?? 0) > 0) for (let k = 1; k <= shots; k++) if (rng.next() < o.copyShare!) shown[k].output = shown[k - 1].output;
    out.push(renderPrompt(shown.slice(0, shots), shown[shots], HENDEL_TEMPLATE) + shown[shots].output);
  }
  return out;
}

/**
 * Random lowercase strings of 3 to 12 letters with 1 to 4 vowels, each count equally often: the
 * range of the proxy task's real words (uniform random letters would give mostly 0-2 vowels, and a
 * model that learned that prior answers "1" or "2" to any real word).
 */
function pseudoWords(rng: Rng, n: number): string[] {
  const vowels = 'aeiou'.split(''), consonants = LETTERS.split('').filter((c) => !vowels.includes(c));
  return Array.from({ length: n }, () => {
    const count = 1 + rng.int(4);
    const length = Math.max(3, count + 1) + rng.int(12 - Math.max(3, count + 1) + 1);
    const at = new Set(rng.shuffle(Array.from({ length }, (_, i) => i)).slice(0, count));
    return Array.from({ length }, (_, i) => rng.pick(at.has(i) ? vowels : consonants)).join('');
  });
}
