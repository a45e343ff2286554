/** GPT-2 from the HF modeling file's math, in plain loops: an independent oracle for the native model. */
import { add, attendHead, geluTanh, heads, matmul, norm, Weight } from './ops';

export function gpt2Logits(weight: Weight, cfg: Record<string, number>, ids: number[]): Float32Array {
  const E = cfg.n_embd, H = cfg.n_head, D = E / H, T = ids.length, V = cfg.vocab_size, eps = cfg.layer_norm_epsilon;
  const wte = weight('transformer.wte.weight'), wpe = weight('transformer.wpe.weight');
  let x: Float32Array = new Float32Array(T * E);
  ids.forEach((id, t) => { for (let i = 0; i < E; i++) x[t * E + i] = wte[id * E + i] + wpe[t * E + i]; });
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `transformer.h.${l}.`;
    const a = norm(x, weight(p + 'ln_1.weight'), weight(p + 'ln_1.bias'), eps);
    const qkv = matmul(a, weight(p + 'attn.c_attn.weight'), E, 3 * E, weight(p + 'attn.c_attn.bias'), false);
    const z = new Float32Array(T * E);
    for (let h = 0; h < H; h++) {
      const out = attendHead(heads(qkv, 3 * E, h, D), heads(qkv, 3 * E, h, D, E), heads(qkv, 3 * E, h, D, 2 * E));
      out.forEach((o, t) => z.set(o, t * E + h * D));
    }
    x = add(x, matmul(z, weight(p + 'attn.c_proj.weight'), E, E, weight(p + 'attn.c_proj.bias'), false));
    const m = norm(x, weight(p + 'ln_2.weight'), weight(p + 'ln_2.bias'), eps);
    const I = weight(p + 'mlp.c_fc.bias').length;
    const post = matmul(m, weight(p + 'mlp.c_fc.weight'), E, I, weight(p + 'mlp.c_fc.bias'), false).map(geluTanh);
    x = add(x, matmul(post, weight(p + 'mlp.c_proj.weight'), I, E, weight(p + 'mlp.c_proj.bias'), false));
  }
  x = norm(x, weight('transformer.ln_f.weight'), weight('transformer.ln_f.bias'), eps);
  return matmul(x, wte, E, V); // tied lm_head
}
