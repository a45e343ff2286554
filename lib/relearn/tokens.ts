/** Concept texts as token rows with a concept flag per token, and unit activations over them. */
import { Model } from '../model';
import { NeuronSite } from '../neurons';
import { ConceptText } from '../tasks/concept';
import { TokenActivations } from './measure';

export type RelearnSite = 'mlp.hook_post' | 'mlp.hook_pre' | 'hook_resid_post';

export interface LabelledRow {
  ids: number[];
  /** concept[i]: token i overlaps a concept span. */
  concept: boolean[];
}

/**
 * Where each token's characters lie in the text: its string (with the byte-level "Ġ", SentencePiece
 * "▁" and WordPiece "##" marks read as what they stand for) matched at the cursor after any
 * whitespace. A token that does not match there (a special token, a byte-level piece of a non-ASCII
 * character) covers no characters.
 */
export function tokenSpans(text: string, tokens: string[]): Array<[number, number]> {
  let cursor = 0;
  return tokens.map((token) => {
    const piece = token.replace(/^##/, '').replace(/[Ġ▁]/g, ' ').trimStart();
    let at = cursor;
    while (at < text.length && /\s/.test(text[at])) at++;
    if (piece && text.startsWith(piece, at)) {
      cursor = at + piece.length;
      return [at, cursor];
    }
    return [cursor, cursor];
  });
}

/** Tokenizes each text; a token is a concept token when its characters overlap a concept span. */
export function labelRows(model: Model, texts: ConceptText[], maxLength: number): LabelledRow[] {
  return texts.map(({ text, spans }) => {
    const { ids, tokens } = model.tokenizer.encodeTokens(text);
    const chars = tokenSpans(text, tokens);
    const concept = chars.map(([start, end]) => end > start && spans.some(([s, e]) => start < e && s < end));
    return { ids: ids.slice(0, maxLength), concept: concept.slice(0, maxLength) };
  });
}

/** Units per layer at a site. */
export function unitsPerLayer(model: Model, site: RelearnSite): number {
  return site === 'hook_resid_post' ? model.info.dModel : model.info.dMlp;
}

/**
 * Activations of every unit (layer-major: unit = layer * unitsPerLayer + i) at every token of the
 * rows; residual dimensions are blocks.{l}.hook_resid_post at each token.
 */
export async function unitActivations(model: Model, rows: LabelledRow[], site: RelearnSite, batch = 16): Promise<TokenActivations> {
  return (await measureRows(model, rows, site, false, batch)).acts;
}

/**
 * Unit activations and, with `scores`, the concept/control scores, both from one forward pass per
 * batch of rows (equal to unitActivations and conceptScores run apart; the next-token scores are
 * computed natively, so the logits never come to JS).
 */
export async function measureRows(model: Model, rows: LabelledRow[], site: RelearnSite, scores: boolean, batch = 16): Promise<{ acts: TokenActivations; scores?: TokenScores }> {
  const { per, L, values, units, put } = tokenBuffer(model, rows, site);
  // Batches of rows of similar length, so that little of each forward is padding (computed and thrown
  // away); every row's results land at its own place, so the output is in row order all the same.
  const order = rows.map((_, i) => i).sort((a, b) => rows[a].ids.length - rows[b].ids.length || a - b);
  const first: number[] = [];  // each row's first token in the buffer
  rows.reduce((t, row, i) => ((first[i] = t), t + row.ids.length), 0);
  const scored: Array<Array<[number, boolean]>> = [];
  for (let from = 0; from < order.length; from += batch) {
    const part = order.slice(from, from + batch);
    const ids = part.map((i) => rows[i].ids);
    const a = site === 'hook_resid_post'
      ? await model.residuals(ids, { positions: 'all', nextToken: scores })
      : await model.activations(ids, { site: site as NeuronSite, nextToken: scores });
    const seqLen = a.shape[1];
    part.forEach((i, b) => {
      const n = rows[i].ids.length, pad = seqLen - n;  // left padding
      for (let p = 0; p < n; p++) for (let l = 0; l < L; l++) put(l, a.layers.get(l)!, (b * seqLen + pad + p) * per, first[i] + p);
      if (scores) scored[i] = Array.from({ length: n }, (_, p) => [-a.nextToken!.logprob[b * seqLen + pad + p], a.nextToken!.hit[b * seqLen + pad + p] === 1]);
    });
  }
  const acts = { values, units, concept: rows.flatMap((r) => r.concept), tokenIds: rows.flatMap((r) => r.ids) };
  if (!scores) return { acts };
  const tally = new ScoreTally();
  rows.forEach((row, i) => tally.addScored(row, (p) => scored[i][p]));
  return { acts, scores: tally.result() };
}

/** The activations buffer [tokens, layers x per] of the rows, and put(layer, src, offset, token) to fill it. */
function tokenBuffer(model: Model, rows: LabelledRow[], site: RelearnSite) {
  const per = unitsPerLayer(model, site);
  const L = model.info.nLayers;
  const units = L * per;
  const values = new Float32Array(rows.reduce((n, r) => n + r.ids.length, 0) * units);
  const put = (layer: number, src: Float32Array, offset: number, token: number) => values.set(src.subarray(offset, offset + per), token * units + layer * per);
  return { per, L, values, units, put };
}

export interface TokenScores {
  loss: { concept: number; control: number };
  accuracy: { concept: number; control: number };
  tokens: { concept: number; control: number };
  /**
   * Per held-out token of each kind, in row and position order, '1' where the top prediction was
   * right: the items the paired bootstrap against the random control resamples.
   */
  hits: { concept: string; control: string };
}

/** Next-token loss and accuracy on held-out rows, split by whether the predicted token is a concept token. */
export async function conceptScores(model: Model, rows: LabelledRow[], batch = 16): Promise<TokenScores> {
  const tally = new ScoreTally();
  for (let from = 0; from < rows.length; from += batch) {
    const part = rows.slice(from, from + batch);
    const logits = await model.logits(part.map((r) => r.ids));
    const seqLen = logits.shape[1];
    part.forEach((row, b) => tally.add(row, (p) => logits.at(b, seqLen - row.ids.length + p)));
  }
  return tally.result();
}

class ScoreTally {
  private sum = { concept: 0, control: 0 };
  private right = { concept: 0, control: 0 };
  private count = { concept: 0, control: 0 };
  private hits = { concept: [] as string[], control: [] as string[] };

  /** One row; logitsAt(p) is the logits at the row's token p (predicting token p + 1). */
  add(row: LabelledRow, logitsAt: (p: number) => Float32Array) {
    this.addScored(row, (p) => {
      const z = logitsAt(p);
      const target = row.ids[p + 1];
      let max = -Infinity, arg = 0;
      for (let v = 0; v < z.length; v++) if (z[v] > max) (max = z[v]), (arg = v);
      let total = 0;
      for (let v = 0; v < z.length; v++) total += Math.exp(z[v] - max);
      return [-(z[target] - max - Math.log(total)), arg === target];  // -log softmax(z)[target]
    });
  }

  /** One row; scoreAt(p) is the loss -log p(token p + 1) at the row's token p and whether it was the top prediction. */
  addScored(row: LabelledRow, scoreAt: (p: number) => [number, boolean]) {
    for (let p = 0; p + 1 < row.ids.length; p++) {
      const [loss, hit] = scoreAt(p);
      const kind = row.concept[p + 1] ? 'concept' : 'control';
      this.sum[kind] += loss;
      this.right[kind] += hit ? 1 : 0;
      this.hits[kind].push(hit ? '1' : '0');
      this.count[kind]++;
    }
  }

  result(): TokenScores {
    const { sum, right, count } = this;
    const mean = (s: number, n: number) => (n ? s / n : NaN);
    return {
      loss: { concept: mean(sum.concept, count.concept), control: mean(sum.control, count.control) },
      accuracy: { concept: mean(right.concept, count.concept), control: mean(right.control, count.control) },
      tokens: { ...count },
      hits: { concept: this.hits.concept.join(''), control: this.hits.control.join('') },
    };
  }
}
