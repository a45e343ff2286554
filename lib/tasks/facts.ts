/**
 * A fact corpus for a small model that knows facts: relations of Hernandez et al. (2024) "LRE" from
 * `<data-dir>/lre/factual` and `lre/commonsense` and of Hendel et al. (2023) from
 * `<data-dir>/icl_task_vectors/knowledge`, each fact in many templates (the LRE few-shot and zero-shot templates and
 * our own: cloze sentences and Q/A questions) and as four-option multiple-choice prompts in the
 * qrneuron format (options of the relation's range, shuffled, "Answer: B").
 *
 * Held out, per relation and deterministic for a seed: templates training never shows (chosen among
 * those whose words all occur in the training templates, so that a held-out template is a paraphrase,
 * not new vocabulary) and facts training never shows (their subjects never occur in the corpus).
 * Recall is scored as a multi-token exact match of the object's tokens (teacher-forced greedy).
 *
 * Only ASCII facts are kept: the word-level tokenizer's Whitespace pre-tokenizer splits on `\w`, which
 * is ASCII in the JS port and Unicode in Hugging Face's Rust one; with ASCII text both agree.
 */
import fs from 'node:fs';
import path from 'node:path';
import { NeuropruneError } from '../errors';
import { Rng, subSeed } from './random';

/** Where a relation's facts live under the shared data folder. */
export type FactSource = 'lre/factual' | 'lre/commonsense' | 'icl_task_vectors/knowledge';

export interface FactRelationSpec {
  /** File name under `source` (without .json). */
  name: string;
  /** LRE files ({prompt_templates, samples: [{subject, object}]}) or Hendel et al.'s knowledge files ({subject: object}); default lre/factual. */
  source?: FactSource;
  /** Our own templates ({} = subject), beside LRE's prompt_templates and prompt_templates_zs (knowledge files have none). */
  templates: string[];
  /** Keep the facts of the `topObjects` most frequent objects only (a small range), at most `perObject` each. */
  topObjects?: number;
  perObject?: number;
}

/** The relations the facts corpus uses by default: single-entity objects of a small range. */
export const FACT_RELATIONS: FactRelationSpec[] = [
  {
    name: 'country_capital_city',
    templates: [
      '{} has its capital in', "{}'s capital is", 'The seat of government of {} is in', 'Q: What is the capital of {}? A:',
      'Which city is the capital of {}? The capital is', 'The capital of {} is called', 'In {}, the capital city is',
      'The government of {} sits in the city of', 'Which city is the capital of {}? The city of', 'People in {} call their capital',
    ],
  },
  {
    name: 'country_language',
    templates: [
      'The official language of {} is', 'Q: What language do people speak in {}? A:', 'What language is spoken in {}? It is',
      "{}'s main language is", 'Most people in {} speak', 'The main language of {} is',
      'Which language do people in {} speak? They speak', 'Children in {} learn to speak', 'The language spoken in {} is',
    ],
  },
  {
    name: 'country_currency',
    templates: [
      'In {}, people pay with the', 'Q: What is the currency of {}? A: the', 'The money used in {} is the', "{}'s currency is the",
      'What money do people use in {}? They use the', 'The currency of {} is the',
      'Which currency does {} use? It uses the', 'Prices in {} are given in the',
    ],
  },
  {
    name: 'city_in_country',
    templates: [
      'Q: In which country is the city of {}? A:', 'The city of {} is in', 'Which country is {} in? It is in',
      '{} is a city in the country of', 'The city of {} is located in',
      'Which country is the city of {} part of? It is part of', 'The country where {} lies is', '{} lies in the country of',
      'In which country does {} lie? It lies in', 'Which country has the city of {}? The country of', 'The city {} belongs to the country of',
    ],
  },
  {
    name: 'food_from_country',
    templates: [
      'Q: Which country does {} come from? A:', 'The dish {} comes from', '{} is a food from the country of',
      'The country of origin of {} is', '{} comes from the country of',
      'Which country is {} from? It is from', 'People first made {} in the country of',
    ],
  },
  {
    name: 'landmark_in_country',
    templates: [
      '{} is located in the country of', 'Q: In which country is {}? A:', 'The place {} is in', '{} can be found in the country of',
      'You can visit {} in the country of', 'Which country is {} located in? It is in', 'The landmark {} is in the country of',
      'Tourists visit {} in the country of',
    ],
    topObjects: 10,
    perObject: 8,
  },
  {
    name: 'person_occupation',
    templates: [
      'Q: What is the job of {}? A: a', 'The occupation of {} is', "{}'s profession is", '{} is known for working as a',
      'What does {} do for a living? They work as a', 'By occupation, {} is a',
      'What is the profession of {}? By profession a', '{} earns a living as a', 'The job of {} is that of a',
    ],
    topObjects: 8,
    perObject: 10,
  },
  {
    name: 'company_hq',
    templates: [
      'Q: Where is {} based? A:', '{} is based in the city of', 'The main office of {} is in', "{}'s headquarters are in",
      'The company {} has its headquarters in', 'Where is {} headquartered? It is in the city of',
      'Which city is {} based in? It is based in', 'The offices of {} are in the city of',
    ],
    topObjects: 10,
    perObject: 8,
  },
  // Commonsense relations of LRE with at least four objects (multiple choice needs three distractors).
  {
    name: 'object_superclass',
    source: 'lre/commonsense',
    templates: [
      'Q: What kind of thing is a {}? A: a', 'A {} is a kind of', 'Which group does a {} belong to? It is a', 'The {} is classed as a',
      'Biologists call the {} a kind of', 'What is a {}? It is a kind of', 'What kind of thing is the {}? It is a', 'The {} is a type of',
    ],
  },
  {
    name: 'fruit_inside_color',
    source: 'lre/commonsense',
    templates: [
      'Q: What color are {} inside? A:', 'Cut open, {} are', 'Inside, {} have the color', 'The inside of {} is colored',
      'When you cut {} open, the inside is', 'What color is the inside of {}? The inside is', 'The flesh of {} is', 'Inside their skin, {} are',
    ],
  },
  {
    name: 'fruit_outside_color',
    source: 'lre/commonsense',
    templates: [
      'Q: What color are {} outside? A:', 'The skin of {} is', 'Seen from outside, {} are', 'The outside of {} is colored',
      'What color is the skin of {}? The skin is', 'In the shop, {} look', 'From the outside, {} look', 'The peel of {} is',
      'Looking at {} from outside, they are',
    ],
  },
  // Hendel et al.'s knowledge files: {subject: object}, no templates of their own.
  {
    name: 'location_continent',
    source: 'icl_task_vectors/knowledge',
    templates: [
      '{} is on the continent of', 'Q: On which continent is {}? A:', 'The continent of {} is', '{} lies on the continent of',
      'Which continent is {} on? It is on', 'You find {} on the continent of', 'The place {} is part of the continent of',
      'On which continent can you find {}? You find it in', '{} is a place on the continent of',
      'Q: Which continent is {} part of? A:', 'The location {} is on the continent of', '{} belongs to the continent of',
    ],
    topObjects: 4,
    perObject: 12,
  },
  {
    name: 'location_language',
    source: 'icl_task_vectors/knowledge',
    templates: [
      'The language of {} is', 'Q: What language is spoken in {}? A:', 'People in {} speak', 'In {}, the people speak',
      'Which language do people speak in {}? They speak', 'The main language spoken in {} is', 'The people of {} talk in',
      'In {} most people speak the language', 'The local language of {} is', 'In {}, people talk in',
      'Q: Which language do people in {} speak? A:',
    ],
    topObjects: 8,
    perObject: 8,
  },
  {
    name: 'football_player_position',
    source: 'icl_task_vectors/knowledge',
    templates: [
      '{} plays in the position of', 'Q: Which position does {} play? A:', 'On the team, {} plays as a', 'The position of {} is',
      'Which position does {} play? He plays as a', '{} is known to play as a', 'In every game {} played as', 'The player {} is a',
      'On the field, {} plays as a', 'Q: What position does {} play? A:',
    ],
    topObjects: 6,
    perObject: 10,
  },
  {
    name: 'person_profession',
    source: 'icl_task_vectors/knowledge',
    templates: [
      '{} worked as a', 'Q: What was the profession of {}? A: a', 'The profession of {} was', '{} was famous as a',
      'What did {} do for a living? The answer is a', 'By profession, {} was a', 'The work of {} was that of a', '{} made a living as a',
      'Q: What did {} do for a living? A: a', 'The career of {} was as a',
    ],
    topObjects: 8,
    perObject: 8,
  },
];

export interface Fact {
  relation: string;
  subject: string;
  object: string;
}

export interface FactRelation {
  name: string;
  /** Every object of the relation's kept facts: the range options are drawn from. */
  range: string[];
  trainFacts: Fact[];
  /** Facts whose subject never occurs in the training corpus. */
  unseenFacts: Fact[];
  trainTemplates: string[];
  heldOutTemplates: string[];
}

export interface FactsOptions {
  /** The shared data folder (holding lre/ and icl_task_vectors/). */
  dataDir: string;
  seed?: number;
  /** Relation names (default: FACT_RELATIONS). */
  relations?: string[];
  /** Share of each relation's facts held out as unseen (default 0.15, at least 3). */
  unseenShare?: number;
  /** Templates held out per relation (default 2). */
  heldOutTemplates?: number;
  /** Multiple-choice training prompts per fact, each with fresh options and order (default 24). */
  choicePerFact?: number;
}

/** A recall item: the prompt, and the object (scored by exact match of its tokens after " "). */
export interface RecallItem {
  relation: string;
  subject: string;
  template: string;
  prompt: string;
  target: string;
}

/** A multiple-choice item in the qrneuron format: the prompt ends in "Answer:", the answer is a letter. */
export interface ChoiceItem {
  relation: string;
  subject: string;
  template: string;
  prompt: string;
  options: string[];
  /** 'A' to 'D'. */
  answer: string;
  target: string;
}

export interface FactEvalSets {
  /** Trained facts in templates training never shows. */
  heldOutTemplates: RecallItem[];
  /** Trained facts in training templates (how well the corpus itself is learnt). */
  trainTemplates: RecallItem[];
  /** Unseen facts in training templates. */
  unseenFacts: RecallItem[];
  /** Multiple choice: trained facts in held-out templates. */
  choice: ChoiceItem[];
  /** Multiple choice: unseen facts in training templates. */
  choiceUnseen: ChoiceItem[];
}

export interface FactsBuild {
  relations: FactRelation[];
  /** Training texts, shuffled. */
  corpus: string[];
  eval: FactEvalSets;
  options: { seed: number; relations: string[]; unseenShare: number; heldOutTemplates: number; choicePerFact: number; dataDir: string };
}

export const CHOICE_LETTERS = ['A', 'B', 'C', 'D'];

/** Words as the Whitespace pre-tokenizer sees them: runs of \w, runs of other non-space characters. */
export function words(text: string): string[] {
  return text.match(/\w+|[^\w\s]+/g) ?? [];
}

const ascii = (s: string) => /^[\x20-\x7e]+$/.test(s);

/**
 * Some LRE strings hold a literal "\\u00ed" (escaped twice): decode it, then drop accents
 * ("Bras\\u00edlia" -> "Brasilia"), so that the fact stays and its text is ASCII.
 */
export function plainText(s: string): string {
  return s
    .replace(/\\u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .trim();
}

export function fillTemplate(template: string, subject: string): string {
  return template.replace('{}', subject);
}

/** The qrneuron prompt shape: the question (the statement with [Y] for the answer), four options, "Answer:". */
export function choicePrompt(template: string, subject: string, options: string[]): string {
  // "Question:" first: the statement then starts no cloze sentence, so the model does not learn that a
  // statement goes on with "[Y]" (a trial model answered "[" to plain cloze prompts).
  const question = `Question: ${fillTemplate(template, subject)} [Y] .`;
  return `${question}\n${options.map((o, i) => ` ${CHOICE_LETTERS[i]}. ${o}`).join('\n')}\nAnswer:`;
}

/** What a relation file holds: LRE's few-shot and zero-shot templates (none for knowledge files) and its samples. */
export interface RelationFile {
  file: string;
  /** LRE's `name` (or the file name without .json). */
  name: string;
  /** LRE prompt_templates. */
  templates: string[];
  /** LRE prompt_templates_zs. */
  zeroShotTemplates: string[];
  samples: Array<{ subject: string; object: string }>;
}

/**
 * Reads one relation file: LRE ({prompt_templates, prompt_templates_zs, samples: [{subject, object}]})
 * or Hendel et al.'s knowledge format ({subject: object}). A file that is not JSON, or a field of the
 * wrong type, is E_TASK_FILE naming the file and the field.
 */
export function readRelationFile(file: string, format: 'lre' | 'knowledge'): RelationFile {
  if (!fs.existsSync(file)) throw new NeuropruneError('E_TASK_FILE', `${file}: no such relation file`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new NeuropruneError('E_TASK_FILE', `${file}: not JSON (${(error as Error).message})`);
  }
  const bad = (field: string, what: string) => new NeuropruneError('E_TASK_FILE', `${file}: ${field} ${what}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new NeuropruneError('E_TASK_FILE', `${file}: expected an object ${format === 'lre' ? '{prompt_templates, samples}' : '{subject: object}'}`);
  }
  const base = path.basename(file, '.json');
  if (format === 'knowledge') {
    const samples = Object.entries(json).map(([subject, object]) => {
      if (typeof object !== 'string' || !object.trim()) throw bad(JSON.stringify(subject), 'must map to a non-empty string (the object)');
      return { subject, object };
    });
    if (samples.length === 0) throw new NeuropruneError('E_TASK_FILE', `${file}: no {subject: object} pairs`);
    return { file, name: base, templates: [], zeroShotTemplates: [], samples };
  }
  const lre = json as Record<string, unknown>;
  const templates = (field: string): string[] => {
    const v = lre[field];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw bad(field, 'must be an array of templates');
    v.forEach((t, i) => {
      if (typeof t !== 'string' || !t.includes('{}')) throw bad(`${field}[${i}]`, 'must be a string with {} for the subject');
    });
    return v as string[];
  };
  const fewShot = templates('prompt_templates'), zeroShot = templates('prompt_templates_zs');
  if (!Array.isArray(lre.samples) || lre.samples.length === 0) throw bad('samples', 'must be a non-empty array of {subject, object}');
  const samples = lre.samples.map((s, i) => {
    const sample = (s ?? {}) as { subject?: unknown; object?: unknown };
    if (typeof sample.subject !== 'string' || !sample.subject.trim()) throw bad(`samples[${i}].subject`, 'must be a non-empty string');
    if (typeof sample.object !== 'string' || !sample.object.trim()) throw bad(`samples[${i}].object`, 'must be a non-empty string');
    return { subject: sample.subject, object: sample.object };
  });
  return { file, name: typeof lre.name === 'string' ? lre.name : base, templates: fewShot, zeroShotTemplates: zeroShot, samples };
}

function readRelation(dataDir: string, spec: FactRelationSpec): { templates: string[]; samples: Array<{ subject: string; object: string }> } {
  const source = spec.source ?? 'lre/factual';
  const folder = path.join(dataDir, ...source.split('/'));
  const file = path.join(folder, `${spec.name}.json`);
  if (!fs.existsSync(file)) {
    const where = fs.existsSync(folder) ? `no relation "${spec.name}"` : `no ${source} folder there`;
    throw new NeuropruneError('E_TASK_FILE', `${file}: ${where} (--data-dir is the shared data folder holding lre/ and icl_task_vectors/)`);
  }
  const r = readRelationFile(file, source === 'icl_task_vectors/knowledge' ? 'knowledge' : 'lre');
  return { templates: [...r.templates, ...r.zeroShotTemplates], samples: r.samples };
}

/** Facts, templates, held-out splits, the training corpus and the evaluation sets. Deterministic for a seed. */
export function buildFacts(o: FactsOptions): FactsBuild {
  const seed = o.seed ?? 0;
  const unseenShare = o.unseenShare ?? 0.15;
  const heldOutCount = o.heldOutTemplates ?? 2;
  const choicePerFact = o.choicePerFact ?? 24;
  const names = o.relations ?? FACT_RELATIONS.map((r) => r.name);
  if (!fs.existsSync(o.dataDir) || !fs.statSync(o.dataDir).isDirectory()) {
    throw new NeuropruneError('E_TASK_FILE', `--data-dir ${o.dataDir} is not a folder (it is the shared data folder holding lre/ and icl_task_vectors/)`);
  }
  const specs = names.map((n) => {
    const spec = FACT_RELATIONS.find((r) => r.name === n);
    if (!spec) throw new NeuropruneError('E_ARG', `unknown fact relation "${n}" (known: ${FACT_RELATIONS.map((r) => r.name).join(', ')})`);
    return spec;
  });

  const loaded = specs.map((spec) => {
    const { templates: lre, samples } = readRelation(o.dataDir, spec);
    // One object per subject, ASCII only, no subject that names its own object.
    const bySubject = new Map<string, string[]>();
    for (const s of samples) bySubject.set(plainText(s.subject), [...(bySubject.get(plainText(s.subject)) ?? []), plainText(s.object)]);
    let facts: Fact[] = [...bySubject].filter(([subject, objects]) => new Set(objects).size === 1 && ascii(subject) && ascii(objects[0]) && !subject.includes(objects[0]))
      .map(([subject, objects]) => ({ relation: spec.name, subject, object: objects[0].trim() }));
    if (spec.topObjects) {
      const counts = new Map<string, number>();
      for (const f of facts) counts.set(f.object, (counts.get(f.object) ?? 0) + 1);
      const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, spec.topObjects).map(([obj]) => obj);
      const rng = new Rng(subSeed(seed, 'facts-pick', spec.name));
      facts = top.flatMap((obj) => rng.shuffle(facts.filter((f) => f.object === obj)).slice(0, spec.perObject ?? Infinity));
    }
    const all = [...new Set([...lre, ...spec.templates].map((t) => t.trim()))].filter((t) => t.includes('{}') && ascii(t));
    // Drop a template that another goes on from ("{} is part of" beside "{} is part of the country of"):
    // after it, "the" would be as right a next word as the object, in training and in evaluation.
    const after = (x: string) => x.slice(x.indexOf('{}') + 2);
    const templates = all.filter((t) => !all.some((u) => after(u) !== after(t) && after(u).startsWith(after(t))));
    return { spec, facts, templates };
  });

  // Held-out templates: a seeded draw among those whose every word occurs in the templates training keeps.
  const chosen = new Map<string, string[]>();
  const everyTemplate = [...new Set(loaded.flatMap((r) => r.templates))];
  const trainWords = () => new Set(loaded.flatMap((r) => r.templates.filter((t) => !(chosen.get(r.spec.name) ?? []).includes(t)).flatMap((t) => words(t.replace('{}', ' ')))));
  for (const r of loaded) {
    const rng = new Rng(subSeed(seed, 'facts-templates', r.spec.name));
    chosen.set(r.spec.name, []);
    for (let k = 0; k < heldOutCount; k++) {
      const held = chosen.get(r.spec.name)!;
      const candidates = r.templates.filter((t) => {
        // Not a prefix of any relation's template (nor one of them a prefix of it; subjects recur across
        // relations): its statements never occur in training.
        if (held.includes(t) || everyTemplate.some((u) => u !== t && (u.startsWith(t) || t.startsWith(u)))) return false;
        held.push(t);
        const known = trainWords();
        held.pop();
        return words(t.replace('{}', ' ')).every((w) => known.has(w));
      });
      if (candidates.length === 0 || r.templates.length - held.length <= 2) break;
      held.push(rng.pick(candidates));
    }
  }

  // Unseen subjects: a seeded share of each relation's subjects, unseen in every relation (countries
  // recur across relations), so that no unseen subject occurs anywhere in the training corpus.
  const unseen = new Set<string>();
  for (const { spec, facts } of loaded) {
    const rng = new Rng(subSeed(seed, 'facts-unseen', spec.name));
    const nUnseen = Math.max(3, Math.round(unseenShare * facts.length));
    for (const f of rng.shuffle(facts).slice(0, nUnseen)) unseen.add(f.subject);
  }
  const relations: FactRelation[] = loaded.map(({ spec, facts, templates }) => {
    const held = chosen.get(spec.name)!;
    return {
      name: spec.name,
      range: [...new Set(facts.map((f) => f.object))].sort(),
      unseenFacts: facts.filter((f) => unseen.has(f.subject)),
      trainFacts: facts.filter((f) => !unseen.has(f.subject)),
      trainTemplates: templates.filter((t) => !held.includes(t)),
      heldOutTemplates: held,
    };
  });

  const choose = (r: FactRelation, f: Fact, template: string, rng: Rng): ChoiceItem => {
    const distractors = rng.shuffle(r.range.filter((x) => x !== f.object)).slice(0, 3);
    const options = rng.shuffle([f.object, ...distractors]);
    const answer = CHOICE_LETTERS[options.indexOf(f.object)];
    return { relation: r.name, subject: f.subject, template, prompt: choicePrompt(template, f.subject, options), options, answer, target: answer };
  };
  const recall = (r: FactRelation, f: Fact, template: string): RecallItem => ({
    relation: r.name, subject: f.subject, template, prompt: fillTemplate(template, f.subject), target: f.object,
  });

  const corpusRng = new Rng(subSeed(seed, 'facts-corpus'));
  const corpus: string[] = [];
  for (const r of relations) {
    for (const f of r.trainFacts) {
      for (const t of r.trainTemplates) corpus.push(`${fillTemplate(t, f.subject)} ${f.object}`);
      // Multiple choice on training templates: many prompts per fact, with fresh distractors and order each
      // time, so that the letter can only be learnt by finding the recalled object among the options.
      for (let k = 0; k < choicePerFact; k++) {
        const c = choose(r, f, corpusRng.pick(r.trainTemplates), corpusRng);
        corpus.push(`${c.prompt} ${c.answer}`);
      }
    }
  }
  const evalRng = new Rng(subSeed(seed, 'facts-eval'));
  const evalSets: FactEvalSets = {
    heldOutTemplates: relations.flatMap((r) => r.trainFacts.flatMap((f) => r.heldOutTemplates.map((t) => recall(r, f, t)))),
    trainTemplates: relations.flatMap((r) => r.trainFacts.map((f) => recall(r, f, evalRng.pick(r.trainTemplates)))),
    unseenFacts: relations.flatMap((r) => r.unseenFacts.flatMap((f) => r.trainTemplates.map((t) => recall(r, f, t)))),
    choice: relations.flatMap((r) => r.trainFacts.flatMap((f) => r.heldOutTemplates.map((t) => choose(r, f, t, evalRng)))),
    choiceUnseen: relations.flatMap((r) => r.unseenFacts.flatMap((f) => r.trainTemplates.slice(0, 2).map((t) => choose(r, f, t, evalRng)))),
  };
  return {
    relations,
    corpus: corpusRng.shuffle(corpus),
    eval: evalSets,
    options: { seed, relations: names, unseenShare, heldOutTemplates: heldOutCount, choicePerFact, dataDir: o.dataDir },
  };
}

/** One query in the qrneuron format (Chen, Dejl & Toni 2024): three prompts of one question, the gold letter of each, its domain. */
export interface QrneuronQuery {
  sentences: string[];
  obj_label: string[];
  relation_name: string;
}

/**
 * The trained facts as a qrneuron-format file ({id: {sentences, obj_label, relation_name}}), the data
 * that `query-neurons` reads: per fact, its question in `templates` training templates (seeded), the
 * same four options (the object and three of the relation's range) shuffled anew in each. The domain is
 * the relation; ids are "relation/subject".
 */
export function factsQrneuron(build: FactsBuild, o: { templates?: number; perRelation?: number } = {}): Record<string, QrneuronQuery> {
  const rng = new Rng(subSeed(build.options.seed, 'facts-qrneuron'));
  const out: Record<string, QrneuronQuery> = {};
  for (const r of build.relations) {
    for (const f of r.trainFacts.slice(0, o.perRelation ?? Infinity)) {
      const options = [f.object, ...rng.shuffle(r.range.filter((x) => x !== f.object)).slice(0, 3)];
      const templates = rng.shuffle(r.trainTemplates).slice(0, o.templates ?? 3);
      const shuffled = templates.map(() => rng.shuffle(options));
      out[`${r.name}/${f.subject}`] = {
        sentences: templates.map((t, k) => choicePrompt(t, f.subject, shuffled[k])),
        obj_label: shuffled.map((opts) => CHOICE_LETTERS[opts.indexOf(f.object)]),
        relation_name: r.name,
      };
    }
  }
  return out;
}

export const FACTS_UNK = '[UNK]';
export const FACTS_EOS = '[EOS]';

/**
 * A word-level tokenizer.json (a WordPiece model, Whitespace pre-tokenizer): every word of `texts` is
 * one token, and any other word of known characters falls back to single characters ("##" pieces);
 * the rest is [UNK]. Ids: [UNK] 0, [EOS] 1, then words sorted by frequency (ties by spelling), then
 * characters. Hugging Face's `tokenizers` and @huggingface/tokenizers load it and agree on ASCII text.
 */
export function factsTokenizerJson(texts: string[]): object {
  const counts = new Map<string, number>();
  const chars = new Set<string>();
  for (const text of texts) {
    for (const w of words(text)) {
      counts.set(w, (counts.get(w) ?? 0) + 1);
      for (const ch of w) chars.add(ch);
    }
  }
  for (let c = 0x21; c <= 0x7e; c++) chars.add(String.fromCharCode(c));
  const vocab: Record<string, number> = { [FACTS_UNK]: 0, [FACTS_EOS]: 1 };
  const add = (t: string) => {
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  };
  [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).forEach(([w]) => add(w));
  const sortedChars = [...chars].sort();
  sortedChars.forEach(add);
  sortedChars.forEach((ch) => add(`##${ch}`));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, FACTS_UNK), special(1, FACTS_EOS)],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: FACTS_UNK, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

export function factsTokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: FACTS_EOS,
    eos_token: FACTS_EOS,
    unk_token: FACTS_UNK,
    clean_up_tokenization_spaces: false,
    model_max_length: 2048,
  };
}

/** Every text of the corpus and of the evaluation sets: what the tokenizer's vocabulary is built from. */
export function factsTexts(build: FactsBuild): string[] {
  const e = build.eval;
  return [
    ...build.corpus,
    ...[...e.heldOutTemplates, ...e.trainTemplates, ...e.unseenFacts].map((i) => `${i.prompt} ${i.target}`),
    ...[...e.choice, ...e.choiceUnseen].map((i) => `${i.prompt} ${i.answer}`),
  ];
}
