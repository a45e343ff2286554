/**
 * The copy-bias proxy task (Ali, Wolf & Titov 2024): count the vowels of a word (`garden -> 2`).
 * Words come from the model's own vocabulary (alphabetic single tokens) or, for vocabularies with few
 * whole words, a built-in list of common English nouns; answers are single digits; every prompt is
 * built so that its right answer is not among its example labels.
 *
 * The pipeline's guard rails live here too: only vowel counts with at least MIN_WORDS_PER_COUNT words
 * are used, every used count gets the same number of words (so that a constant answer scores 1 in
 * the number of counts), and the attribution and dev parts get disjoint words.
 */
import { NeuropruneError } from '../errors';
import { TextTokenizer } from '../tokenizer';
import { Rng, subSeed } from './random';
import { Pair, Task } from './types';

export const PROXY_TASK = 'vowel_count';

/** A vowel count is used only when this many words have it. */
export const MIN_WORDS_PER_COUNT = 40;

/** Common English nouns, grouped by vowel count (a, e, i, o, u; y is not a vowel). */
export const BUILTIN_WORDS: string[] = [
  // 1 vowel (107 words)
  `ant bat bed bell belt bench bird box brick brush bus candy car cat cherry chest chin city cliff
    clock cow crab crown crust cup desk dog drum duck dust egg elk farm film fish flask fox frog ghost
    gift glass golf grass ham hand harp hat hill jam jazz kid king lamp lid map mask milk mint mug nest
    net nut owl pan pen pig pit plank plant plum pod pony pot rat ring rock rod rug salt sand scarf
    shelf ship shirt shop skirt song spring staff stamp stick storm string sun sword thumb torch trunk
    tub van vest web wind wolf wrist yak zip`,
  // 2 vowels (135 words)
  `anchor apple baker balcony basket bicycle blanket bottle bread bridge butter butterfly button candle
    carrot castle cloud coin compass desert dinner doctor dolphin donkey door dragon echo energy family
    farmer finger flower forest galaxy garden golden grape hammer hammock harbor helmet hero honey hook
    horse hunter island jacket jewelry kettle kitchen kiwi ladder lantern lemon lesson letter library
    lizard magnet mango marble market melon memo mirror mitten monkey morning muffin music napkin nickel
    oven panda paper parrot pebble pencil pepper pillow planet pocket popcorn prison purple puzzle
    pyramid rabbit rain river robot rocket saddle salad sandal school shadow shovel signal silver sister
    smoke sofa spider spinach strawberry sugar summer sunset table taco tennis thread thunder ticket
    tiger timber tractor tree trumpet tuba tunnel turtle valley velvet wallet walnut window winter
    wizard yellow yogurt zebra zipper`,
  // 3 vowels (102 words)
  `airport albatross alphabet animal banana biology blueberry broccoli buffalo cabinet calendar camera
    canoe carpenter category cheese cicada cinema coconut coffee community computer corridor cucumber
    daffodil diagram domino eagle economy elephant engine evening eyebrow feather festival geography
    giraffe gorilla guitar gymnasium hamburger holiday hospital identity instrument janitor journey
    kimono lasagna meadow motorcycle museum needle newspaper ocean octopus office onion orange orchestra
    pagoda pajamas patio peanut pelican penguin photography piano picture piranha pirate potato
    president professor queen radio reptile rodeo scooter seagull skeleton sonata spaghetti stadium
    station statue sweater teapot territory theater tomato tornado triangle tuxedo umbrella veranda
    video village violet vitamin volcano waterfall`,
  // 4 vowels (63 words)
  `alligator amoeba anaconda armadillo astronaut avenue avocado barracuda bazooka begonia calculator
    caterpillar chocolate cookie crocodile dictionary dinosaur electricity elevator enchilada envelope
    escalator fountain furniture gasoline generator harmonica helicopter iguana ingredient kangaroo
    laboratory lemonade macaroni magazine medicine microphone mosquito navigator obituary opportunity
    oregano origami panorama parachute paradise parameter petunia pineapple radiator ravioli restaurant
    rhinoceros salamander saxophone submarine tapioca tarantula telephone tortoise ukulele vocabulary
    watermelon`,
].flatMap((line) => line.split(/\s+/).filter(Boolean));

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

/** The vowel counts that have at least MIN_WORDS_PER_COUNT words. */
export function usableCounts(words: string[]): number[] {
  const n = new Map<number, number>();
  for (const w of words) n.set(countVowels(w), (n.get(countVowels(w)) ?? 0) + 1);
  return [...n].filter(([, k]) => k >= MIN_WORDS_PER_COUNT).map(([c]) => c).sort((a, b) => a - b);
}

export function vowelCountTask(tokenizer: TextTokenizer, vocabSize: number): Task {
  const vocab = vocabularyWords(tokenizer, vocabSize);
  const fromVocab = usableCounts(vocab).length >= 2;
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

export interface ProxySplit {
  /** The vowel counts used (each with at least MIN_WORDS_PER_COUNT words). */
  counts: number[];
  /** Words per count in each part (the same for every count). */
  wordsPerCount: number;
  attribution: Pair[];
  dev: Pair[];
  /** Counts left out and how many words they had. */
  dropped: Record<string, number>;
}

/**
 * Balanced, disjoint attribution and dev pairs: the counts with enough words, each cut to the
 * smallest such count's size (seeded shuffle), then halved between the parts. Outputs written with
 * a leading space (single-token variants) keep it.
 */
export function splitProxyPairs(pairs: Pair[], seed: number): ProxySplit {
  const groups = new Map<number, Pair[]>();
  for (const p of pairs) {
    const c = Number(p.output.trim());
    groups.set(c, [...(groups.get(c) ?? []), p]);
  }
  const counts = [...groups].filter(([, g]) => g.length >= MIN_WORDS_PER_COUNT).map(([c]) => c).sort((a, b) => a - b);
  const dropped = Object.fromEntries([...groups].filter(([c]) => !counts.includes(c)).map(([c, g]) => [String(c), g.length]));
  if (counts.length < 2) {
    const have = [...groups].sort(([a], [b]) => a - b).map(([c, g]) => `${c}: ${g.length}`).join(', ');
    throw new NeuropruneError('E_ARG', `proxy task: at least two vowel counts need ${MIN_WORDS_PER_COUNT} words each; words per count: ${have}`);
  }
  const half = Math.floor(Math.min(...counts.map((c) => groups.get(c)!.length)) / 2);
  const attribution: Pair[] = [], dev: Pair[] = [];
  for (const c of counts) {
    const shuffled = new Rng(subSeed(seed, 'proxy-split', c)).shuffle(groups.get(c)!).slice(0, 2 * half);
    attribution.push(...shuffled.slice(0, half));
    dev.push(...shuffled.slice(half));
  }
  return { counts, wordsPerCount: half, attribution, dev, dropped };
}
