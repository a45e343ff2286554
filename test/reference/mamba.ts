/** Mamba from the HF modeling file's slow path (MambaMixer.slow_forward), in plain loops. */
import { add, matmul, norm, silu, Weight } from './ops';

const softplus = (x: number) => (x > 20 ? x : Math.log1p(Math.exp(x)));

export function mambaLogits(weight: Weight, cfg: Record<string, any>, ids: number[], has: (name: string) => boolean): Float32Array {
  const E = cfg.hidden_size, N = cfg.state_size, K = cfg.conv_kernel, T = ids.length, V = cfg.vocab_size;
  const Di = cfg.expand * E, eps = cfg.layer_norm_epsilon;
  const R = cfg.time_step_rank === 'auto' ? Math.ceil(E / 16) : cfg.time_step_rank;
  const bias = (name: string) => (has(name) ? weight(name) : undefined);
  const emb = weight('backbone.embeddings.weight');
  let x: Float32Array = new Float32Array(T * E);
  ids.forEach((id, t) => x.set(emb.subarray(id * E, (id + 1) * E), t * E));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `backbone.layers.${l}.mixer.`;
    const h = norm(x, weight(`backbone.layers.${l}.norm.weight`), undefined, eps);
    const xz = matmul(h, weight(p + 'in_proj.weight'), E, 2 * Di, bias(p + 'in_proj.bias')); // [T, 2 Di]: x then z
    // Causal depthwise conv: u[t][c] = act(b[c] + sum_k w[c][k] x[t - (K-1) + k][c]), zeros before t = 0.
    const cw = weight(p + 'conv1d.weight'), cb = bias(p + 'conv1d.bias');
    const u = new Float32Array(T * Di);
    for (let t = 0; t < T; t++)
      for (let c = 0; c < Di; c++) {
        let s = cb ? cb[c] : 0;
        for (let k = 0; k < K; k++) {
          const src = t - (K - 1) + k;
          if (src >= 0) s += cw[c * K + k] * xz[src * 2 * Di + c];
        }
        u[t * Di + c] = silu(s);
      }
    const dbc = matmul(u, weight(p + 'x_proj.weight'), Di, R + 2 * N); // [T, R + 2N]: dt, B, C
    const dtW = weight(p + 'dt_proj.weight'), dtB = weight(p + 'dt_proj.bias');
    const A = weight(p + 'A_log').map((v) => -Math.exp(v));
    const D = weight(p + 'D');
    // h_t = exp(dt A) h_{t-1} + dt B_t u_t;  y_t = C_t . h_t + D u_t;  post = y * silu(z)
    const state = new Float64Array(Di * N);
    const post = new Float32Array(T * Di);
    for (let t = 0; t < T; t++) {
      const row = dbc.subarray(t * (R + 2 * N), (t + 1) * (R + 2 * N));
      for (let c = 0; c < Di; c++) {
        let d = dtB[c];
        for (let r = 0; r < R; r++) d += dtW[c * R + r] * row[r];
        const dt = softplus(d);
        const uc = u[t * Di + c];
        let y = 0;
        for (let n = 0; n < N; n++) {
          const i = c * N + n;
          state[i] = Math.exp(dt * A[i]) * state[i] + dt * row[R + n] * uc;
          y += row[R + N + n] * state[i];
        }
        post[t * Di + c] = (y + D[c] * uc) * silu(xz[t * 2 * Di + Di + c]);
      }
    }
    x = add(x, matmul(post, weight(p + 'out_proj.weight'), Di, E, bias(p + 'out_proj.bias')));
  }
  x = norm(x, weight('backbone.norm_f.weight'), undefined, eps);
  return matmul(x, has('lm_head.weight') ? weight('lm_head.weight') : emb, E, V);
}
