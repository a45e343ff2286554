/** Plain-loop tensor ops for the reference models: row-major Float32Arrays, one sequence, no batch. */
export type Weight = (name: string) => Float32Array;

/** LayerNorm (bias given) or RMSNorm (bias undefined) over rows of length gain.length. */
export function norm(x: Float32Array, gain: Float32Array, bias: Float32Array | undefined, eps: number): Float32Array {
  const n = gain.length;
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    const row = x.subarray(r * n, (r + 1) * n);
    const mean = bias ? row.reduce((s, v) => s + v, 0) / n : 0;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = (row[i] - mean) * inv * gain[i] + (bias ? bias[i] : 0);
  }
  return out;
}

/** x [T, nIn] times a weight; `transposed` = nn.Linear layout [out, in], else Conv1D [in, out]. */
export function matmul(x: Float32Array, w: Float32Array, nIn: number, nOut: number, bias?: Float32Array, transposed = true): Float32Array {
  const T = x.length / nIn;
  const out = new Float32Array(T * nOut);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < nOut; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < nIn; i++) s += x[t * nIn + i] * (transposed ? w[o * nIn + i] : w[i * nOut + o]);
      out[t * nOut + o] = s;
    }
  return out;
}

export const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const silu = (x: number) => x / (1 + Math.exp(-x));

/** erf to double precision (Abramowitz-Stegun 7.1.26 is too coarse; use the series / continued fraction). */
function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 3) {
    let sum = z, term = z;
    for (let n = 1; n < 60; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (z + f);
  return Math.sign(x) * (1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f));
}

/** HF rotary: the first `dim` features of a head vector rotated pairwise (i, i + dim/2) by pos * invFreq[i]. */
export function rope(v: Float32Array, pos: number, invFreq: number[], dim: number): Float32Array {
  const out = Float32Array.from(v);
  const half = dim / 2;
  for (let i = 0; i < half; i++) {
    const angle = pos * invFreq[i];
    const c = Math.cos(angle), s = Math.sin(angle);
    out[i] = v[i] * c - v[i + half] * s;
    out[i + half] = v[i + half] * c + v[i] * s;
  }
  return out;
}

export function invFreq(dim: number, theta: number): number[] {
  return Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim));
}

/**
 * Causal attention for one head: q[t], k[t], v[t] vectors; query i sees keys j <= i (and, with a
 * window, i - j < window).
 */
export function attendHead(q: Float32Array[], k: Float32Array[], v: Float32Array[], window = 0): Float32Array[] {
  const D = q[0].length;
  return q.map((qi, i) => {
    const js = [...Array(i + 1).keys()].filter((j) => !window || i - j < window);
    const scores = js.map((j) => qi.reduce((s, x, d) => s + x * k[j][d], 0) / Math.sqrt(D));
    const m = Math.max(...scores);
    const e = scores.map((s) => Math.exp(s - m));
    const sum = e.reduce((a, b) => a + b, 0);
    const out = new Float32Array(D);
    js.forEach((j, n) => { for (let d = 0; d < D; d++) out[d] += (e[n] / sum) * v[j][d]; });
    return out;
  });
}

/** Slices head h's vector [offset + h*D, ...) from each row of x [T, width]. */
export function heads(x: Float32Array, width: number, h: number, D: number, offset = 0): Float32Array[] {
  const T = x.length / width;
  return Array.from({ length: T }, (_, t) => x.slice(t * width + offset + h * D, t * width + offset + (h + 1) * D));
}

export const add = (a: Float32Array, b: Float32Array) => a.map((v, i) => v + b[i]);
