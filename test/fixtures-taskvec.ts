/**
 * A two-layer Llama built by hand in which the task of to_upper lives in the residual stream at the
 * last token after layer 0, and the query is read only later:
 * - layer 0: one head attends evenly over the context (q = k = 0) and writes the share of uppercase
 *   letters it holds into dim TASK. Demonstrations `example:a->A` put uppercase letters there; a
 *   zero-shot query `example:c->` has none.
 * - layer 1: one head attends from each token to the token two before it, by rotary position alone
 *   (so a patched residual cannot move it): at `->`'s `>` that is the query letter, whose identity it
 *   copies into dims QL. SwiGLU neurons i = silu(3 TASK - ONE) * QL_i write dim OU_i.
 * - lm_head: lowercase letter i reads QL_i, uppercase letter i reads OU_i.
 * So without the task the model answers the query letter itself (wrong for to_upper); with TASK set
 * at the last token after layer 0 (k-shot ICL, or a task vector patched at layer 0) it answers the
 * uppercase letter; a vector patched after layer 1 already holds the dummy query's answer (wrong).
 * The byte-level tokenizer maps ASCII characters to their byte values.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors } from '../lib';
import { byteLevelTokenizerConfig, byteLevelTokenizerJson } from '../lib/tokenizer';

const E = 128, V = 257, I = 32, HD = 128;
const L = 0, U = 26, UF = 52, ONE = 53, TASK = 54, PADL = 55, OTHER = 56, QL = 57, OU = 83, PADO = 110;
const THETA = 10000;
const PAIRS = [0, 8, 16, 24]; // rotary pairs with frequencies 1, 0.32, 0.1, 0.032: one sharp peak at distance 2

export async function taskVectorModel(dir: string): Promise<string> {
  const emb = new Float32Array(V * E);
  for (let t = 0; t < V; t++) {
    const row = t * E;
    emb[row + ONE] = 1;
    if (t >= 97 && t < 123) (emb[row + L + t - 97] = 1), (emb[row + PADL] = 1);
    else if (t >= 65 && t < 91) (emb[row + U + t - 65] = 1), (emb[row + UF] = 1);
    else (emb[row + OTHER] = 1), (emb[row + PADO] = 1);
  }
  const zeros = (n: number) => new Float32Array(n);
  const ones = new Float32Array(E).fill(1);
  // Linear weights are [out, in].
  const set = (w: Float32Array, inDim: number, out: number, inp: number, v: number) => (w[out * inDim + inp] = v);

  // Layer 0: uniform attention carrying the uppercase share into TASK.
  const v0 = zeros(HD * E), o0 = zeros(E * HD);
  set(v0, E, 0, UF, 1);
  set(o0, HD, TASK, 0, 2);
  // Layer 1: attend to distance 2 by rotary position; copy the letter there into QL.
  const q1 = zeros(HD * E), k1 = zeros(HD * E), v1 = zeros(HD * E), o1 = zeros(E * HD);
  for (const j of PAIRS) {
    const theta = Math.pow(THETA, (-2 * j) / HD);
    set(q1, E, j, ONE, 4 * Math.cos(2 * theta));
    set(q1, E, j + HD / 2, ONE, -4 * Math.sin(2 * theta));
    set(k1, E, j, ONE, 4);
  }
  for (let i = 0; i < 26; i++) {
    set(v1, E, i, L + i, 1);
    set(o1, HD, QL + i, i, 0.3);
  }
  const gate = zeros(I * E), up = zeros(I * E), down = zeros(E * I);
  for (let i = 0; i < 26; i++) {
    set(gate, E, i, TASK, 3);
    set(gate, E, i, ONE, -1);
    set(up, E, i, QL + i, 1);
    set(down, I, OU + i, i, 1);
  }
  const head = zeros(V * E);
  for (let i = 0; i < 26; i++) {
    set(head, E, 97 + i, QL + i, 1);
    set(head, E, 65 + i, OU + i, 1);
  }
  const f32 = (name: string, shape: number[], a: Float32Array) => ({ name, dtype: 'F32', shape, data: Buffer.from(a.buffer) });
  const layer = (l: number, w: { q: Float32Array; k: Float32Array; v: Float32Array; o: Float32Array; gate: Float32Array; up: Float32Array; down: Float32Array }) => [
    f32(`model.layers.${l}.input_layernorm.weight`, [E], ones),
    f32(`model.layers.${l}.self_attn.q_proj.weight`, [HD, E], w.q),
    f32(`model.layers.${l}.self_attn.k_proj.weight`, [HD, E], w.k),
    f32(`model.layers.${l}.self_attn.v_proj.weight`, [HD, E], w.v),
    f32(`model.layers.${l}.self_attn.o_proj.weight`, [E, HD], w.o),
    f32(`model.layers.${l}.post_attention_layernorm.weight`, [E], ones),
    f32(`model.layers.${l}.mlp.gate_proj.weight`, [I, E], w.gate),
    f32(`model.layers.${l}.mlp.up_proj.weight`, [I, E], w.up),
    f32(`model.layers.${l}.mlp.down_proj.weight`, [E, I], w.down),
  ];
  fs.mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'model.safetensors'), [
    f32('model.embed_tokens.weight', [V, E], emb),
    ...layer(0, { q: zeros(HD * E), k: zeros(HD * E), v: v0, o: o0, gate: zeros(I * E), up: zeros(I * E), down: zeros(E * I) }),
    ...layer(1, { q: q1, k: k1, v: v1, o: o1, gate, up, down }),
    f32('model.norm.weight', [E], ones),
    f32('lm_head.weight', [V, E], head),
  ]);
  const config = {
    model_type: 'llama', architectures: ['LlamaForCausalLM'], num_hidden_layers: 2, hidden_size: E, num_attention_heads: 1,
    num_key_value_heads: 1, intermediate_size: I, vocab_size: V, max_position_embeddings: 1024, rms_norm_eps: 1e-6,
    rope_theta: THETA, hidden_act: 'silu', tie_word_embeddings: false, eos_token_id: 256, bos_token_id: 256,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(byteLevelTokenizerConfig()));
  return dir;
}
