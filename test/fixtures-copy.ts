/**
 * A one-layer GPT-2 with planted copying neurons, built by hand: attention spreads evenly over the
 * context and writes which digits it holds (the in-context labels of vowel-count prompts) into dims
 * 10..19; MLP neuron PLANTED + d fires when digit d is in the context and writes dim d, the logit
 * direction of digit d. So each planted neuron pushes toward copying an example label, and only they
 * reach the digit logits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors } from '../lib';
import { byteLevelTokenizerConfig, byteLevelTokenizerJson } from '../lib/tokenizer';
import { Rng } from '../lib/tasks/random';

export const PLANTED = 20; // neurons PLANTED..PLANTED+9 copy digits 0..9
const E = 32, V = 257, I = 64, POS = 1024;
const DIGIT = 48; // '0'

export const ANTI = PLANTED + 10; // with antiCopy, neurons ANTI..ANTI+9 push digits 0..9 down when present

/**
 * Options: `prior` (digits) adds a constant pull toward those digits' logits through the final
 * norm's bias, weaker than the copying neurons, so the model still copies. With one prior digit,
 * pruning the copying neurons leaves a model that answers that digit to every prompt (pruning that
 * only shifts the answer prior). With `antiCopy`, neurons ANTI + d push digit d down when it is in
 * the context; with the prior on every answer digit, pruning the copying neurons then leaves a model
 * that answers the digit missing from the examples, which in a balanced vowel-count prompt is
 * usually right (pruning that really helps).
 */
export async function plantedCopyModel(dir: string, options: { prior?: number[]; priorBias?: number; antiCopy?: number } = {}): Promise<string> {
  const rng = new Rng(123);
  const normal = (std: number) => std * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  const wte = new Float32Array(V * E);
  for (let t = 0; t < V; t++) {
    if (t >= DIGIT && t < DIGIT + 10) wte[t * E + (t - DIGIT)] = 4; // digit d: 4 e_d
    else for (let i = 20; i < E; i++) wte[t * E + i] = normal(0.5); // the rest live in dims 20..31
  }
  const cAttn = new Float32Array(E * 3 * E); // q = k = 0: uniform attention; v = identity on dims 0..9
  for (let i = 0; i < 10; i++) cAttn[i * 3 * E + 2 * E + i] = 1;
  const attnProj = new Float32Array(E * E);
  for (let i = 0; i < 10; i++) attnProj[i * E + 10 + i] = 50; // "digit i is in the context" lands in dim 10 + i
  const fc = new Float32Array(E * I), fcBias = new Float32Array(I), proj = new Float32Array(I * E);
  for (let i = 0; i < fc.length; i++) fc[i] = normal(0.02);
  for (let i = 0; i < proj.length; i++) proj[i] = normal(0.02);
  for (let d = 0; d < 10; d++) {
    const n = PLANTED + d;
    for (let i = 0; i < E; i++) fc[i * I + n] = 0;
    fc[(10 + d) * I + n] = 4; // reads "digit d is in the context"
    fcBias[n] = -2;
    for (let i = 0; i < E; i++) proj[n * E + i] = 0;
    proj[n * E + d] = 3; // writes toward digit d's logit
    if (options.antiCopy) {
      const m = ANTI + d;
      for (let i = 0; i < E; i++) (fc[i * I + m] = 0), (proj[m * E + i] = 0);
      fc[(10 + d) * I + m] = 4;
      fcBias[m] = -2;
      proj[m * E + d] = -options.antiCopy; // writes away from digit d's logit
    }
  }
  const ones = new Float32Array(E).fill(1), zeros = (n: number) => new Float32Array(n);
  const lnfBias = zeros(E);
  for (const d of options.prior ?? []) lnfBias[d] = options.priorBias ?? 1;
  const f32 = (name: string, shape: number[], a: Float32Array) => ({ name, dtype: 'F32', shape, data: Buffer.from(a.buffer) });
  fs.mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'model.safetensors'), [
    f32('transformer.wte.weight', [V, E], wte),
    f32('transformer.wpe.weight', [POS, E], zeros(POS * E)),
    f32('transformer.h.0.ln_1.weight', [E], ones),
    f32('transformer.h.0.ln_1.bias', [E], zeros(E)),
    f32('transformer.h.0.attn.c_attn.weight', [E, 3 * E], cAttn),
    f32('transformer.h.0.attn.c_attn.bias', [3 * E], zeros(3 * E)),
    f32('transformer.h.0.attn.c_proj.weight', [E, E], attnProj),
    f32('transformer.h.0.attn.c_proj.bias', [E], zeros(E)),
    f32('transformer.h.0.ln_2.weight', [E], ones),
    f32('transformer.h.0.ln_2.bias', [E], zeros(E)),
    f32('transformer.h.0.mlp.c_fc.weight', [E, I], fc),
    f32('transformer.h.0.mlp.c_fc.bias', [I], fcBias),
    f32('transformer.h.0.mlp.c_proj.weight', [I, E], proj),
    f32('transformer.h.0.mlp.c_proj.bias', [E], zeros(E)),
    f32('transformer.ln_f.weight', [E], ones),
    f32('transformer.ln_f.bias', [E], lnfBias),
  ]);
  const config = { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_layer: 1, n_embd: E, n_head: 4, n_inner: I, n_positions: POS, vocab_size: V, eos_token_id: 256, bos_token_id: 256 };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(byteLevelTokenizerConfig()));
  return dir;
}
