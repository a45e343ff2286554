/** The circuit pipeline's configuration: JSON or YAML or flags, validated with zod, every default written out. */
import { z } from 'zod';
import { parseConfig } from './config';

export const CIRCUIT_METHODS = ['eap-ig', 'eap', 'acdc'] as const;
export const CIRCUIT_METRICS = ['logprob', 'logit_diff', 'kl'] as const;
export const ABLATIONS = ['corrupted', 'mean', 'zero'] as const;

/** The faithfulness-vs-edges curve's circuit sizes (clipped to the graph, which is added whole). */
export const DEFAULT_CURVE = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export const circuitConfigSchema = z
  .object({
    /** Relation files: LRE ({prompt_templates_zs, samples}) or Hendel et al.'s knowledge files ({subject: object}). */
    relations: z.array(z.string().min(1)).min(1),
    /** One template ({} = subject) for every relation; null = each relation's zero-shot template. */
    template: z.string().includes('{}').nullable().default(null),
    /** eap-ig (Hanna et al. 2024), eap (Syed et al. 2023, one gradient at the clean input), acdc (Conmy et al. 2023). */
    method: z.enum(CIRCUIT_METHODS).default('eap-ig'),
    /** EAP-IG steps m between the corrupted and the clean input (Hanna et al. use 5). */
    steps: z.number().int().positive().max(10_000).default(5),
    /** The metric edges are scored on and faithfulness measures: log p(answer) (the paper's MatchNLL is its negative). */
    metric: z.enum(CIRCUIT_METRICS).default('logprob'),
    /** What an ablated edge carries; null = corrupted for eap/eap-ig, zero for acdc (the paper's setting). */
    ablation: z.enum(ABLATIONS).nullable().default(null),
    /** Edges in the circuit by |score| (before dead nodes are pruned); ignored when threshold is set. */
    topN: z.number().int().positive().default(200),
    /** Keep the edges with |score| >= threshold instead of the top n. */
    threshold: z.number().nonnegative().nullable().default(null),
    seed: z.number().int().nonnegative().default(0),
    /** Memory budget of one EAP/EAP-IG micro-batch, MiB. */
    memoryBudgetMB: z.number().positive().max(1 << 20).default(2048),
    /** Known-fact filter: the answer among the model's top k at the last position. */
    knownTopK: z.number().int().positive().default(10),
    /** At most this many paired facts per relation (seeded), both splits together; null = all. */
    perRelation: z.number().int().positive().nullable().default(null),
    /** Random circuits of the circuit's size, each a seeded draw from the graph's edges. */
    randomDraws: z.number().int().nonnegative().default(5),
    /** Hit@k of the answer token (Yao et al. report Hit@10). */
    hitK: z.number().int().positive().default(10),
    /** Circuit sizes of the faithfulness-vs-edges curve; null = 5, 10, 20, 50, ... up to the graph's size. */
    curve: z.array(z.number().int().positive()).min(1).nullable().default(null),
    /** Bootstrap resamples of the 95% intervals over facts. */
    resamples: z.number().int().positive().default(2000),
    /** Nodes listed with their logit lens in the report. */
    topNodes: z.number().int().positive().default(20),
    acdc: z
      .object({
        /** Thresholds run in turn (the paper's sweep); the circuit reported is the last one's. */
        taus: z.array(z.number().nonnegative()).min(1).default([0.02, 0.01, 0.005]),
        /** nll: -log p(answer), the paper's MatchNLL; kl: KL of the clean to the ablated output. */
        metric: z.enum(['nll', 'kl']).default('nll'),
        /** ACDC costs a forward pass per edge: refused on graphs with more edges than this. */
        maxEdges: z.number().int().positive().default(5000),
      })
      .strict()
      .default({}),
  })
  .strict();

export type CircuitConfig = z.infer<typeof circuitConfigSchema>;
export type CircuitConfigInput = z.input<typeof circuitConfigSchema>;

/** Validates a config object; E_CONFIG names the field. */
export function parseCircuitConfig(input: unknown, source = 'config'): CircuitConfig {
  return parseConfig(circuitConfigSchema, input, source);
}

/** The ablation a method uses when none is given. */
export function resolvedAblation(c: CircuitConfig): (typeof ABLATIONS)[number] {
  return c.ablation ?? (c.method === 'acdc' ? 'zero' : 'corrupted');
}
