/** In-context learning tasks: (input, output) pairs and how answers are scored. */

export interface Pair {
  input: string;
  output: string;
}

export type TaskKind = 'knowledge' | 'linguistic' | 'translation' | 'algorithmic' | 'proxy' | 'classification';

export interface Task {
  name: string;
  kind: TaskKind;
  /** knowledge tasks accept a prefix match (the answer's first token), the rest an exact match. */
  scoring: 'exact' | 'prefix';
  pairs: Pair[];
  /**
   * The proxy task: a prompt's examples never carry its right answer as a label, so copying an
   * example label is always an error.
   */
  answerNeverInExamples?: boolean;
  /** Where the pairs came from, for results files. */
  source: string;
}
