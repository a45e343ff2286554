/** Pipeline configs: JSON or YAML files, flag overrides merged in, validated with zod (E_CONFIG names the field). */
import fs from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { NeuropruneError } from '../errors';

/** Validates a config object against a pipeline's schema, filling in every default. */
export function parseConfig<S extends z.ZodTypeAny>(schema: S, input: unknown, source = 'config'): z.infer<S> {
  const parsed = schema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NeuropruneError('E_CONFIG', `${source}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Reads a .json, .yaml or .yml config file as a raw object (validate it with parseCopyBiasConfig). */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new NeuropruneError('E_CONFIG', `${file}: cannot read (${(error as Error).message})`);
  }
  const yaml = /\.ya?ml$/i.test(file);
  let value: unknown;
  try {
    value = yaml ? YAML.parse(text) : JSON.parse(text);
  } catch (error) {
    throw new NeuropruneError('E_CONFIG', `${file}: not ${yaml ? 'YAML' : 'JSON'} (${(error as Error).message})`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new NeuropruneError('E_CONFIG', `${file}: must hold an object`);
  return value as Record<string, unknown>;
}

/** Deep-merges `overrides` (e.g. from CLI flags) into a raw config before validation. */
export function mergeConfig(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
      ? mergeConfig(b as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}
