/** Checks at the API boundary: what native code would otherwise truncate, wrap or read as 0. */
import { NeuropruneError } from './errors';

/** Integration steps accepted by attribute (each step is a row per prompt and layer). */
export const MAX_IG_STEPS = 10_000;
/** The largest memory budget accepted, in MiB (1 TiB). */
export const MAX_MEMORY_BUDGET_MB = 1 << 20;

/** A short, safe description of any value for a message (objects may have hostile toString). */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value);
  if (value === null || ['number', 'boolean', 'undefined', 'bigint'].includes(typeof value)) return String(value);
  return Array.isArray(value) ? `an array of ${value.length}` : `a ${typeof value}`;
}

/** Token ids must be integers in [0, vocab): 1.5, NaN or 2^32 + 1 would reach the core as 1, 0 or 1. */
export function checkTokenIds(ids: readonly unknown[], vocab: number, where: string): void {
  ids.forEach((id, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw new NeuropruneError('E_ARG', `${where}[${i}] = ${describeValue(id)}: a token id must be an integer`);
    }
    if (id < 0 || id >= vocab) throw new NeuropruneError('E_RANGE', `${where}[${i}] = ${id}: token id outside the vocabulary [0, ${vocab})`);
  });
}

/** Layer indices: integers in [0, nLayers), none twice. */
export function checkLayers(layers: unknown, nLayers: number, where = 'layers'): number[] {
  if (!Array.isArray(layers) || layers.length === 0) throw new NeuropruneError('E_ARG', `${where} must be a non-empty array of layer indices`);
  const seen = new Set<number>();
  layers.forEach((l, i) => {
    if (typeof l !== 'number' || !Number.isInteger(l)) throw new NeuropruneError('E_ARG', `${where}[${i}] = ${describeValue(l)}: a layer must be an integer`);
    if (l < 0 || l >= nLayers) throw new NeuropruneError('E_RANGE', `${where}[${i}] = ${l} is out of range [0, ${nLayers})`);
    if (seen.has(l)) throw new NeuropruneError('E_RANGE', `${where}[${i}] = ${l} is listed twice`);
    seen.add(l);
  });
  return layers as number[];
}
