/** The generated tasks of Hendel et al. (2023) and a few more, deterministic for a seed. */
import { Rng } from './random';
import { Pair, Task } from './types';

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');

const letterList = (rng: Rng, min: number, max: number) => Array.from({ length: min + rng.int(max - min + 1) }, () => rng.pick(LETTERS));
const digitList = (rng: Rng, min: number, max: number) => Array.from({ length: min + rng.int(max - min + 1) }, () => rng.int(10));

/** name -> a generator of `count` pairs (closed tasks list all their pairs, ignoring count). */
const GENERATORS: Record<string, (rng: Rng, count: number) => Pair[]> = {
  next_letter: () => LETTERS.slice(0, -1).map((x, i) => ({ input: x, output: LETTERS[i + 1] })),
  prev_letter: () => LETTERS.slice(1).map((x, i) => ({ input: x, output: LETTERS[i] })),
  to_upper: () => LETTERS.map((x) => ({ input: x, output: x.toUpperCase() })),
  to_lower: () => LETTERS.map((x) => ({ input: x.toUpperCase(), output: x })),
  char_to_int: () => LETTERS.slice(0, 9).map((x, i) => ({ input: x, output: String(i + 1) })),
  int_to_char: () => LETTERS.slice(0, 9).map((x, i) => ({ input: String(i + 1), output: x })),
  list_first: (rng, n) => Array.from({ length: n }, () => letterList(rng, 2, 4)).map((l) => ({ input: l.join(','), output: l[0] })),
  list_last: (rng, n) => Array.from({ length: n }, () => letterList(rng, 2, 4)).map((l) => ({ input: l.join(','), output: l[l.length - 1] })),
  list_min: (rng, n) => Array.from({ length: n }, () => digitList(rng, 2, 4)).map((l) => ({ input: l.join(','), output: String(Math.min(...l)) })),
  list_max: (rng, n) => Array.from({ length: n }, () => digitList(rng, 2, 4)).map((l) => ({ input: l.join(','), output: String(Math.max(...l)) })),
  list_length: (rng, n) => Array.from({ length: n }, () => letterList(rng, 1, 9)).map((l) => ({ input: l.join(','), output: String(l.length) })),
};

export const ALGORITHMIC_TASKS = Object.keys(GENERATORS);

export function algorithmicTask(name: string, seed: number, count = 500): Task {
  const pairs = GENERATORS[name](new Rng(seed), count);
  return { name, kind: 'algorithmic', scoring: 'exact', pairs, source: `generated (seed ${seed})` };
}
