/** Architectures `neuroprune init` and `random:` know, with the real models' sizes. */
import { NeuropruneError } from './errors';

export type HfConfig = Record<string, unknown> & { model_type: string };

export interface SizeOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  vocab?: number;
  /** MLP neurons per layer; 4 x hidden when absent. */
  mlp?: number;
  positions?: number;
}

/** An HF GPT-2 config.json; the defaults are the small sizes `neuroprune init gpt2` writes. */
export function gpt2Config(size: SizeOptions = {}): HfConfig {
  const hidden = size.hidden ?? 64;
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_layer: size.layers ?? 2,
    n_embd: hidden,
    n_head: size.heads ?? 4,
    n_inner: size.mlp ?? null,
    n_positions: size.positions ?? 1024,
    n_ctx: size.positions ?? 1024,
    vocab_size: size.vocab ?? 257,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    bos_token_id: 256,
    eos_token_id: 256,
    tie_word_embeddings: true,
    resid_pdrop: 0.1,
    embd_pdrop: 0.1,
    attn_pdrop: 0.1,
    initializer_range: 0.02,
    scale_attn_weights: true,
    use_cache: true,
  };
}

/** Families `init` accepts with free sizes. */
const FAMILIES: Record<string, (size: SizeOptions) => HfConfig> = {
  gpt2: gpt2Config,
};

/** Named sizes of real models, for `random:NAME` and `init NAME`. */
const PRESETS: Record<string, { family: string; size: SizeOptions }> = {
  'gpt2-tiny': { family: 'gpt2', size: { layers: 2, hidden: 64, heads: 4, vocab: 257 } },
  'gpt2-small': { family: 'gpt2', size: { layers: 12, hidden: 768, heads: 12, vocab: 50257 } },
  'gpt2-medium': { family: 'gpt2', size: { layers: 24, hidden: 1024, heads: 16, vocab: 50257 } },
  'gpt2-large': { family: 'gpt2', size: { layers: 36, hidden: 1280, heads: 20, vocab: 50257 } },
  'gpt2-xl': { family: 'gpt2', size: { layers: 48, hidden: 1600, heads: 25, vocab: 50257 } },
};

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

export function familyNames(): string[] {
  return Object.keys(FAMILIES);
}

/**
 * The config for `name`: a preset (real sizes, e.g. gpt2-small) or a family (small defaults); sizes
 * the caller names override either.
 */
export function configFor(name: string, size: SizeOptions = {}): HfConfig {
  const preset = PRESETS[name];
  const family = FAMILIES[preset?.family ?? name];
  if (!family) {
    throw new NeuropruneError(
      'E_NOT_FOUND',
      `unknown architecture or preset "${name}" (families: ${familyNames().join(', ')}; presets: ${presetNames().join(', ')})`,
    );
  }
  const named = Object.fromEntries(Object.entries(size).filter(([, v]) => v !== undefined)) as SizeOptions;
  for (const [key, value] of Object.entries(named)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new NeuropruneError('E_ARG', `${key} must be a positive integer, got ${value}`);
    }
  }
  return family({ ...preset?.size, ...named });
}
