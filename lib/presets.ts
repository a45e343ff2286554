/** Architectures `neuroprune init` and `random:` know, with the real models' sizes. */
import { NeuropruneError } from './errors';

export type HfConfig = Record<string, unknown> & { model_type: string };

export interface SizeOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  /** Key/value heads (grouped-query attention); Llama family only. */
  kvHeads?: number;
  vocab?: number;
  /** MLP neurons per layer. */
  mlp?: number;
  positions?: number;
  /** SSM state per unit; Mamba only. */
  state?: number;
}

/** Our random models use the byte-level tokenizer, whose end-of-text id is 256. */
const EOS = 256;

/** HF GPT-2 config.json; defaults are the small sizes `neuroprune init gpt2` writes. */
function gpt2(size: SizeOptions): HfConfig {
  const positions = size.positions ?? 1024;
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_layer: size.layers ?? 2,
    n_embd: size.hidden ?? 64,
    n_head: size.heads ?? 4,
    n_inner: size.mlp ?? null,
    n_positions: positions,
    n_ctx: positions,
    vocab_size: size.vocab ?? 257,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    bos_token_id: EOS,
    eos_token_id: EOS,
    tie_word_embeddings: true,
    initializer_range: 0.02,
    scale_attn_weights: true,
  };
}

/** HF Llama / Mistral / Qwen2 config.json. The small defaults use grouped-query attention. */
function llamaLike(modelType: 'llama' | 'mistral' | 'qwen2', architecture: string) {
  return (size: SizeOptions): HfConfig => {
    const hidden = size.hidden ?? 64;
    const config: HfConfig = {
      architectures: [architecture],
      model_type: modelType,
      num_hidden_layers: size.layers ?? 2,
      hidden_size: hidden,
      num_attention_heads: size.heads ?? 4,
      num_key_value_heads: size.kvHeads ?? size.heads ?? 2,
      intermediate_size: size.mlp ?? 2 * hidden,
      vocab_size: size.vocab ?? 257,
      max_position_embeddings: size.positions ?? 2048,
      hidden_act: 'silu',
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: false,
      bos_token_id: EOS,
      eos_token_id: EOS,
      initializer_range: 0.02,
    };
    if (modelType === 'mistral') config.sliding_window = 4; // tiny, so that short tests cross it
    if (modelType === 'qwen2') Object.assign(config, { tie_word_embeddings: true, use_sliding_window: false, sliding_window: null });
    return config;
  };
}

/** HF GPT-NeoX (Pythia) config.json: parallel residual, rotary on a quarter of each head. */
function gptNeox(size: SizeOptions): HfConfig {
  const hidden = size.hidden ?? 64;
  return {
    architectures: ['GPTNeoXForCausalLM'],
    model_type: 'gpt_neox',
    num_hidden_layers: size.layers ?? 2,
    hidden_size: hidden,
    num_attention_heads: size.heads ?? 4,
    intermediate_size: size.mlp ?? 4 * hidden,
    vocab_size: size.vocab ?? 257,
    max_position_embeddings: size.positions ?? 2048,
    rotary_pct: 0.25,
    rotary_emb_base: 10000,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-5,
    use_parallel_residual: true,
    tie_word_embeddings: false,
    bos_token_id: EOS,
    eos_token_id: EOS,
    initializer_range: 0.02,
  };
}

/**
 * HF Mamba config.json (MambaForCausalLM): d_inner = expand * hidden units per layer, state 16,
 * conv kernel 4, time_step_rank auto (ceil(hidden / 16)), tied embeddings. `mlp` sets d_inner.
 */
function mamba(size: SizeOptions): HfConfig {
  const hidden = size.hidden ?? 64;
  const inner = size.mlp ?? 2 * hidden;
  if (inner % hidden !== 0) {
    throw new NeuropruneError('E_ARG', `mamba: mlp (d_inner, ${inner}) must be a multiple of hidden (${hidden}): d_inner = expand * hidden`);
  }
  return {
    architectures: ['MambaForCausalLM'],
    model_type: 'mamba',
    num_hidden_layers: size.layers ?? 2,
    hidden_size: hidden,
    state_size: size.state ?? 16,
    expand: inner / hidden,
    conv_kernel: 4,
    time_step_rank: 'auto',
    use_bias: false,
    use_conv_bias: true,
    hidden_act: 'silu',
    layer_norm_epsilon: 1e-5,
    residual_in_fp32: true,
    vocab_size: size.vocab ?? 257,
    tie_word_embeddings: true,
    bos_token_id: EOS,
    eos_token_id: EOS,
    pad_token_id: EOS,
    initializer_range: 0.1,
  };
}

/** Families `init` accepts with free sizes. */
const FAMILIES: Record<string, (size: SizeOptions) => HfConfig> = {
  gpt2,
  llama: llamaLike('llama', 'LlamaForCausalLM'),
  mistral: llamaLike('mistral', 'MistralForCausalLM'),
  qwen2: llamaLike('qwen2', 'Qwen2ForCausalLM'),
  gpt_neox: gptNeox,
  pythia: gptNeox,
  mamba,
};

interface Preset {
  family: string;
  size: SizeOptions;
  /** Config fields of the real model beyond its sizes. */
  extra?: Record<string, unknown>;
}

const llama2 = { rms_norm_eps: 1e-5, max_position_embeddings: 4096 };
const pythia = (layers: number, hidden: number, heads: number): Preset => ({
  family: 'gpt_neox',
  size: { layers, hidden, heads, mlp: 4 * hidden, vocab: 50304 },
});

/** state-spaces/mamba-*-hf: vocab 50280, state 16, expand 2. */
const mambaPreset = (layers: number, hidden: number): Preset => ({ family: 'mamba', size: { layers, hidden, vocab: 50280 } });

/** Named sizes of real models, for `random:NAME` and `init NAME`. */
const PRESETS: Record<string, Preset> = {
  'gpt2-tiny': { family: 'gpt2', size: { layers: 2, hidden: 64, heads: 4, vocab: 257 } },
  'gpt2-small': { family: 'gpt2', size: { layers: 12, hidden: 768, heads: 12, vocab: 50257 } },
  'gpt2-medium': { family: 'gpt2', size: { layers: 24, hidden: 1024, heads: 16, vocab: 50257 } },
  'gpt2-large': { family: 'gpt2', size: { layers: 36, hidden: 1280, heads: 20, vocab: 50257 } },
  'gpt2-xl': { family: 'gpt2', size: { layers: 48, hidden: 1600, heads: 25, vocab: 50257 } },
  'llama-tiny': { family: 'llama', size: {} },
  'llama-7b': { family: 'llama', size: { layers: 32, hidden: 4096, heads: 32, kvHeads: 32, mlp: 11008, vocab: 32000 }, extra: llama2 },
  'llama-13b': { family: 'llama', size: { layers: 40, hidden: 5120, heads: 40, kvHeads: 40, mlp: 13824, vocab: 32000 }, extra: llama2 },
  'llama-3-8b': {
    family: 'llama',
    size: { layers: 32, hidden: 4096, heads: 32, kvHeads: 8, mlp: 14336, vocab: 128256 },
    extra: {
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      max_position_embeddings: 131072,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    },
  },
  'mistral-tiny': { family: 'mistral', size: {} },
  'mistral-7b': {
    family: 'mistral',
    size: { layers: 32, hidden: 4096, heads: 32, kvHeads: 8, mlp: 14336, vocab: 32000 },
    extra: { rms_norm_eps: 1e-5, sliding_window: 4096, max_position_embeddings: 32768 },
  },
  'qwen2-tiny': { family: 'qwen2', size: {} },
  'qwen2-0.5b': {
    family: 'qwen2',
    size: { layers: 24, hidden: 896, heads: 14, kvHeads: 2, mlp: 4864, vocab: 151936 },
    extra: { rope_theta: 1000000, max_position_embeddings: 32768 },
  },
  'pythia-tiny': { family: 'gpt_neox', size: {} },
  'pythia-70m': pythia(6, 512, 8),
  'pythia-160m': pythia(12, 768, 12),
  'pythia-410m': pythia(24, 1024, 16),
  'pythia-1b': pythia(16, 2048, 8),
  'pythia-1.4b': pythia(24, 2048, 16),
  'mamba-tiny': { family: 'mamba', size: {} },
  'mamba-130m': mambaPreset(24, 768),
  'mamba-370m': mambaPreset(48, 1024),
  'mamba-790m': mambaPreset(48, 1536),
  'mamba-1.4b': mambaPreset(48, 2048),
  'mamba-2.8b': mambaPreset(64, 2560),
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
  return { ...family({ ...preset?.size, ...named }), ...preset?.extra };
}
