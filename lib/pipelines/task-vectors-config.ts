/** The task-vector pipeline's configuration: JSON or YAML, validated, every default written out. */
import { z } from 'zod';
import { parseConfig } from './config';
import { GENERATED_SUITE } from './copybias-config';

export const taskVectorsConfigSchema = z
  .object({
    seed: z.number().int().nonnegative().default(0),
    /** ICL tasks: names as evaluate takes them, hendel18 (needs dataDir), vowel_count, or FILE.jsonl. */
    tasks: z.array(z.string().min(1)).min(1).default(GENERATED_SUITE),
    /** Folder with the Hendel task files (knowledge/, linguistic/, translation/). */
    dataDir: z.string().nullable().default(null),
    /** Demonstrations per prompt (Hendel et al. use 5; 4 keeps prompts of small models short). */
    shots: z.number().int().positive().default(4),
    /**
     * Dummy queries per task vector: 1 is Hendel et al.'s vector; more average the residuals of the
     * same demonstrations with several dummy queries, which dilutes what the vector says about any
     * one dummy query (small models write the query into the last token early).
     */
    dummies: z.number().int().positive().default(1),
    /** Test prompts per task. */
    n: z.number().int().positive().default(50),
    /** Dev prompts per task (separately seeded) on which the best layer is chosen. */
    devN: z.number().int().positive().default(20),
    /** Layers to patch; null = every layer. */
    layers: z.array(z.number().int().nonnegative()).min(1).nullable().default(null),
    /** Prompts per forward pass. */
    batchSize: z.number().int().positive().default(32),
  })
  .strict();

export type TaskVectorsConfig = z.infer<typeof taskVectorsConfigSchema>;
export type TaskVectorsConfigInput = z.input<typeof taskVectorsConfigSchema>;

/** Validates a config object; E_CONFIG names the field. */
export function parseTaskVectorsConfig(input: unknown, source = 'config'): TaskVectorsConfig {
  return parseConfig(taskVectorsConfigSchema, input, source);
}
