/**
 * The copy-bias proxy task (Ali, Wolf & Titov 2024): count the vowels of a word (`New York -> 2`).
 * Words come from the model's own vocabulary (alphabetic single tokens); the answers are single
 * digits; every prompt is built so that its right answer is not among its example labels.
 */
import { TextTokenizer } from '../tokenizer';
import { Task } from './types';

export const PROXY_TASK = 'vowel_count';

/** For vocabularies with few whole words (byte or character level): common words and names. */
export const BUILTIN_WORDS = (
  'apple banana orange table chair window garden river mountain forest ocean island desert valley city village ' +
  'market school doctor teacher music guitar piano letter paper pencil bottle kitchen bridge castle dragon ' +
  'rabbit tiger zebra monkey elephant giraffe penguin dolphin spider butterfly coffee sugar butter bread cheese ' +
  'tomato potato carrot onion pepper lemon cherry grape melon summer winter autumn spring morning evening ' +
  'silver golden purple yellow violet crimson planet rocket engine camera laptop screen button pillow blanket ' +
  'jacket pocket wallet ticket station airport harbor museum theater library hospital office basket candle ' +
  'mirror ladder hammer needle thread anchor compass lantern'
).split(' ').concat(['New York', 'Paris', 'London', 'Berlin', 'Tokyo', 'Madrid', 'Rome', 'Cairo', 'Sydney', 'Toronto']);

export const countVowels = (word: string) => (word.match(/[aeiou]/gi) ?? []).length;

/** Alphabetic single-token words of the vocabulary (leading space stripped), up to `limit`. */
export function vocabularyWords(tokenizer: TextTokenizer, vocabSize: number, limit = 2000): string[] {
  const words = new Set<string>();
  for (let id = 0; id < vocabSize && words.size < limit; id++) {
    const text = tokenizer.decode([id]).trim();
    if (/^[A-Za-z]{3,12}$/.test(text) && countVowels(text) <= 9) words.add(text);
  }
  return [...words];
}

export function vowelCountTask(tokenizer: TextTokenizer, vocabSize: number): Task {
  const vocab = vocabularyWords(tokenizer, vocabSize);
  const fromVocab = vocab.length >= 50;
  const words = fromVocab ? vocab : BUILTIN_WORDS;
  return {
    name: PROXY_TASK,
    kind: 'proxy',
    scoring: 'exact',
    pairs: words.map((w) => ({ input: w, output: String(countVowels(w)) })),
    answerNeverInExamples: true,
    source: fromVocab ? `model vocabulary (${words.length} words)` : `built-in word list (${words.length} words; the vocabulary has ${vocab.length} whole words)`,
  };
}
