/** The copy-bias pipeline's configuration: JSON or YAML, validated, every default written out. */
import { z } from 'zod';
import { POSITIONS, RULES } from '../attribution';
import { parseConfig } from './config';


/** The six generated tasks of Hendel et al.'s 18: no data folder needed. */
export const GENERATED_SUITE = ['next_letter', 'prev_letter', 'list_first', 'list_last', 'to_upper', 'to_lower'];

export const copyBiasConfigSchema = z
  .object({
    seed: z.number().int().nonnegative().default(0),
    proxy: z
      .object({
        /** Examples per proxy prompt. */
        shots: z.number().int().positive().default(4),
        attributionPrompts: z.number().int().positive().default(64),
        devPrompts: z.number().int().positive().default(64),
        /** Queries take each answer in turn, so that answering one digit always cannot win the dev search. */
        balanced: z.boolean().default(true),
      })
      .strict()
      .default({}),
    attribution: z
      .object({
        steps: z.number().int().positive().default(20),
        rule: z.enum(RULES as [string, ...string[]]).default('riemann_right'),
        positions: z.enum(POSITIONS as [string, ...string[]]).default('last'),
        /** Layers to score; null = all. */
        layers: z.array(z.number().int().nonnegative()).nullable().default(null),
        memoryBudgetMB: z.number().positive().default(2048),
        /** Prompts per chunk: one native call each; a sharded run deals chunks to its shards. */
        chunkSize: z.number().int().positive().default(16),
      })
      .strict()
      .default({}),
    selection: z
      .object({
        /** Fractions of all scored neurons to prune, searched on the dev prompts. */
        fractions: z.array(z.number().gt(0).lte(1)).min(1).default([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02]),
        /** Optional [first, last] layer ranges to search too; null = all layers only. */
        layerRanges: z.array(z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()])).nullable().default(null),
        /** Also zero the up/gate rows, not only the down projection. */
        full: z.boolean().default(false),
      })
      .strict()
      .default({}),
    control: z
      .object({
        /** Random-neuron draws (same per-layer counts as the chosen set, seeded), each evaluated like the pruned model; 0 = none. */
        draws: z.number().int().nonnegative().default(5),
        /** Bootstrap resamples for the paired 95% intervals of every before/after change. */
        resamples: z.number().int().min(100).default(2000),
      })
      .strict()
      .default({}),
    taskVectors: z
      .object({
        /** Also measure task-vector ICL (Hendel et al. 2023) per layer before and after pruning, on the evaluation tasks without the proxy. */
        enabled: z.boolean().default(false),
        shots: z.number().int().positive().default(4),
        n: z.number().int().positive().default(50),
        devN: z.number().int().positive().default(20),
        /** Dummy queries averaged per vector (1 = Hendel et al.). */
        dummies: z.number().int().positive().default(1),
        /** Layers to patch; null = every layer. */
        layers: z.array(z.number().int().nonnegative()).min(1).nullable().default(null),
      })
      .strict()
      .default({}),
    evaluation: z
      .object({
        /** ICL tasks before and after: names, hendel18 (needs dataDir), vowel_count, or FILE.jsonl. */
        tasks: z.array(z.string().min(1)).min(1).default(GENERATED_SUITE),
        shots: z.array(z.number().int().nonnegative()).min(1).default([1, 2, 4]),
        n: z.number().int().positive().default(50),
        dataDir: z.string().nullable().default(null),
        batchSize: z.number().int().positive().default(32),
        /** Whole multi-token answers (exact match of the generated answer) instead of Hendel's one-token filter. */
        allAnswers: z.boolean().default(false),
        /** For classification files (FILE.jsonl with {"text", "label"}): label -> answer word. */
        labelWords: z.record(z.string().min(1)).default({}),
      })
      .strict()
      .default({}),
  })
  .strict();

export type CopyBiasConfig = z.infer<typeof copyBiasConfigSchema>;
export type CopyBiasConfigInput = z.input<typeof copyBiasConfigSchema>;

/** Validates a config object; E_CONFIG names the field. */
export function parseCopyBiasConfig(input: unknown, source = 'config'): CopyBiasConfig {
  return parseConfig(copyBiasConfigSchema, input, source);
}

