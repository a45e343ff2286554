/** Neuron sets: which MLP neurons a method found, in a JSON file later pipelines read. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { NeuropruneError } from './errors';

/** A neuron of blocks.{layer}.<site>: mlp.hook_post, mlp.hook_pre, or Mamba's mixer.hook_post. */
export interface NeuronRef {
  layer: number;
  index: number;
  score?: number;
}

export const NEURON_SET_FORMAT = 'neuroprune.neurons/1';

/**
 * Neuron sites: the input of the MLP's down projection (hook_post), the up projection's output before
 * the activation (hook_pre: GPT-2 c_fc, NeoX dense_h_to_4h, Llama up_proj; QRNCA's site), or the input
 * of a Mamba mixer's out_proj. Neuron i is the same unit at hook_pre and hook_post.
 */
export const NEURON_SITES = ['mlp.hook_post', 'mlp.hook_pre', 'mixer.hook_post'] as const;
export type NeuronSite = (typeof NEURON_SITES)[number];

/**
 * Sites a unit-set file may name: the neuron sites, and hook_resid_post for residual-stream
 * dimensions (unit i of layer l is blocks.{l}.hook_resid_post[i]; relearn prunes them at every
 * layer at once). A residual set is not an MLP neuron set: prune and scale refuse it with E_SITE.
 */
export const UNIT_SET_SITES = [...NEURON_SITES, 'hook_resid_post'] as const;
export type UnitSetSite = (typeof UNIT_SET_SITES)[number];

/** The site a neuron set was found at must be the one it is used at: E_SITE names both. */
export function checkSetSite(set: NeuronSet, site: UnitSetSite, what = 'this call'): void {
  if (set.site === 'hook_resid_post' && site !== set.site) {
    throw new NeuropruneError('E_SITE', `the set holds residual-stream dimensions (hook_resid_post, model ${set.model}), not MLP neurons, but ${what} uses ${site}; residual dimensions are pruned with model.pruneUnits('resid', set.neurons)`);
  }
  if (set.site !== site) {
    throw new NeuropruneError('E_SITE', `the neuron set was found at ${set.site} (model ${set.model}) but ${what} uses ${site}; attribute again at ${site} or use that site`);
  }
}

const neuronSchema = z.object({
  layer: z.number().int().nonnegative(),
  index: z.number().int().nonnegative(),
  score: z.number().finite().optional(),
});

const neuronSetSchema = z.object({
  format: z.literal(NEURON_SET_FORMAT),
  /** The model the neurons were found in (its id or folder). */
  model: z.string(),
  /** The activation site, TransformerLens style without the layer: each neuron is blocks.{layer}.<site>. */
  site: z.enum(UNIT_SET_SITES),
  neurons: z.array(neuronSchema),
  /** How the set was made: method name and its options, free form. */
  method: z.record(z.unknown()).default({}),
  created: z.string().optional(),
});

export type NeuronSet = z.infer<typeof neuronSetSchema>;

export function neuronSet(model: string, neurons: NeuronRef[], method: Record<string, unknown> = {}, site: UnitSetSite = 'mlp.hook_post'): NeuronSet {
  return { format: NEURON_SET_FORMAT, model, site, neurons, method, created: new Date().toISOString() };
}

/** Reads and validates a neuron-set file; E_NEURON_FILE names the file and the bad field. */
export async function readNeuronSet(file: string): Promise<NeuronSet> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new NeuropruneError('E_NEURON_FILE', `${file}: cannot read (${(error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new NeuropruneError('E_NEURON_FILE', `${file}: not JSON (${(error as Error).message})`);
  }
  const parsed = neuronSetSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new NeuropruneError('E_NEURON_FILE', `${file}: ${where}: ${issue.message}`);
  }
  return parsed.data;
}

/** Writes a neuron set atomically (temporary file, then rename). */
export async function writeNeuronSet(file: string, set: NeuronSet): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, JSON.stringify(set, null, 2) + '\n');
  await fs.rename(tmp, file);
}
