/** A causal language model on the native core: load, logits, generate. */
import fs from 'node:fs';
import path from 'node:path';
import { attributeDefaults, AttributeOptions, AttributionResult } from './attribution';
import {
  AblatedRun, AblatedRunOptions, CircuitGraph, circuitMetric, circuitRows, EdgeScoreOptions, EdgeScores, LogitLens, LogitLensOptions,
  memoryBudget, positiveInt,
} from './circuit';
import { nativeCall, NeuropruneError, toNeuropruneError } from './errors';
import { checkModelFile } from './files';
import { stagingDir, throwIfAborted } from './staging';
import { checkLayers, checkTokenIds, describeValue } from './validate';
import { native, NativeModel } from './native';
import { checkSetSite, NeuronRef, NeuronSet, NeuronSite } from './neurons';
import { resolveModel } from './resolve';
import { batchOrder, trainDefaults, TrainOptions, TrainPoint, TrainResult, UnitKind } from './training';
import { byteLevelTokenizerConfig, byteLevelTokenizerJson, TextTokenizer } from './tokenizer';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type DType = 'float32' | 'bfloat16' | 'float16';

export interface LoadOptions {
  device?: Device;
  dtype?: DType;
  /** Seed for `random:` models. */
  seed?: number;
  /**
   * Split the layers over several devices (a model larger than one GPU): `balanced[:DEV,...]`,
   * `auto[:DEV,...]` (by free memory) or `0-5:cuda:0,6-11:cuda:1`. Without a list, every visible
   * GPU. `device` is then ignored: the embeddings go to layer 0's device.
   */
  deviceMap?: string;
}

export interface ModelInfo {
  /** The argument the model was loaded from. */
  id: string;
  /** The folder it was read from; undefined for `random:` models. */
  dir?: string;
  architecture: string;
  modelType: string;
  nLayers: number;
  dModel: number;
  nHeads: number;
  /** Neurons per layer at `blocks.{l}.<neuronSite>`. */
  dMlp: number;
  /** Where the neurons sit, without the layer: `mlp.hook_post` (input of the down projection), or
   * `mixer.hook_post` for Mamba (input of out_proj). */
  neuronSite: NeuronSite;
  /** The neuron sites this model has: neuronSite, and mlp.hook_pre for every MLP architecture. */
  neuronSites: NeuronSite[];
  vocabSize: number;
  maxPositions: number;
  nParams: number;
  dtype: DType;
  /** Where the embeddings (and inputs) live; with a device map, layer 0's device. */
  device: string;
  /** With a device map: the device of each layer (the head sits on the last). */
  layerDevices?: string[];
  /** Activation sites, TransformerLens names. */
  sites: string[];
  config: Record<string, unknown>;
}

/** Text, several texts, token ids, or several rows of token ids. */
export type ModelInput = string | string[] | number[] | number[][];

/** A left-padded batch: ids and mask are [batch, seqLen] row-major; mask 0 marks padding. */
export interface TokenBatch {
  ids: Int32Array;
  mask: Uint8Array;
  batch: number;
  seqLen: number;
  /** Real tokens per row. */
  lengths: number[];
}

export interface Logits {
  /** Row-major float32 [batch, positions, vocab]. */
  data: Float32Array;
  shape: [number, number, number];
  /** The padding mask of the input [batch, seqLen]; with lastOnly the single position is the last token. */
  tokens: TokenBatch;
  /** The vocab-sized slice at (row, position). */
  at(row: number, position: number): Float32Array;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Stop a row at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  signal?: AbortSignal;
}

export interface Generation {
  prompt: string;
  /** The generated text, without the prompt. */
  text: string;
  tokens: number[];
}

/** A reversible edit; pass it to `model.restore(edit)`. */
export interface Edit {
  readonly id: number;
  readonly kind: 'prune' | 'scale';
  readonly neurons: number;
}

/**
 * Next-token scores of a forward pass, row-major [batch, seqLen]: at each position the log-probability
 * of the following token and 1 where it is the top prediction (0 at the last position; positions of
 * left padding hold values to skip). Computed natively, so the [batch, seqLen, vocab] logits stay there.
 */
export interface NextTokenScores {
  logprob: Float32Array;
  hit: Float32Array;
}

export interface Activations {
  /** blocks.{layer}.<site> per requested layer, row-major [batch, seqLen, dMlp]. */
  layers: Map<number, Float32Array>;
  shape: [number, number, number];
  tokens: TokenBatch;
  /** With `withLogits`: the same forward pass's logits at every position. */
  logits?: Logits;
  /** With `nextToken`: the same forward pass's next-token scores. */
  nextToken?: NextTokenScores;
}

export interface Residuals {
  /** blocks.{layer}.hook_resid_post at each row's last token, per requested layer, row-major [batch, dModel]. */
  layers: Map<number, Float32Array>;
  shape: [number, number];
  tokens: TokenBatch;
}

export interface ResidualsAll {
  /** blocks.{layer}.hook_resid_post at every position, per requested layer, row-major [batch, seqLen, dModel] (left padding included). */
  layers: Map<number, Float32Array>;
  shape: [number, number, number];
  tokens: TokenBatch;
  /** With `withLogits`: the same forward pass's logits at every position. */
  logits?: Logits;
  /** With `nextToken`: the same forward pass's next-token scores. */
  nextToken?: NextTokenScores;
}

export interface PatchedGenerateOptions extends GenerateOptions {
  /** The layer whose hook_resid_post is patched (0 = after the first block). */
  layer: number;
  /**
   * Per prompt the vector [dModel] that replaces hook_resid_post at the prompt's last token: one
   * Float32Array of batch * dModel values, or one array per prompt.
   */
  vectors: Float32Array | Float32Array[];
}

/** Tokenizer and generation files `save` copies from the source folder. */
const SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'tokenizer.model', 'generation_config.json'];

export class Model {
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private graph: CircuitGraph | undefined;

  private constructor(
    private readonly handle: NativeModel,
    readonly info: ModelInfo,
    private readonly textTokenizer: TextTokenizer | undefined,
    private readonly eosId: number | undefined,
  ) {}

  /** Loads a folder, a hub id from the local HF cache, or `random:PRESET` (e.g. random:gpt2-small). */
  static async load(pathOrId: string, options: LoadOptions = {}): Promise<Model> {
    const { device = 'cpu', dtype = 'float32', seed = 0, deviceMap } = options;
    if (deviceMap !== undefined && (typeof deviceMap !== 'string' || deviceMap === '')) {
      throw new NeuropruneError('E_ARG', `deviceMap must be a non-empty string, got ${describeValue(deviceMap)}`);
    }
    const source = resolveModel(pathOrId);
    if (source.kind === 'random') {
      const handle = await nativeCall(() => native().randomModel(JSON.stringify(source.config), device, dtype, seed, deviceMap));
      return Model.wrap(handle, source.id, undefined, TextTokenizer.byteLevel());
    }
    const handle = await nativeCall(() => native().loadModel(source.dir, device, dtype, deviceMap));
    try {
      const hasTokenizer = fs.existsSync(path.join(source.dir, 'tokenizer.json'));
      return Model.wrap(handle, source.id, source.dir, hasTokenizer ? await TextTokenizer.fromDir(source.dir) : undefined);
    } catch (error) {
      handle.dispose();
      throw error;
    }
  }

  private static wrap(handle: NativeModel, id: string, dir: string | undefined, tokenizer: TextTokenizer | undefined): Model {
    const raw = handle.info();
    const config = JSON.parse(raw.config) as Record<string, unknown>;
    const info: ModelInfo = {
      id,
      dir,
      architecture: raw.architecture,
      modelType: raw.modelType,
      nLayers: raw.nLayers,
      dModel: raw.dModel,
      nHeads: raw.nHeads,
      dMlp: raw.dMlp,
      neuronSite: raw.neuronSite as NeuronSite,
      neuronSites: raw.hasPreSite ? [raw.neuronSite as NeuronSite, 'mlp.hook_pre'] : [raw.neuronSite as NeuronSite],
      vocabSize: raw.vocabSize,
      maxPositions: raw.maxPositions,
      nParams: raw.nParams,
      dtype: raw.dtype as DType,
      device: raw.device,
      ...(raw.layerDevices ? { layerDevices: raw.layerDevices } : {}),
      sites: Array.from({ length: raw.nLayers }, (_, l) => `blocks.${l}.${raw.neuronSite}`),
      config,
    };
    const eos = typeof config.eos_token_id === 'number' ? config.eos_token_id : tokenizer?.eosId;
    return new Model(handle, info, tokenizer, eos);
  }

  get tokenizer(): TextTokenizer {
    if (!this.textTokenizer) {
      throw new NeuropruneError('E_TOKENIZER', `${this.info.dir ?? this.info.id}: no tokenizer.json, so text input is unavailable (pass token ids)`);
    }
    return this.textTokenizer;
  }

  /** Tokenizes and left-pads the input into one batch. */
  encode(input: ModelInput): TokenBatch {
    const rows = this.toRows(input);
    if (rows.length === 0 || rows.some((r) => r.length === 0)) {
      throw new NeuropruneError('E_ARG', 'input must hold at least one row of at least one token');
    }
    rows.forEach((row, b) => checkTokenIds(row, this.info.vocabSize, `input row ${b}`));
    const seqLen = Math.max(...rows.map((r) => r.length));
    if (this.info.maxPositions > 0 && seqLen > this.info.maxPositions) {
      throw new NeuropruneError('E_RANGE', `input of ${seqLen} tokens is longer than the model's context of ${this.info.maxPositions}`);
    }
    const ids = new Int32Array(rows.length * seqLen);
    const mask = new Uint8Array(rows.length * seqLen);
    rows.forEach((row, b) => {
      const offset = b * seqLen + seqLen - row.length;
      row.forEach((id, i) => {
        if (!Number.isInteger(id)) throw new NeuropruneError('E_ARG', `token id ${id} at row ${b}, position ${i} is not an integer`);
        ids[offset + i] = id;
        mask[offset + i] = 1;
      });
    });
    return { ids, mask, batch: rows.length, seqLen, lengths: rows.map((r) => r.length) };
  }

  /**
   * Next-token logits for every position (or only the last one). `chunkSize` feeds the input through
   * the KV cache that many tokens at a time (1 = token-by-token decoding); the result is the same.
   */
  async logits(input: ModelInput, options: { lastOnly?: boolean; chunkSize?: number } = {}): Promise<Logits> {
    const tokens = this.encode(input);
    const { lastOnly = false, chunkSize = 0 } = options;
    if (!Number.isInteger(chunkSize) || chunkSize < 0) throw new NeuropruneError('E_ARG', `chunkSize must be a non-negative integer, got ${describeValue(chunkSize)}`);
    const data = await this.run(() => this.handle.logits(tokens.ids, tokens.mask, tokens.batch, tokens.seqLen, lastOnly, chunkSize));
    const positions = lastOnly ? 1 : tokens.seqLen;
    const vocab = this.info.vocabSize;
    return {
      data,
      shape: [tokens.batch, positions, vocab],
      tokens,
      at: (row, position) => data.subarray((row * positions + position) * vocab, (row * positions + position + 1) * vocab),
    };
  }

  /** Greedy decoding. One prompt gives one Generation; an array gives one per prompt. */
  generate(prompt: string, options?: GenerateOptions): Promise<Generation>;
  generate(prompts: string[], options?: GenerateOptions): Promise<Generation[]>;
  async generate(prompts: string | string[], options: GenerateOptions = {}): Promise<Generation | Generation[]> {
    const generations = await this.decode(prompts, options, 'generate', (t, maxNewTokens, eos, flag) =>
      this.handle.generate(t.ids, t.mask, t.batch, t.seqLen, maxNewTokens, eos, flag));
    return Array.isArray(prompts) ? generations : generations[0];
  }

  /**
   * Greedy decoding with blocks.{layer}.hook_resid_post at each prompt's last token replaced by that
   * prompt's vector in the prompt's forward pass (later tokens run unpatched, as Hendel et al. 2023 do
   * for task vectors). With each prompt's own residual (from `residuals`) it equals `generate`.
   */
  generatePatched(prompt: string, options: PatchedGenerateOptions): Promise<Generation>;
  generatePatched(prompts: string[], options: PatchedGenerateOptions): Promise<Generation[]>;
  async generatePatched(prompts: string | string[], options: PatchedGenerateOptions): Promise<Generation | Generation[]> {
    if (options === null || typeof options !== 'object') throw new NeuropruneError('E_ARG', 'generatePatched needs options {layer, vectors}');
    const { layer, vectors } = options;
    const n = Array.isArray(prompts) ? prompts.length : 1, d = this.info.dModel;
    if (typeof layer !== 'number' || !Number.isInteger(layer)) throw new NeuropruneError('E_ARG', `layer must be an integer, got ${describeValue(layer)}`);
    if (layer < 0 || layer >= this.info.nLayers) throw new NeuropruneError('E_RANGE', `layer ${layer} is out of range [0, ${this.info.nLayers})`);
    let flat: Float32Array;
    if (vectors instanceof Float32Array) {
      flat = vectors;
    } else if (Array.isArray(vectors)) {
      if (vectors.length !== n) throw new NeuropruneError('E_SHAPE', `${vectors.length} vectors for ${n} prompts`);
      flat = new Float32Array(n * d);
      vectors.forEach((v, i) => {
        if (!(v instanceof Float32Array)) throw new NeuropruneError('E_ARG', `vectors[${i}] must be a Float32Array`);
        if (v.length !== d) throw new NeuropruneError('E_SHAPE', `vectors[${i}] has ${v.length} values; the model's d_model is ${d}`);
        flat.set(v, i * d);
      });
    } else {
      throw new NeuropruneError('E_ARG', `vectors must be a Float32Array or an array of them, got ${describeValue(vectors)}`);
    }
    if (flat.length !== n * d) throw new NeuropruneError('E_SHAPE', `vectors hold ${flat.length} values; ${n} prompts need ${n} x d_model = ${n * d}`);
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i])) throw new NeuropruneError('E_ARG', `vectors[${Math.floor(i / d)}][${i % d}] is ${flat[i]}, not a finite number`);
    }
    const generations = await this.decode(prompts, options, 'generatePatched', (t, maxNewTokens, eos, flag) =>
      this.handle.generatePatched(t.ids, t.mask, t.batch, t.seqLen, maxNewTokens, eos, layer, flat, flag));
    return Array.isArray(prompts) ? generations : generations[0];
  }

  /**
   * blocks.{l}.hook_resid_post at the given layers (default all), one forward: at each row's last
   * token (default), or with `positions: 'all'` at every position ([batch, seqLen, dModel], left
   * padded as `activations`), optionally with the same forward's logits (`withLogits`) or next-token
   * scores (`nextToken`).
   */
  residuals(input: ModelInput, options?: { layers?: number[]; positions?: 'last' }): Promise<Residuals>;
  residuals(input: ModelInput, options: { layers?: number[]; positions: 'all'; withLogits?: boolean; nextToken?: boolean }): Promise<ResidualsAll>;
  async residuals(input: ModelInput, options: { layers?: number[]; positions?: 'last' | 'all'; withLogits?: boolean; nextToken?: boolean } = {}): Promise<Residuals | ResidualsAll> {
    const tokens = this.encode(input);
    const layers = checkLayers(options.layers ?? Array.from({ length: this.info.nLayers }, (_, l) => l), this.info.nLayers);
    const positions = options.positions ?? 'last';
    if (positions !== 'last' && positions !== 'all') throw new NeuropruneError('E_ARG', `positions must be last or all, got ${describeValue(positions)}`);
    const all = positions === 'all', withLogits = options.withLogits === true, nextToken = options.nextToken === true;
    if ((withLogits || nextToken) && !all) throw new NeuropruneError('E_ARG', "withLogits and nextToken need positions: 'all'");
    const arrays = await this.run(() => this.handle.residuals(tokens.ids, tokens.mask, tokens.batch, tokens.seqLen, Int32Array.from(layers), all, withLogits, nextToken));
    const byLayer = new Map(layers.map((l, i) => [l, arrays[i]]));
    if (!all) return { layers: byLayer, shape: [tokens.batch, this.info.dModel], tokens };
    const result: ResidualsAll = { layers: byLayer, shape: [tokens.batch, tokens.seqLen, this.info.dModel], tokens };
    if (withLogits) result.logits = logitsView(arrays[layers.length], tokens, this.info.vocabSize);
    if (nextToken) result.nextToken = { logprob: arrays[arrays.length - 2], hit: arrays[arrays.length - 1] };
    return result;
  }

  /** Shared by generate and generatePatched: checks, the native call with an abort flag, decoding. */
  private async decode(
    prompts: string | string[],
    options: GenerateOptions,
    what: string,
    call: (tokens: TokenBatch, maxNewTokens: number, eos: number, flag: Int32Array | undefined) => Promise<{ tokens: Int32Array; steps: number }>,
  ): Promise<Generation[]> {
    const { maxNewTokens = 20, stopAtEos = true, signal } = options;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
      throw new NeuropruneError('E_ARG', `maxNewTokens must be a non-negative integer, got ${describeValue(maxNewTokens)}`);
    }
    const list = Array.isArray(prompts) ? prompts : [prompts];
    const tokens = this.encode(list);
    const longest = Math.max(...tokens.lengths) + maxNewTokens;
    if (this.info.maxPositions > 0 && longest > this.info.maxPositions) {
      throw new NeuropruneError('E_RANGE', `prompt plus maxNewTokens needs ${longest} positions; the model has ${this.info.maxPositions}`);
    }
    const eos = stopAtEos && this.eosId !== undefined ? this.eosId : -1;
    const result = await this.run(() => withAbortFlag(signal, (flag) => call(tokens, maxNewTokens, eos, flag)), signal);
    if (signal?.aborted) throw new NeuropruneError('E_ABORTED', `${what} was cancelled`);
    return list.map((prompt, b) => {
      let row = Array.from(result.tokens.subarray(b * result.steps, (b + 1) * result.steps));
      const end = eos >= 0 ? row.indexOf(eos) : -1;
      if (end >= 0) row = row.slice(0, end);
      return { prompt, text: this.tokenizer.decode(row), tokens: row };
    });
  }

  /**
   * The neuron activations at the given layers (default all) and site (default info.neuronSite:
   * blocks.{l}.mlp.hook_post, Mamba mixer.hook_post; or mlp.hook_pre). `withLogits` also returns the
   * same forward pass's logits (one pass instead of two); `nextToken` its next-token scores.
   */
  async activations(input: ModelInput, options: { layers?: number[]; site?: NeuronSite; withLogits?: boolean; nextToken?: boolean } = {}): Promise<Activations> {
    const tokens = this.encode(input);
    const layers = checkLayers(options.layers ?? Array.from({ length: this.info.nLayers }, (_, l) => l), this.info.nLayers);
    const site = this.nativeSite(options.site);
    const withLogits = options.withLogits === true, nextToken = options.nextToken === true;
    const arrays = await this.run(() => this.handle.activations(tokens.ids, tokens.mask, tokens.batch, tokens.seqLen, Int32Array.from(layers), site, withLogits, nextToken));
    const result: Activations = { layers: new Map(layers.map((l, i) => [l, arrays[i]])), shape: [tokens.batch, tokens.seqLen, this.info.dMlp], tokens };
    if (withLogits) result.logits = logitsView(arrays[layers.length], tokens, this.info.vocabSize);
    if (nextToken) result.nextToken = { logprob: arrays[arrays.length - 2], hit: arrays[arrays.length - 1] };
    return result;
  }

  /**
   * Integrated Gradients over the neurons (blocks.{l}.mlp.hook_post; Mamba: mixer.hook_post; or
   * mlp.hook_pre) or, with site hook_resid_post, the residual dimensions of every requested layer:
   * per prompt a [layers, dMlp] (resid: [layers, dModel]) score, plus F(a) and F(0) per layer so completeness can be checked
   * (the scores of a layer sum to F(a) - F(0) as the steps grow). Cancel with `signal`; the model is
   * left as it was.
   */
  async attribute(options: AttributeOptions): Promise<AttributionResult> {
    const resolved = attributeDefaults(options, this.info.nLayers, this.info.neuronSite);
    const resid = resolved.site === 'hook_resid_post';
    const site = resid ? 'resid' : this.nativeSite(resolved.site as NeuronSite);
    const ids = (x: string | number[], special: boolean, where = 'a prompt field') => {
      if (typeof x === 'string') return this.tokenizer.encode(x, { addSpecialTokens: special });
      if (!Array.isArray(x)) throw new NeuropruneError('E_ARG', `${where} must be text or an array of token ids, got ${x === null ? 'null' : typeof x}`);
      checkTokenIds(x, this.info.vocabSize, where);
      return x;
    };
    const first = (x: string | number[], what: string, i: number) => {
      const t = ids(x, false, `prompts[${i}].${what}`);
      if (t.length === 0) throw new NeuropruneError('E_ARG', `prompts[${i}]: ${what} has no tokens`);
      return t[0];
    };
    const rows: number[][] = [];
    const specs = options.prompts.map((p, i) => {
      const target = ids(p.target, false, `prompts[${i}].target`);
      if (target.length === 0) throw new NeuropruneError('E_ARG', `prompts[${i}]: target has no tokens`);
      rows.push([...ids(p.prompt, true, `prompts[${i}].prompt`), ...target.slice(0, -1)]);
      if (p.labels !== undefined && !Array.isArray(p.labels)) throw new NeuropruneError('E_ARG', `prompts[${i}].labels must be an array`);
      return {
        target,
        distractor: p.distractor === undefined ? undefined : first(p.distractor, 'distractor', i),
        labels: p.labels ? [...new Set(p.labels.map((l) => first(l, 'labels', i)))] : undefined,
      };
    });
    const tokens = this.encode(rows);
    const started = performance.now();
    const raw = await this.runReporting(options, (progress, flag) =>
      this.handle.attribute(tokens.ids, tokens.mask, tokens.batch, tokens.seqLen, specs, { ...resolved, site }, progress, flag), (r) => r.rows);
    const L = resolved.layers.length, N = resid ? this.info.dModel : this.info.dMlp;
    return {
      layers: resolved.layers,
      dMlp: N,
      prompts: options.prompts.map((prompt, b) => ({
        prompt,
        scores: raw.attributions.slice(b * L * N, (b + 1) * L * N),
        fFull: Array.from(raw.fFull.subarray(b * L, (b + 1) * L)),
        fBaseline: Array.from(raw.fBaseline.subarray(b * L, (b + 1) * L)),
      })),
      options: resolved,
      rows: raw.rows,
      microBatches: raw.microBatches,
      ms: performance.now() - started,
    };
  }

  /**
   * A long native call with progress: an exception in onProgress stops the run and is what the call
   * rejects with; reports arriving after it resolved are dropped, and a last one says done (`total`
   * of the result) if the native side's final report was still queued.
   */
  private async runReporting<R>(
    options: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void },
    call: (progress: ((done: number, total: number) => void) | undefined, flag: Int32Array | undefined) => Promise<R>,
    total: (raw: R) => number,
  ): Promise<R> {
    const { onProgress } = options;
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    let progressError: unknown;
    let reported = 0, finished = false;
    const progress = onProgress && ((done: number, all: number) => {
      if (progressError !== undefined || finished) return;
      try {
        onProgress((reported = done), all);
      } catch (error) {
        progressError = error;
        stop.abort();
      }
    });
    let raw: R;
    try {
      raw = await this.run(() => withAbortFlag(signal, (flag) => call(progress, flag)), signal);
    } catch (error) {
      throw progressError ?? error;
    } finally {
      finished = true;
    }
    if (progressError !== undefined) throw progressError;
    const all = total(raw);
    if (onProgress && reported < all) onProgress(all, all);
    return raw;
  }

  /**
   * The model as a circuit graph: writers (input, heads, MLPs), readers (each head's q/k/v input, MLPs,
   * logits) and which writer each reader reads. E_SITE for models without heads (Mamba).
   */
  circuitGraph(): CircuitGraph {
    if (this.disposed) throw new NeuropruneError('E_DISPOSED', `model ${this.info.id} has been disposed`);
    if (!this.graph) {
      try {
        this.graph = this.handle.circuitGraph();
      } catch (error) {
        throw toNeuropruneError(error);
      }
    }
    return { writers: [...this.graph.writers], readers: [...this.graph.readers], edges: this.graph.edges.slice() };
  }

  /**
   * Scores every edge of the circuit graph by EAP (one gradient at the clean input) or EAP-IG (m
   * inputs interpolated from the corrupted to the clean embeddings): see EdgeScores for the formula
   * and sign. Micro-batched to memoryBudgetBytes; cancel with `signal`.
   */
  async edgeScores(options: EdgeScoreOptions): Promise<EdgeScores> {
    if (options === null || typeof options !== 'object') throw new NeuropruneError('E_ARG', 'edgeScores needs options {clean, corrupted, metric, method}');
    const graph = this.circuitGraph();
    const vocab = this.info.vocabSize;
    const clean = circuitRows(options.clean, vocab, 'clean');
    const corrupted = circuitRows(options.corrupted, vocab, 'corrupted');
    if (corrupted.rows !== clean.rows) throw new NeuropruneError('E_ARG', `corrupted holds ${corrupted.rows} rows for ${clean.rows} clean rows (one per clean row)`);
    if (corrupted.seqLen !== clean.seqLen) throw new NeuropruneError('E_ARG', `corrupted rows have ${corrupted.seqLen} tokens but clean rows ${clean.seqLen}: they must have the same length`);
    const metric = circuitMetric(options.metric, clean.rows, vocab);
    if (options.method !== 'eap' && options.method !== 'eap-ig') throw new NeuropruneError('E_ARG', `method must be eap or eap-ig, got ${describeValue(options.method)}`);
    const steps = options.method === 'eap' ? 1 : positiveInt(options.steps, 5, 'steps', 10_000);
    const memoryBudgetBytes = memoryBudget(options.memoryBudgetBytes);
    const started = performance.now();
    // The total is (row, step) pairs; the last report may still be queued.
    const raw = await this.runReporting(options, (progress, flag) =>
      this.handle.edgeScores(clean.ids, corrupted.ids, clean.rows, clean.seqLen, metric, { steps, memoryBudgetBytes }, progress, flag), () => clean.rows * steps);
    return { scores: raw.scores, graph, metricClean: raw.metricClean, metricCorrupted: raw.metricCorrupted, ms: performance.now() - started, microBatches: raw.microBatches, method: options.method, steps };
  }

  /**
   * One run of the circuit graph with every edge not `kept` ablated: it carries the writer's output on
   * the corrupted input, its mean over `corrupted`, or zero. With every edge kept it is the normal
   * forward. Per row: the metric, the top tokens and the answer's rank at the last position. Several
   * masks in `kept` run in one call (results mask-major).
   */
  async ablatedRun(options: AblatedRunOptions): Promise<AblatedRun> {
    if (options === null || typeof options !== 'object') throw new NeuropruneError('E_ARG', 'ablatedRun needs options {clean, kept, ablation, metric}');
    const graph = this.circuitGraph();
    const vocab = this.info.vocabSize;
    const clean = circuitRows(options.clean, vocab, 'clean');
    const size = graph.writers.length * graph.readers.length;
    if (!(options.kept instanceof Uint8Array)) throw new NeuropruneError('E_ARG', `kept must be a Uint8Array [writers x readers], got ${describeValue(options.kept)}`);
    if (options.kept.length === 0 || options.kept.length % size !== 0) {
      throw new NeuropruneError('E_SHAPE', `kept holds ${options.kept.length} entries; the graph has writers x readers = ${graph.writers.length} x ${graph.readers.length} = ${size} (or several masks of that size back to back)`);
    }
    const { ablation } = options;
    if (ablation !== 'corrupted' && ablation !== 'mean' && ablation !== 'zero') throw new NeuropruneError('E_ARG', `ablation must be corrupted, mean or zero, got ${describeValue(ablation)}`);
    let corrupted: { ids: Int32Array; rows: number; seqLen: number } | undefined;
    if (ablation !== 'zero') {
      if (options.corrupted === undefined) throw new NeuropruneError('E_ARG', `the ${ablation} ablation needs corrupted rows`);
      corrupted = circuitRows(options.corrupted, vocab, 'corrupted');
      if (corrupted.seqLen !== clean.seqLen) throw new NeuropruneError('E_ARG', `corrupted rows have ${corrupted.seqLen} tokens but clean rows ${clean.seqLen}: they must have the same length`);
      if (ablation === 'corrupted' && corrupted.rows !== clean.rows) throw new NeuropruneError('E_ARG', `corrupted holds ${corrupted.rows} rows for ${clean.rows} clean rows (one per clean row)`);
    }
    const metric = circuitMetric(options.metric, clean.rows, vocab);
    const topK = positiveInt(options.topK, 10, 'topK', vocab);
    const memoryBudgetBytes = memoryBudget(options.memoryBudgetBytes);
    const { signal } = options;
    return this.run(
      () => withAbortFlag(signal, (flag) => this.handle.ablatedRun(clean.ids, clean.rows, clean.seqLen, options.kept, ablation, corrupted?.ids ?? null, corrupted?.rows ?? 0, metric, { topK, memoryBudgetBytes }, flag)),
      signal,
    );
  }

  /** Per row and writer, the answer's rank when the writer's output at the last position is read through the final norm and the unembedding. */
  async logitLens(options: LogitLensOptions): Promise<LogitLens> {
    if (options === null || typeof options !== 'object') throw new NeuropruneError('E_ARG', 'logitLens needs options {clean, answer}');
    const graph = this.circuitGraph();
    const clean = circuitRows(options.clean, this.info.vocabSize, 'clean');
    const { answer } = circuitMetric({ kind: 'logprob', answer: options.answer }, clean.rows, this.info.vocabSize);
    const budget = memoryBudget(options.memoryBudgetBytes);
    const ranks = await this.run(() => this.handle.logitLens(clean.ids, clean.rows, clean.seqLen, answer, budget));
    return { ranks, graph };
  }

  /** Milliseconds of one plain forward and backward of the metric on `clean` (benchmarks: the reference for an EAP-IG step). */
  async forwardBackwardMs(options: { clean: number[][]; metric: EdgeScoreOptions['metric'] }): Promise<number> {
    const clean = circuitRows(options.clean, this.info.vocabSize, 'clean');
    const metric = circuitMetric(options.metric, clean.rows, this.info.vocabSize);
    return this.run(() => this.handle.forwardBackwardMs(clean.ids, clean.rows, clean.seqLen, metric));
  }

  /**
   * Zeroes, in place, each neuron's column of the down projection (GPT-2: the row of c_proj); with
   * `full`, its up/gate rows and biases too. Reversible bit for bit with `restore`.
   */
  async prune(neurons: NeuronRef[] | NeuronSet, options: { full?: boolean } = {}): Promise<Edit> {
    // Zeroing neuron i silences it at hook_pre and hook_post alike, so a set of either MLP site prunes
    // the same unit; a set of a site this model lacks (a Mamba set on a transformer) is E_SITE.
    if (!Array.isArray(neurons) && neurons && typeof neurons === 'object' && 'site' in neurons) {
      if (neurons.site === 'hook_resid_post') checkSetSite(neurons, 'mlp.hook_post', 'prune');
      this.nativeSite(neurons.site as NeuronSite);
    }
    const [layers, indices, count] = neuronArrays(neurons);
    const id = await this.run(() => this.handle.prune(layers, indices, options.full ?? false));
    return { id, kind: 'prune', neurons: count };
  }

  /**
   * Multiplies each neuron's activation by `factor` (0 suppresses, 2 enhances) in every later call, at
   * `site` (default: a neuron set's own site, else info.neuronSite) and at every position (default) or
   * only the last position of each call (`positions: 'last'`, as knowledge-neuron and QRNCA
   * experiments do). A neuron set used at another site than its own is E_SITE.
   */
  async scale(neurons: NeuronRef[] | NeuronSet, factor: number, options: { site?: NeuronSite; positions?: 'all' | 'last' } = {}): Promise<Edit> {
    if (!Number.isFinite(factor)) throw new NeuropruneError('E_ARG', `factor must be a finite number, got ${describeValue(factor)}`);
    const set = Array.isArray(neurons) ? undefined : neurons;
    const wanted = options.site ?? set?.site ?? this.info.neuronSite;
    if (set) checkSetSite(set, set.site === 'hook_resid_post' ? options.site ?? this.info.neuronSite : wanted, 'scale');
    const site = this.nativeSite(wanted as NeuronSite);
    const positions = options.positions ?? 'all';
    if (positions !== 'all' && positions !== 'last') throw new NeuropruneError('E_ARG', `positions must be all or last, got ${describeValue(positions)}`);
    const [layers, indices, count] = neuronArrays(neurons);
    const id = await this.run(() => this.handle.scale(layers, indices, factor, site, positions === 'last'));
    return { id, kind: 'scale', neurons: count };
  }

  /**
   * Zeroes units for good (no edit is recorded, `restore` does not bring them back, training may
   * follow): MLP neurons lose their down-projection column, and with `inputs` (default true) their
   * up/gate rows and biases too, so they read 0 at mlp.hook_pre and mlp.hook_post (such a neuron has
   * zero gradient everywhere and cannot regrow: prune without inputs to let it). Residual dimensions
   * d lose column d of the embeddings and row d of every projection writing into the residual stream
   * (attention output, MLP down, their biases), so hook_resid_post[d] is 0 at every layer.
   */
  async pruneUnits(kind: UnitKind, units: Array<{ layer: number; index: number }>, options: { inputs?: boolean } = {}): Promise<void> {
    if (kind !== 'mlp' && kind !== 'resid') throw new NeuropruneError('E_ARG', `unit kind must be mlp or resid, got ${describeValue(kind)}`);
    const [layers, indices] = neuronArrays(units);
    await this.run(() => this.handle.pruneUnits(kind, layers, indices, options.inputs ?? true));
  }

  /** Each unit's output-weight L2 norm (MLP: its down-projection column; residual: every slice of the dimension). */
  async unitNorms(kind: UnitKind, units: Array<{ layer: number; index: number }>): Promise<Float64Array> {
    if (kind !== 'mlp' && kind !== 'resid') throw new NeuropruneError('E_ARG', `unit kind must be mlp or resid, got ${describeValue(kind)}`);
    const [layers, indices] = neuronArrays(units);
    return this.run(() => this.handle.unitNorms(kind, layers, indices));
  }

  /** The native name of a site this model has ('post' | 'pre'); E_SITE for one it lacks. */
  private nativeSite(site: NeuronSite | undefined): 'post' | 'pre' {
    const wanted = site ?? this.info.neuronSite;
    if (!this.info.neuronSites.includes(wanted)) {
      throw new NeuropruneError('E_SITE', `${this.info.id} (${this.info.modelType}) has no site ${describeValue(wanted)}; its neuron sites are ${this.info.neuronSites.join(', ')}`);
    }
    return wanted === 'mlp.hook_pre' ? 'pre' : 'post';
  }

  /** Undoes one edit, or every edit when none is given; weights come back bit for bit. */
  async restore(edit?: Edit): Promise<void> {
    await this.run(() => (edit ? this.handle.removeEdit(edit.id) : this.handle.removeAllEdits()));
  }

  /** A digest of every weight: equal digests mean bit-identical weights. */
  weightsDigest(): Promise<string> {
    return this.run(() => this.handle.digest());
  }

  /**
   * Writes the current weights (edits included; activation scales are not weights and are not saved)
   * as a complete HF folder: config.json, tokenizer files, safetensors, sharded when the source was.
   * The folder appears whole or not at all.
   */
  async save(dir: string, options: { force?: boolean; signal?: AbortSignal } = {}): Promise<string> {
    const out = path.resolve(dir);
    const existing = fs.existsSync(out) ? fs.readdirSync(out) : undefined;
    if (existing?.length && !options.force) throw new NeuropruneError('E_ARG', `${out} exists and is not empty (pass force to replace it)`);
    const tmp = stagingDir(out);
    try {
      fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ ...this.info.config, torch_dtype: this.info.dtype }, null, 2) + '\n');
      if (this.info.dir) {
        for (const f of SIDE_FILES) {
          const from = path.join(this.info.dir, f);
          if (!fs.existsSync(from)) continue;
          checkModelFile(this.info.dir, from, 'E_CHECKPOINT');  // never copy a file from outside the source folder
          fs.copyFileSync(from, path.join(tmp, f));
        }
      } else {
        fs.writeFileSync(path.join(tmp, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
        fs.writeFileSync(path.join(tmp, 'tokenizer_config.json'), JSON.stringify(byteLevelTokenizerConfig(), null, 2) + '\n');
      }
      await this.run(() => this.handle.save(tmp));
      throwIfAborted(options.signal, `save ${out}`);  // the weights cannot stop half-written: they are dropped instead
      if (existing) fs.rmSync(out, { recursive: true, force: true });
      fs.renameSync(tmp, out);
    } catch (error) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw error;
    }
    return out;
  }

  /**
   * Trains the weights in place on next-token cross-entropy (AdamW, gradient clipping, warm-up then
   * cosine decay; the step itself runs in the native core). Edits must be restored first.
   */
  async train(options: TrainOptions): Promise<TrainResult> {
    const o = trainDefaults(options);
    const rows = options.samples.map((s) => (typeof s === 'string' ? this.tokenizer.encode(s) : s).slice(0, o.maxLength));
    if (rows.some((r) => r.length < 2)) throw new NeuropruneError('E_ARG', 'every training sample needs at least two tokens');
    const started = performance.now();
    const curve: TrainPoint[] = [];
    let tokens = 0;
    const from = options.fromStep ?? 0;
    const until = options.untilStep ?? o.steps;
    if (!Number.isInteger(from) || !Number.isInteger(until) || from < 0 || until < from || until > o.steps) {
      throw new NeuropruneError('E_ARG', `fromStep and untilStep must be integers with 0 <= fromStep <= untilStep <= steps, got ${from} and ${until}`);
    }
    const frozen = options.frozen && options.frozen.units.length > 0
      ? { frozenKind: options.frozen.kind, frozenLayers: Int32Array.from(options.frozen.units, (u) => u.layer), frozenIndices: Int32Array.from(options.frozen.units, (u) => u.index) }
      : {};
    const state: { load?: string; save?: string; weights?: boolean } = typeof options.optimizerState === 'string' ? { load: options.optimizerState, save: options.optimizerState } : options.optimizerState ?? {};
    const loadState = state.load && fs.existsSync(state.load) ? path.resolve(state.load) : undefined;
    await this.run(() => this.handle.startTraining({ steps: o.steps, warmup: o.warmup, lr: o.lr, minLrRatio: o.minLrRatio, weightDecay: o.weightDecay, gradClip: o.gradClip, startStep: from, ...frozen, ...(loadState ? { loadState } : {}) }));
    try {
      const order = batchOrder(rows.length, o.batchSize, o.seed);
      for (let skip = 0; skip < from; skip++) order.next();
      for (let step = from + 1; step <= until; step++) {
        if (options.signal?.aborted) throw new NeuropruneError('E_ABORTED', `training cancelled at step ${step - 1} of ${o.steps}`);
        const batch = this.encode((order.next().value as number[]).map((i) => rows[i]));
        const t0 = performance.now();
        const r = await this.run(() => this.handle.trainStep(batch.ids, batch.mask, batch.batch, batch.seqLen));
        tokens += r.tokens;
        const point = { step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, tokensPerSecond: Math.round(r.tokens / ((performance.now() - t0) / 1000)) };
        curve.push(point);
        options.onStep?.(point);
        if (options.checkpoint && (step % options.checkpoint.every === 0 || step === until)) await this.save(options.checkpoint.dir, { force: true });
      }
      if (state.save) {
        const file = path.resolve(state.save);
        await this.run(() => this.handle.saveTrainingState(file, state.weights === true));
      }
    } finally {
      await this.run(() => this.handle.endTraining());
    }
    return { curve, steps: until - from, tokens, ms: performance.now() - started, options: { ...o, samples: rows.length } };
  }

  /** Frees the weights once pending calls finish; later calls fail with E_DISPOSED. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.queue = this.queue.finally(() => this.handle.dispose());
  }

  private toRows(input: ModelInput): number[][] {
    if (typeof input === 'string') return [this.tokenizer.encode(input)];
    if (!Array.isArray(input)) {
      throw new NeuropruneError('E_ARG', `input must be text, an array of texts, token ids or rows of token ids; got ${input === null ? 'null' : typeof input}`);
    }
    if (input.length === 0) return [];
    if (typeof input[0] === 'string') {
      return (input as unknown[]).map((t, i) => {
        if (typeof t !== 'string') throw new NeuropruneError('E_ARG', `input[${i}] must be text like input[0], got ${t === null ? 'null' : typeof t}`);
        return this.tokenizer.encode(t);
      });
    }
    if (typeof input[0] === 'number') return [input as number[]];
    return (input as unknown[]).map((row, i) => {
      if (!Array.isArray(row)) throw new NeuropruneError('E_ARG', `input[${i}] must be an array of token ids, got ${row === null ? 'null' : typeof row}`);
      return row as number[];
    });
  }

  /** One native call at a time per model, in call order. */
  private run<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.disposed) return Promise.reject(new NeuropruneError('E_DISPOSED', `model ${this.info.id} has been disposed`));
    const next = this.queue.then(() => {
      if (signal?.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled before it started');
      return nativeCall(call);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }
}

/**
 * Runs `call` with a shared cell the native side polls between steps, set to 1 when the signal
 * aborts; the listener goes when the call settles.
 */
async function withAbortFlag<T>(signal: AbortSignal | undefined, call: (flag: Int32Array | undefined) => Promise<T>): Promise<T> {
  if (!signal) return call(undefined);
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const raise = () => Atomics.store(flag, 0, 1);
  if (signal.aborted) raise();
  signal.addEventListener('abort', raise, { once: true });
  try {
    return await call(flag);
  } finally {
    signal.removeEventListener('abort', raise);
  }
}

/** Logits [batch, seqLen, vocab] of every position of a batch, with at(row, position). */
function logitsView(data: Float32Array, tokens: TokenBatch, vocab: number): Logits {
  const positions = tokens.seqLen;
  return { data, shape: [tokens.batch, positions, vocab], tokens, at: (row, position) => data.subarray((row * positions + position) * vocab, (row * positions + position + 1) * vocab) };
}

function neuronArrays(neurons: NeuronRef[] | NeuronSet): [Int32Array, Int32Array, number] {
  const list = Array.isArray(neurons) ? neurons : (neurons as NeuronSet | null)?.neurons;
  if (!Array.isArray(list)) throw new NeuropruneError('E_ARG', 'neurons must be an array of {layer, index} or a neuron set');
  list.forEach((n, i) => {
    if (n === null || typeof n !== 'object') throw new NeuropruneError('E_ARG', `neurons[${i}] must be {layer, index}`);
    if (!Number.isInteger(n.layer) || !Number.isInteger(n.index) || Math.abs(n.layer) > 2 ** 31 || Math.abs(n.index) > 2 ** 31) {
      throw new NeuropruneError('E_RANGE', `neurons[${i}] = ${JSON.stringify(n)}: layer and index must be integers`);
    }
  });
  return [Int32Array.from(list, (n) => n.layer), Int32Array.from(list, (n) => n.index), list.length];
}
