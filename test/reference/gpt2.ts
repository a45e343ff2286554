/**
 * GPT-2 written out in plain TypeScript loops, from the HF modeling file's math, for one unpadded
 * sequence: an independent oracle for the LibTorch model.
 */
type W = (name: string) => Float32Array;

function layerNorm(x: Float32Array, g: Float32Array, b: Float32Array, eps: number): Float32Array {
  const n = g.length;
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = (x[r * n + i] - mean) * inv * g[i] + b[i];
  }
  return out;
}

/** x [T, nIn] @ w [nIn, nOut] + b (HF Conv1D layout). */
function conv1d(x: Float32Array, w: Float32Array, b: Float32Array, nIn: number): Float32Array {
  const nOut = b.length;
  const T = x.length / nIn;
  const out = new Float32Array(T * nOut);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < nOut; o++) {
      let s = b[o];
      for (let i = 0; i < nIn; i++) s += x[t * nIn + i] * w[i * nOut + o];
      out[t * nOut + o] = s;
    }
  return out;
}

const geluNew = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

export function gpt2Logits(weight: W, cfg: { n_layer: number; n_embd: number; n_head: number; vocab_size: number; layer_norm_epsilon: number }, ids: number[]): Float32Array {
  const E = cfg.n_embd, H = cfg.n_head, D = E / H, T = ids.length, V = cfg.vocab_size, eps = cfg.layer_norm_epsilon;
  const wte = weight('transformer.wte.weight'), wpe = weight('transformer.wpe.weight');
  let x: Float32Array = new Float32Array(T * E);
  ids.forEach((id, t) => { for (let i = 0; i < E; i++) x[t * E + i] = wte[id * E + i] + wpe[t * E + i]; });
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `transformer.h.${l}.`;
    const a = layerNorm(x, weight(p + 'ln_1.weight'), weight(p + 'ln_1.bias'), eps);
    const qkv = conv1d(a, weight(p + 'attn.c_attn.weight'), weight(p + 'attn.c_attn.bias'), E);
    const z = new Float32Array(T * E);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {  // causal: keys up to the query
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[i * 3 * E + h * D + d] * qkv[j * 3 * E + E + h * D + d];
          scores.push(s / Math.sqrt(D));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const sum = e.reduce((u, v) => u + v, 0);
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += (e[j] / sum) * qkv[j * 3 * E + 2 * E + h * D + d];
          z[i * E + h * D + d] = s;
        }
      }
    const attn = conv1d(z, weight(p + 'attn.c_proj.weight'), weight(p + 'attn.c_proj.bias'), E);
    x = x.map((v, i) => v + attn[i]);
    const m = layerNorm(x, weight(p + 'ln_2.weight'), weight(p + 'ln_2.bias'), eps);
    const fcBias = weight(p + 'mlp.c_fc.bias');
    const post = conv1d(m, weight(p + 'mlp.c_fc.weight'), fcBias, E).map(geluNew);
    const mlp = conv1d(post, weight(p + 'mlp.c_proj.weight'), weight(p + 'mlp.c_proj.bias'), fcBias.length);
    x = x.map((v, i) => v + mlp[i]);
  }
  x = layerNorm(x, weight('transformer.ln_f.weight'), weight('transformer.ln_f.bias'), eps);
  const logits = new Float32Array(T * V);
  for (let t = 0; t < T; t++)
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let i = 0; i < E; i++) s += x[t * E + i] * wte[v * E + i];  // tied lm_head
      logits[t * V + v] = s;
    }
  return logits;
}
