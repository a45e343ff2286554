/** Scoring a greedy prediction: exact match after stripping whitespace; knowledge tasks accept a prefix. */
export interface Verdict {
  correct: boolean;
  /** A wrong prediction that equals one of the prompt's example labels. */
  copyError: boolean;
}

export function scorePrediction(prediction: string, expected: string, labels: string[], scoring: 'exact' | 'prefix'): Verdict {
  const p = prediction.trim(), e = expected.trim();
  const correct = scoring === 'prefix' ? p.length > 0 && (e.startsWith(p) || p.startsWith(e)) : p === e;
  return { correct, copyError: !correct && p.length > 0 && labels.some((l) => l.trim() === p) };
}
