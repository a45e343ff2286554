/**
 * Relearning after pruning (Lo, Cohen & Barez 2024): rank a concept's units, prune the top fraction
 * (frozen: kept exactly zero through training; free: zeroed once), retrain, and measure at every
 * checkpoint how the concept comes back, beside the same run with randomly ranked units (several
 * seeded draws, summarised with bootstrap intervals).
 *
 * Retraining runs in segments of `checkpointEvery` steps of one learning-rate schedule and one batch
 * order, with the training state (AdamW's moments and the weights) saved at each checkpoint in one
 * file and carried into the next segment: the segments are one training, and a run resumed from its
 * last checkpoint (the starting model, pruned again, then that file) ends exactly as an
 * uninterrupted one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readSafetensors, writeSafetensors } from '../checkpoint';
import { environment } from '../environment';
import { NeuropruneError } from '../errors';
import { LoadOptions, Model } from '../model';
import { neuronSet } from '../neurons';
import { stagingDir, throwIfAborted } from '../staging';
import { ConceptText } from '../tasks/concept';
import { subSeed } from '../tasks/random';
import { relearnReport } from '../report/relearn';
import { cosine, jaccard, meanRows, probelessScores, randomRanking, rankByScore, saliencyFromRanking, saliencyPerLayer, topTokens, topTokensAll, TokenActivations } from '../relearn/measure';
import { controlSummary } from '../relearn/control';
import { labelRows, LabelledRow, measureRows, RelearnSite, TokenScores, unitsPerLayer } from '../relearn/tokens';

export type Ranking = 'probeless' | 'ig' | 'random';
export type PruneMode = 'frozen' | 'free';

export interface RelearnOptions {
  /** Training texts with concept spans; a held-out share (heldOut) is split off for measuring. */
  corpus: ConceptText[];
  out: string;
  site?: RelearnSite;
  ranking?: Ranking;
  mode?: PruneMode;
  /** Share of the site's units to prune (resid: of the dModel dimensions). Default 0.05. */
  pruneFraction?: number;
  steps?: number;
  checkpointEvery?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Share of texts held out for the measurements (default 0.1, at most measureTexts texts). */
  heldOut?: number;
  /**
   * The most held-out texts every measurement reads (default 64): measuring costs a forward over them
   * at each checkpoint, so this bounds the tracking cost; raise it for tighter concept/control numbers.
   */
  measureTexts?: number;
  /** Saliency: the top `saliencyTop` units of a fresh ranking score 1 (default 100, as the paper). */
  saliencyTop?: number;
  /** Run the random-ranking control beside (default true unless ranking is random). */
  control?: boolean;
  /** Seeded random rankings the control runs, each a whole retraining (default 3). */
  randomDraws?: number;
  resume?: boolean;
  load?: LoadOptions;
  onProgress?: (what: string, done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface Checkpoint {
  step: number;
  phase: 'before' | 'pruned' | 'trained';
  scores: TokenScores;
  saliency: Array<{ mean: number; above: number }>;
  /** Largest |activation| of a pruned unit on the held-out tokens (0 while frozen; free MLP neurons keep their inputs, so not 0). */
  prunedMaxAbs: number;
  /** Mean L2 norm of the pruned units' output weights: 0 right after pruning, and while frozen; grows as they regrow. */
  prunedNorm: number;
  /**
   * Per pruned unit and per current top unit: Jaccard of its top-5 tokens before pruning and now, and
   * the cosine of those two token sets' mean input embeddings (the starting model's); null where a
   * unit has no top tokens or the embeddings cannot be read.
   */
  similarity: { pruned: Array<number | null>; top: Array<number | null>; prunedCosine: Array<number | null>; topCosine: Array<number | null> };
}

export interface RunResult {
  ranking: Ranking;
  /** The control's draw (0, 1, ...; its own sub-seed); undefined for the main run. */
  draw?: number;
  layers: number;
  /**
   * Wall time of this process's share of the run: measuring (with ranking), training (with writing
   * each segment's training state, which resume needs), and the rest of the resumable state (state.json).
   */
  seconds: { measure: number; train: number; save: number };
  pruned: Array<{ layer: number; index: number }>;
  checkpoints: Checkpoint[];
  /** [checkpoints, layers, units] saliency, checkpoint-major. */
  saliency: Float32Array;
}

interface RunState extends Omit<RunResult, 'saliency' | 'layers' | 'seconds' | 'draw'> {
  saliency: number[];
  topBefore: number[][];
  /** The training state (weights, AdamW moments) at the last checkpoint's step; none at step 0, where the model is the pruned starting model. */
  optimizerFile?: string;
}

export async function relearn(modelSource: string, options: RelearnOptions) {
  const o = {
    site: options.site ?? 'mlp.hook_post', ranking: options.ranking ?? 'probeless', mode: options.mode ?? 'frozen',
    pruneFraction: options.pruneFraction ?? 0.05, steps: options.steps ?? 200, checkpointEvery: options.checkpointEvery ?? 50,
    batchSize: options.batchSize ?? 16, lr: options.lr ?? 1e-3, seed: options.seed ?? 0, heldOut: options.heldOut ?? 0.1, measureTexts: options.measureTexts ?? 64,
    saliencyTop: options.saliencyTop ?? 100, maxLength: 128, randomDraws: options.randomDraws ?? 3,
  };
  const control = options.control ?? o.ranking !== 'random';
  if (!(o.pruneFraction > 0 && o.pruneFraction < 1)) throw new NeuropruneError('E_ARG', `pruneFraction must be in (0, 1), got ${o.pruneFraction}`);
  if (!Number.isInteger(o.checkpointEvery) || o.checkpointEvery < 1) throw new NeuropruneError('E_ARG', `checkpointEvery must be a positive integer`);
  if (!['probeless', 'ig', 'random'].includes(o.ranking)) throw new NeuropruneError('E_ARG', `ranking must be probeless, ig or random, got ${o.ranking}`);
  if (!['frozen', 'free'].includes(o.mode)) throw new NeuropruneError('E_ARG', `mode must be frozen or free, got ${o.mode}`);
  if (!Number.isInteger(o.randomDraws) || o.randomDraws < 1) throw new NeuropruneError('E_ARG', `randomDraws must be a positive integer, got ${o.randomDraws}`);
  if (!Number.isInteger(o.measureTexts) || o.measureTexts < 1) throw new NeuropruneError('E_ARG', `measureTexts must be a positive integer, got ${o.measureTexts}`);
  const heldCount = Math.min(o.measureTexts, Math.max(1, Math.round(options.corpus.length * o.heldOut)));
  if (options.corpus.length < heldCount + 1) throw new NeuropruneError('E_ARG', 'the corpus needs more texts than the held-out share');
  const held = options.corpus.slice(0, heldCount), train = options.corpus.slice(heldCount);
  const out = path.resolve(options.out);
  const work = `${out}.work`;
  const settings = JSON.stringify({ modelSource, o, control, corpus: options.corpus.length, first: options.corpus[0] });
  if (options.resume && fs.existsSync(path.join(work, 'settings.json'))) {
    if (fs.readFileSync(path.join(work, 'settings.json'), 'utf8') !== settings) throw new NeuropruneError('E_ARG', `${work}: made with other settings; start again without resume`);
  } else {
    fs.rmSync(work, { recursive: true, force: true });
    fs.mkdirSync(work, { recursive: true });
    writeWhole(path.join(work, 'settings.json'), settings);
  }
  const started = performance.now();
  // The main run, then each control draw in a folder of its own (a resume picks up where each stood).
  const runs: RunResult[] = [await oneRun(modelSource, o.ranking, { ...o }, train, held, path.join(work, o.ranking), options)];
  if (control) {
    for (let draw = 0; draw < o.randomDraws; draw++) runs.push(await oneRun(modelSource, 'random', { ...o, ranking: 'random' }, train, held, path.join(work, `random-${draw}`), options, draw));
  }
  const info = { nLayers: runs[0].layers };
  const draws = runs.slice(1);
  const results = {
    environment: environment(), model: modelSource, settings: { ...o, control, trainTexts: train.length, heldOutTexts: held.length },
    notes: {
      saliency: `rank in a fresh probeless ranking at each checkpoint; the top ${o.saliencyTop} score 1, then linearly down to 0 at the last rank`,
      similarity: 'Jaccard of the top-5 activating held-out tokens before pruning and at the checkpoint, and cosine of their mean input embeddings (the starting model\'s); null for a unit with no nonzero activation',
      optimizer: 'one AdamW training over all steps: the learning-rate schedule, batch order and optimizer state (moments, update count) carry across checkpoint segments and through a resume; each checkpoint keeps one training-state file that holds the weights too, and a resume is the starting model, pruned again, plus that file',
      pruning: 'frozen: an MLP neuron loses its up/gate rows, biases and down-projection column and gets no gradient (it reads exactly 0); free: only its down-projection column is zeroed, once (with every weight at 0 it could never regrow)',
      resid: 'pruning a residual dimension d zeroes column d of the embeddings and row d of every residual writer, so hook_resid_post[d] is 0 at every layer; its ig score is its hook_resid_post IG summed over layers (probeless: its probeless score summed over layers)',
      control: `${draws.length} random rankings, each with its own sub-seed and the same training order as the main run. Per checkpoint: the draws' mean accuracy with a 95% percentile-bootstrap interval, and main minus random with a paired 95% bootstrap interval, both resampling the held-out tokens (every run scores the same tokens; per token the control is its mean over draws). Tokens, not draws, are resampled because a bootstrap over ${draws.length} draws has too few distinct resamples to mean anything; the draws' own spread is given as random.min and random.max.`,
    },
    runs: runs.map((r) => ({ ranking: r.ranking, ...(r.draw === undefined ? {} : { draw: r.draw }), pruned: r.pruned.length, seconds: r.seconds, checkpoints: r.checkpoints })),
    control: draws.length ? controlSummary(runs[0].checkpoints, draws.map((r) => r.checkpoints), { seed: o.seed }) : null,
    ms: Math.round(performance.now() - started),
  };
  throwIfAborted(options.signal, 'relearn');
  const tmp = stagingDir(out);
  try {
    fs.writeFileSync(path.join(tmp, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    const main = runs[0];
    const set = neuronSet(modelSource, main.pruned, { method: 'relearn', ranking: main.ranking, fraction: o.pruneFraction }, o.site);
    fs.writeFileSync(path.join(tmp, 'neurons.json'), JSON.stringify(set, null, 2) + '\n');
    const per = main.saliency.length / main.checkpoints.length / info.nLayers;
    await writeSafetensors(path.join(tmp, 'saliency.safetensors'), runs.map((r) => ({
      name: r === main ? 'saliency' : `saliency_random_${r.draw}`, dtype: 'F32',
      shape: [r.checkpoints.length, info.nLayers, per], data: Buffer.from(r.saliency.buffer, r.saliency.byteOffset, r.saliency.byteLength),
    })));
    fs.writeFileSync(path.join(tmp, 'report.html'), relearnReport(results, runs, info.nLayers));
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(tmp, out);
  } catch (error) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  fs.rmSync(work, { recursive: true, force: true });
  return { out, results, runs };
}

type Resolved = { site: RelearnSite; ranking: Ranking; mode: PruneMode; pruneFraction: number; steps: number; checkpointEvery: number; batchSize: number; lr: number; seed: number; saliencyTop: number; maxLength: number };

/** One ranking's run (a control draw with `draw`): measure, rank, prune, retrain in segments; state.json after each checkpoint. */
async function oneRun(source: string, ranking: Ranking, o: Resolved, train: ConceptText[], held: ConceptText[], dir: string, options: RelearnOptions, draw?: number): Promise<RunResult> {
  const stateFile = path.join(dir, 'state.json');
  let state: RunState | undefined = fs.existsSync(stateFile) ? JSON.parse(fs.readFileSync(stateFile, 'utf8')) : undefined;
  fs.mkdirSync(dir, { recursive: true });
  // Always the starting model: a resumed run prunes it again and its training state brings the weights.
  const model = await Model.load(source, options.load);
  const embeddings = model.info.dir ? await inputEmbeddings(path.join(model.info.dir, 'model.safetensors')) : undefined;
  const kind = o.site === 'hook_resid_post' ? 'resid' : 'mlp';
  // Frozen MLP neurons lose their input weights too (they read exactly 0); free ones keep them,
  // since a neuron with every weight at 0 has no gradient and could never regrow.
  const prune = (units: RunState['pruned']) => model.pruneUnits(kind, units, { inputs: o.mode === 'frozen' });
  try {
    const rows = labelRows(model, held, o.maxLength);
    const L = model.info.nLayers, per = unitsPerLayer(model, o.site);
    const seconds = { measure: 0, train: 0, save: 0 };
    const timed = async <T>(what: keyof typeof seconds, run: () => Promise<T>) => {
      const t0 = performance.now();
      try {
        return await run();
      } finally {
        seconds[what] += (performance.now() - t0) / 1000;
      }
    };
    const measure = (phase: Checkpoint['phase'], step: number, s: RunState) => timed('measure', () => measureAt(phase, step, s));
    const measureAt = async (phase: Checkpoint['phase'], step: number, s: RunState) => {
      throwIfAborted(options.signal, 'relearn');
      const { acts, scores } = await measureRows(model, rows, o.site, true, 32);  // one forward: activations and next-token scores
      const fresh = rankByScore(probelessScores(acts));
      const saliency = saliencyFromRanking(fresh, o.saliencyTop);
      const prunedUnits = s.pruned.length ? unitIds(s.pruned, o.site, L, per) : [];
      let prunedMaxAbs = 0;
      for (const u of prunedUnits) for (let t = 0; t < acts.concept.length; t++) prunedMaxAbs = Math.max(prunedMaxAbs, Math.abs(acts.values[t * acts.units + u]));
      const now = new Map<number, number[]>();
      const tops = (u: number) => now.get(u) ?? (now.set(u, topTokens(acts, u)), now.get(u)!);
      const sim = (u: number) => jaccard(s.topBefore[u] ?? [], tops(u));
      const cos = (u: number) => {
        const a = embeddings && meanRows(embeddings.table, embeddings.dim, s.topBefore[u] ?? []), b = embeddings && meanRows(embeddings.table, embeddings.dim, tops(u));
        return a && b ? cosine(a, b) : null;
      };
      const top = fresh.slice(0, Math.min(o.saliencyTop, fresh.length));
      const norms = s.pruned.length ? await model.unitNorms(kind, s.pruned) : new Float64Array(0);
      s.checkpoints.push({
        step, phase, scores: scores!, saliency: saliencyPerLayer(saliency, L), prunedMaxAbs,
        prunedNorm: norms.length ? norms.reduce((a, b) => a + b, 0) / norms.length : 0,
        similarity: { pruned: prunedUnits.map(sim), top: top.map(sim), prunedCosine: prunedUnits.map(cos), topCosine: top.map(cos) },
      });
      s.saliency.push(...saliency);
      return acts;
    };
    if (!state) {
      state = { ranking, pruned: [], checkpoints: [], saliency: [], topBefore: [] };
      const acts = await measure('before', 0, state);
      state.topBefore = topTokensAll(acts);
      state.checkpoints[0].similarity = { pruned: [], top: [], prunedCosine: [], topCosine: [] };
      state.pruned = await timed('measure', () => rankUnits(model, ranking, o, acts, rows, L, per, draw));
      await prune(state.pruned);
      await measure('pruned', 0, state);
      const first = state;
      await timed('save', async () => saveState(dir, first, 0));
    } else {
      await prune(state.pruned);  // as the run did; past step 0 the training state then brings the trained weights
    }
    // Tokenized once for every segment: model.train would otherwise re-encode the whole corpus per
    // call (the same ids; the guarded tokenizer costs about 2 ms a text, the bulk of the segmenting cost).
    const samples = await timed('train', async () => train.map((t) => model.tokenizer.encode(t.text)));
    const pruned = state.pruned;
    for (let from = state.checkpoints[state.checkpoints.length - 1].step; from < o.steps; ) {
      const until = Math.min(o.steps, from + o.checkpointEvery);
      // The weights go into the training state too: with the starting model it is all a resume needs.
      const optimizerState = { load: state.optimizerFile, save: optimizerFile(dir, until), weights: true };
      await timed('train', () => model.train({
        samples, steps: o.steps, batchSize: o.batchSize, lr: o.lr, seed: o.seed, maxLength: o.maxLength, fromStep: from, untilStep: until,
        optimizerState,
        frozen: o.mode === 'frozen' ? { kind, units: pruned } : undefined, signal: options.signal,
        onStep: (p) => options.onProgress?.(`${draw === undefined ? ranking : `random draw ${draw}`} training`, p.step, o.steps),
      }));
      await measure('trained', until, state);
      const done = state;
      await timed('save', async () => saveState(dir, done, until));
      from = until;
    }
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return { ranking, ...(draw === undefined ? {} : { draw }), layers: L, seconds: { measure: round(seconds.measure), train: round(seconds.train), save: round(seconds.save) }, pruned: state.pruned, checkpoints: state.checkpoints, saliency: Float32Array.from(state.saliency) };
  } finally {
    model.dispose();
  }
}

/** Unit ids (layer-major) of pruned units; a residual dimension counts at every layer. */
function unitIds(pruned: Array<{ layer: number; index: number }>, site: RelearnSite, L: number, per: number): number[] {
  if (site !== 'hook_resid_post') return pruned.map((n) => n.layer * per + n.index);
  return pruned.flatMap((n) => Array.from({ length: L }, (_, l) => l * per + n.index));
}

/**
 * The pruned units: the top fraction of the ranking (resid: of dimensions, scores summed over
 * layers). A random ranking's seed comes from the run's seed, the site and the control draw.
 */
async function rankUnits(model: Model, ranking: Ranking, o: Resolved, acts: TokenActivations, rows: LabelledRow[], L: number, per: number, draw?: number) {
  const seed = draw === undefined ? subSeed(o.seed, 'relearn-random', o.site) : subSeed(o.seed, 'relearn-random', o.site, 'draw', draw);
  if (o.site === 'hook_resid_post') {
    const count = Math.max(1, Math.round(o.pruneFraction * per));
    let order: number[];
    if (ranking === 'random') order = randomRanking(per, seed);
    else {
      // A dimension is pruned at every layer at once: its score is the sum of its per-layer scores.
      const s = ranking === 'ig' ? await igScores(model, rows, o.site, L, per) : probelessScores(acts), dims = new Float32Array(per);
      for (let u = 0; u < s.length; u++) dims[u % per] += s[u];
      order = rankByScore(dims);
    }
    return order.slice(0, count).sort((a, b) => a - b).map((index) => ({ layer: 0, index }));
  }
  const count = Math.max(1, Math.round(o.pruneFraction * L * per));
  let order: number[];
  if (ranking === 'random') order = randomRanking(L * per, seed);
  else if (ranking === 'probeless') order = rankByScore(probelessScores(acts));
  else order = rankByScore(await igScores(model, rows, o.site, L, per));
  return order.slice(0, count).sort((a, b) => a - b).map((u) => ({ layer: Math.floor(u / per), index: u % per }));
}

/**
 * IG of the concept tokens' log-probability: one prompt per concept token run (the text before it),
 * target the run's tokens, the site scaled at the prompt's last token; a unit's score is its mean
 * attribution over prompts ([layers, units]: MLP neurons, or hook_resid_post dimensions).
 */
async function igScores(model: Model, rows: LabelledRow[], site: RelearnSite, L: number, per: number): Promise<Float32Array> {
  const prompts: Array<{ prompt: number[]; target: number[] }> = [];
  for (const row of rows) {
    for (let i = 1; i < row.ids.length; i++) {
      if (!row.concept[i] || row.concept[i - 1]) continue;
      let j = i;
      while (j < row.ids.length && row.concept[j]) j++;
      prompts.push({ prompt: row.ids.slice(0, i), target: row.ids.slice(i, j) });
    }
  }
  if (prompts.length === 0) throw new NeuropruneError('E_ARG', 'the held-out texts have no concept token after the first position');
  const r = await model.attribute({ prompts, objective: 'logprob', site, steps: 20 });
  const out = new Float32Array(L * per);
  for (const p of r.prompts) for (let u = 0; u < out.length; u++) out[u] += p.scores[u] / r.prompts.length;
  return out;
}

/** The token embedding table of a float32 single-file checkpoint; undefined where there is none. */
async function inputEmbeddings(file: string): Promise<{ table: Float32Array; dim: number } | undefined> {
  if (!fs.existsSync(file)) return undefined;
  const { tensors } = await readSafetensors(file);
  const name = Object.keys(tensors).find((n) => /(embed_tokens|wte|embed_in|embeddings)\.weight$/.test(n));
  const t = name ? tensors[name] : undefined;
  if (!t || t.dtype !== 'F32' || t.shape.length !== 2) return undefined;
  const table = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  return { table, dim: t.shape[1] };
}

function optimizerFile(dir: string, step: number) {
  return path.join(dir, `training-step-${step}.safetensors`);
}

/**
 * Writes the state pointing at the training state the segment up to `step` wrote (weights and
 * optimizer, one file written whole), then drops the previous one: a kill at any point leaves
 * state.json and the file it names consistent.
 */
function saveState(dir: string, state: RunState, step: number) {
  const old = state.optimizerFile;
  if (step > 0) state.optimizerFile = optimizerFile(dir, step);
  writeWhole(path.join(dir, 'state.json'), JSON.stringify(state));
  if (old && old !== state.optimizerFile) fs.rmSync(old, { force: true });
}

function writeWhole(file: string, text: string) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
