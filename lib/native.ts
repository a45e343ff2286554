/** The compiled addon (build/Release/neuroprune.node) and the shape of what it exports. */
import fs from 'node:fs';
import path from 'node:path';
import type { NativeCircuitMetric } from './circuit';
import { NeuropruneError } from './errors';

export interface NativeModelInfo {
  architecture: string;
  modelType: string;
  nLayers: number;
  dModel: number;
  nHeads: number;
  dMlp: number;
  neuronSite: string;
  hasPreSite: boolean;
  vocabSize: number;
  maxPositions: number;
  nParams: number;
  dtype: string;
  device: string;
  /** With a device map: the device of each layer. */
  layerDevices?: string[];
  config: string;
}

/** New tokens per row, flattened [batch, steps]. */
export type NativeGeneration = { tokens: Int32Array; steps: number; cancelled: boolean };

export interface NativeModel {
  info(): NativeModelInfo;
  logits(ids: Int32Array, mask: Uint8Array, batch: number, seqLen: number, lastOnly: boolean, chunkSize: number): Promise<Float32Array>;
  generate(
    ids: Int32Array,
    mask: Uint8Array,
    batch: number,
    seqLen: number,
    maxNewTokens: number,
    eos: number,
    cancel?: Int32Array,
  ): Promise<NativeGeneration>;
  activations(ids: Int32Array, mask: Uint8Array, batch: number, seqLen: number, layers: Int32Array, site?: 'post' | 'pre', withLogits?: boolean, nextToken?: boolean): Promise<Float32Array[]>;
  /** blocks.{l}.hook_resid_post at each row's last position, [batch, dModel] per layer. */
  residuals(ids: Int32Array, mask: Uint8Array, batch: number, seqLen: number, layers: Int32Array, allPositions?: boolean, withLogits?: boolean, nextToken?: boolean): Promise<Float32Array[]>;
  /** generate() with blocks.{layer}.hook_resid_post at the prompt's last position replaced by each row's vector. */
  generatePatched(
    ids: Int32Array,
    mask: Uint8Array,
    batch: number,
    seqLen: number,
    maxNewTokens: number,
    eos: number,
    layer: number,
    vectors: Float32Array,
    cancel?: Int32Array,
  ): Promise<NativeGeneration>;
  attribute(
    ids: Int32Array,
    mask: Uint8Array,
    batch: number,
    seqLen: number,
    prompts: Array<{ target: number[]; distractor?: number; labels?: number[] }>,
    options: { method: string; objective: string; rule: string; positions: string; steps: number; layers: number[]; memoryBudgetMB: number; site?: 'post' | 'pre' | 'resid' },
    onProgress?: (done: number, total: number) => void,
    cancel?: Int32Array,
  ): Promise<{ attributions: Float32Array; fFull: Float32Array; fBaseline: Float32Array; rows: number; microBatches: number }>;
  prune(layers: Int32Array, indices: Int32Array, full: boolean): Promise<number>;
  scale(layers: Int32Array, indices: Int32Array, factor: number, site?: 'post' | 'pre', lastOnly?: boolean): Promise<number>;
  removeEdit(handle: number): Promise<void>;
  removeAllEdits(): Promise<void>;
  save(dir: string): Promise<void>;
  pruneUnits(kind: 'mlp' | 'resid', layers: Int32Array, indices: Int32Array, inputs: boolean): Promise<void>;
  unitNorms(kind: 'mlp' | 'resid', layers: Int32Array, indices: Int32Array): Promise<Float64Array>;
  startTraining(options: {
    steps: number; warmup: number; lr: number; minLrRatio: number; weightDecay: number; gradClip: number; beta1?: number; beta2?: number;
    startStep?: number; frozenKind?: 'mlp' | 'resid'; frozenLayers?: Int32Array; frozenIndices?: Int32Array; loadState?: string;
  }): Promise<void>;
  saveTrainingState(file: string, weights?: boolean): Promise<void>;
  trainStep(ids: Int32Array, mask: Uint8Array, batch: number, seqLen: number): Promise<{ loss: number; gradNorm: number; lr: number; tokens: number; step: number }>;
  endTraining(): Promise<void>;
  digest(): Promise<string>;
  /** Circuits: native/binding/circuit.cpp. */
  circuitGraph(): { writers: string[]; readers: string[]; edges: Uint8Array };
  edgeScores(
    clean: Int32Array,
    corrupted: Int32Array,
    rows: number,
    seqLen: number,
    metric: NativeCircuitMetric,
    options: { steps: number; memoryBudgetBytes: number },
    onProgress?: (done: number, total: number) => void,
    cancel?: Int32Array,
  ): Promise<{ scores: Float32Array; metricClean: number; metricCorrupted: number; microBatches: number }>;
  ablatedRun(
    clean: Int32Array,
    rows: number,
    seqLen: number,
    kept: Uint8Array,
    ablation: 'corrupted' | 'mean' | 'zero',
    corrupted: Int32Array | null,
    corruptedRows: number,
    metric: NativeCircuitMetric,
    options: { topK: number; memoryBudgetBytes: number },
    cancel?: Int32Array,
  ): Promise<{ metric: Float32Array; topTokens: Int32Array; answerRank: Int32Array }>;
  logitLens(clean: Int32Array, rows: number, seqLen: number, answer: Int32Array, memoryBudgetBytes: number): Promise<Int32Array>;
  forwardBackwardMs(clean: Int32Array, rows: number, seqLen: number, metric: NativeCircuitMetric): Promise<number>;
  dispose(): void;
}

export interface RawTensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

export interface NativeRuntime {
  /** LibTorch version of the headers this addon was built with (the library loaded is the same build). */
  torchVersion: string;
  /** A CUDA device is usable now. */
  cuda: boolean;
  /** Visible CUDA devices (0 without CUDA). */
  gpus: number;
  /** LibTorch was built with CUDA; cudaVersion is the toolkit it was built against. */
  cudaBuild: boolean;
  cudaVersion: string | null;
  /** The folder of the libtorch_cpu the process loaded. */
  torchLibraryDir: string;
  /** The folder the addon was linked against ('' when the build did not record it). */
  torchBuiltLibraryDir: string;
  cxxStandard: number;
  threads: number;
  modelTypes: string[];
}

export interface NativeAddon {
  loadModel(dir: string, device: string, dtype: string, deviceMap?: string): Promise<NativeModel>;
  randomModel(configJson: string, device: string, dtype: string, seed: number, deviceMap?: string): Promise<NativeModel>;
  writeRandomCheckpoint(configJson: string, file: string, dtype: string, seed: number): Promise<void>;
  readSafetensors(file: string): Promise<{ metadata: Record<string, string>; tensors: Record<string, RawTensor> }>;
  writeSafetensors(
    file: string,
    tensors: Array<{ name: string } & RawTensor>,
    metadata?: Record<string, string>,
  ): Promise<void>;
  setThreads(n: number): void;
  /** Throws `code` unless `path` is a regular file inside the model folder `dir`; returns its size. */
  checkModelFile(dir: string, path: string, code: string): number;
  runtime(): NativeRuntime;
}

/** The package root: the nearest folder above this file that holds package.json. */
export function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new NeuropruneError('E_NATIVE', `no package.json above ${__dirname}`);
    dir = up;
  }
  return dir;
}

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const file = process.env.NEUROPRUNE_ADDON ?? path.join(packageRoot(), 'build', 'Release', 'neuroprune.node');
  if (!fs.existsSync(file)) {
    throw new NeuropruneError('E_NATIVE', `native addon not built: ${file} is missing (run \`npm run build\`)`);
  }
  try {
    addon = require(file) as NativeAddon;
  } catch (error) {
    throw new NeuropruneError('E_NATIVE', `cannot load ${file}: ${(error as Error).message}`, { cause: error });
  }
  return addon;
}
