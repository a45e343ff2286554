/** Llama / Mistral / Qwen2 from the HF modeling files' math, in plain loops. */
import { add, attendHead, heads, invFreq, matmul, norm, rope, silu, Weight } from './ops';

export function llamaLogits(weight: Weight, cfg: Record<string, any>, ids: number[], has: (name: string) => boolean): Float32Array {
  const E = cfg.hidden_size, H = cfg.num_attention_heads, KV = cfg.num_key_value_heads, D = E / H;
  const I = cfg.intermediate_size, T = ids.length, V = cfg.vocab_size, eps = cfg.rms_norm_eps;
  const window = cfg.model_type === 'mistral' ? cfg.sliding_window ?? 0 : 0;
  const freqs = scaledInvFreq(invFreq(D, cfg.rope_theta), cfg.rope_scaling);
  const bias = (name: string) => (has(name) ? weight(name) : undefined);
  const emb = weight('model.embed_tokens.weight');
  let x: Float32Array = new Float32Array(T * E);
  ids.forEach((id, t) => x.set(emb.subarray(id * E, (id + 1) * E), t * E));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const a = norm(x, weight(p + 'input_layernorm.weight'), undefined, eps);
    const proj = (n: string, out: number) => matmul(a, weight(`${p}self_attn.${n}.weight`), E, out, bias(`${p}self_attn.${n}.bias`));
    const q = proj('q_proj', H * D), k = proj('k_proj', KV * D), v = proj('v_proj', KV * D);
    const z = new Float32Array(T * E);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV)); // the key/value head this query head shares
      const qh = heads(q, H * D, h, D).map((r, t) => rope(r, t, freqs, D));
      const kh = heads(k, KV * D, g, D).map((r, t) => rope(r, t, freqs, D));
      attendHead(qh, kh, heads(v, KV * D, g, D), window).forEach((o, t) => z.set(o, t * E + h * D));
    }
    x = add(x, matmul(z, weight(p + 'self_attn.o_proj.weight'), E, E, bias(p + 'self_attn.o_proj.bias')));
    const m = norm(x, weight(p + 'post_attention_layernorm.weight'), undefined, eps);
    const gate = matmul(m, weight(p + 'mlp.gate_proj.weight'), E, I);
    const up = matmul(m, weight(p + 'mlp.up_proj.weight'), E, I);
    x = add(x, matmul(gate.map((g, i) => silu(g) * up[i]), weight(p + 'mlp.down_proj.weight'), I, E));
  }
  x = norm(x, weight('model.norm.weight'), undefined, eps);
  return matmul(x, has('lm_head.weight') ? weight('lm_head.weight') : emb, E, V);
}

/** HF's rope_scaling: linear divides every frequency; llama3 divides the low ones and blends the middle. */
function scaledInvFreq(freqs: number[], scaling?: Record<string, number | string>): number[] {
  if (!scaling) return freqs;
  const factor = scaling.factor as number;
  if ((scaling.rope_type ?? scaling.type) === 'linear') return freqs.map((f) => f / factor);
  const low = scaling.low_freq_factor as number, high = scaling.high_freq_factor as number;
  const old = scaling.original_max_position_embeddings as number;
  return freqs.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < old / high) return f;
    if (wavelen > old / low) return f / factor;
    const smooth = (old / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}
