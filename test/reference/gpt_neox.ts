/** GPT-NeoX / Pythia from the HF modeling file's math, in plain loops. */
import { add, attendHead, gelu, heads, invFreq, matmul, norm, rope, Weight } from './ops';

export function neoxLogits(weight: Weight, cfg: Record<string, any>, ids: number[]): Float32Array {
  const E = cfg.hidden_size, H = cfg.num_attention_heads, D = E / H, I = cfg.intermediate_size;
  const T = ids.length, V = cfg.vocab_size, eps = cfg.layer_norm_eps;
  const R = Math.floor(D * cfg.rotary_pct);
  const freqs = invFreq(R, cfg.rotary_emb_base);
  const emb = weight('gpt_neox.embed_in.weight');
  let x: Float32Array = new Float32Array(T * E);
  ids.forEach((id, t) => x.set(emb.subarray(id * E, (id + 1) * E), t * E));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `gpt_neox.layers.${l}.`;
    const a = norm(x, weight(p + 'input_layernorm.weight'), weight(p + 'input_layernorm.bias'), eps);
    const qkv = matmul(a, weight(p + 'attention.query_key_value.weight'), E, 3 * E, weight(p + 'attention.query_key_value.bias'));
    const z = new Float32Array(T * E);
    for (let h = 0; h < H; h++) {
      // fused layout: head h owns columns [h*3D, (h+1)*3D) = [q | k | v]
      const q = heads(qkv, 3 * E, h, 3 * D).map((r, t) => rope(r.slice(0, D), t, freqs, R));
      const k = heads(qkv, 3 * E, h, 3 * D).map((r, t) => rope(r.slice(D, 2 * D), t, freqs, R));
      const v = heads(qkv, 3 * E, h, 3 * D).map((r) => r.slice(2 * D));
      attendHead(q, k, v).forEach((o, t) => z.set(o, t * E + h * D));
    }
    const attn = matmul(z, weight(p + 'attention.dense.weight'), E, E, weight(p + 'attention.dense.bias'));
    const mlpIn = cfg.use_parallel_residual ? x : add(x, attn);
    const m = norm(mlpIn, weight(p + 'post_attention_layernorm.weight'), weight(p + 'post_attention_layernorm.bias'), eps);
    const post = matmul(m, weight(p + 'mlp.dense_h_to_4h.weight'), E, I, weight(p + 'mlp.dense_h_to_4h.bias')).map(gelu);
    const mlp = matmul(post, weight(p + 'mlp.dense_4h_to_h.weight'), I, E, weight(p + 'mlp.dense_4h_to_h.bias'));
    x = add(add(x, attn), mlp);
  }
  x = norm(x, weight('gpt_neox.final_layer_norm.weight'), weight('gpt_neox.final_layer_norm.bias'), eps);
  return matmul(x, weight('embed_out.weight'), E, V);
}
