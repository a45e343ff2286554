/**
 * A hand-built GPT-2 whose answer is carried by one attention head, and a relation file for it.
 *
 * Prompts are two bytes: a subject letter a..h and "?"; the answer is the capital letter (a -> A).
 * Every weight is zero except: layer norms (weight 1), the embeddings of a..h (e_0..e_7), "?" (e_16)
 * and A..H (3 e_8..3 e_15, which the tied unembedding reads), and head HEAD of layer 0, whose value
 * copies dims 0..7 and whose output writes value dim j to the residual dim 8 + j. Queries and keys are
 * zero, so the head attends evenly to both positions and carries the subject to the last one; nothing
 * else moves information between positions. The circuit is input -> a0.h{HEAD}<v> -> logits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint, readSafetensors, TextTokenizer, writeSafetensors } from '../lib';

export const HEAD = 1;
const HIDDEN = 32, HEADS = 4, D_HEAD = HIDDEN / HEADS;
export const SUBJECTS = 'abcdefgh'.split('');

export async function oneHeadModel(dir: string): Promise<string> {
  await initCheckpoint('gpt2', dir, { layers: 2, hidden: HIDDEN, heads: HEADS, seed: 5 });
  const tokenizer = await TextTokenizer.fromDir(dir);
  const id = (ch: string) => tokenizer.encode(ch, { addSpecialTokens: false })[0];
  const file = path.join(dir, 'model.safetensors');
  const st = await readSafetensors(file);
  const arrays = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(st.tensors)) {
    if (t.dtype !== 'F32') continue;
    const a = new Float32Array(t.data.length / 4);
    if (/ln_\w+\.weight$/.test(name)) a.fill(1);
    arrays.set(name, a);
  }
  const wte = arrays.get('transformer.wte.weight')!;
  const row = (tok: number) => wte.subarray(tok * HIDDEN, (tok + 1) * HIDDEN);
  SUBJECTS.forEach((s, i) => {
    row(id(s))[i] = 1;
    row(id(s.toUpperCase()))[8 + i] = 3;
  });
  row(id('?'))[16] = 1;
  const qkv = arrays.get('transformer.h.0.attn.c_attn.weight')!; // Conv1D [hidden, 3 hidden]: q | k | v
  const proj = arrays.get('transformer.h.0.attn.c_proj.weight')!; // Conv1D [hidden, hidden]
  for (let j = 0; j < D_HEAD; j++) {
    qkv[j * 3 * HIDDEN + 2 * HIDDEN + HEAD * D_HEAD + j] = 1;
    proj[(HEAD * D_HEAD + j) * HIDDEN + 8 + j] = 2;
  }
  await writeSafetensors(
    file,
    Object.entries(st.tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: arrays.has(name) ? Buffer.from(arrays.get(name)!.buffer) : t.data })),
    { format: 'pt' },
  );
  return dir;
}

/** An LRE relation file: "{}?" with the letters a..h as subjects and A..H as objects. */
export function oneHeadRelation(dir: string): string {
  const file = path.join(dir, 'letter_capital.json');
  fs.writeFileSync(file, JSON.stringify({
    name: 'letter capital',
    prompt_templates: ['{}?'],
    prompt_templates_zs: ['{}?'],
    samples: SUBJECTS.map((s) => ({ subject: s, object: s.toUpperCase() })),
  }));
  return file;
}
