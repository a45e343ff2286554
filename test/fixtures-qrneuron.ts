/**
 * A hand-built GPT-2 with planted query neurons, and a qrneuron-format data file for it.
 *
 * Four domains; every prompt of domain k ends in its marker character and has the gold letter k
 * (A..D). Last layer, neuron PLANTED[k]: hook_pre = 3 * ln_2(x)[k] - 6 reads marker dimension k of the
 * last token (about +10 after its marker, negative otherwise) and writes 4 * e_{4+k}, which the tied
 * unembedding maps to letter k: it raises the gold letter of its own domain only. Neuron COMMON
 * fires for every prompt (bias 3) and writes along e_8, which raises all four letters: it helps every
 * query and is what the common-neuron filter must remove.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initCheckpoint, readSafetensors, TextTokenizer, writeSafetensors } from '../lib';

export const DOMAINS = ['alpha', 'beta', 'gamma', 'delta'];
export const MARKERS = ['#', '%', '&', '@'];
export const LETTERS = ['A', 'B', 'C', 'D'];
export const LAYER = 1;
export const PLANTED = [7, 19, 33, 45];
export const COMMON = 60;
export const QUERIES_PER_DOMAIN = 3;

const HIDDEN = 32, MLP = 128;
export const PLANT_OUT = Number(process.env.PLANT_OUT ?? 0.1), COMMON_OUT = Number(process.env.COMMON_OUT ?? 0.15);

export async function plantedModel(dir: string): Promise<string> {
  await initCheckpoint('gpt2', dir, { layers: 2, hidden: HIDDEN, heads: 4, mlp: MLP, seed: 3 });
  const tokenizer = await TextTokenizer.fromDir(dir);
  const id = (ch: string) => tokenizer.encode(ch, { addSpecialTokens: false })[0];
  const file = path.join(dir, 'model.safetensors');
  const st = await readSafetensors(file);
  const f32 = (name: string) => {
    const t = st.tensors[name];
    return { t, a: new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)) };
  };
  const wte = f32('transformer.wte.weight');  // [vocab, hidden]
  const fc = f32(`transformer.h.${LAYER}.mlp.c_fc.weight`);  // Conv1D [hidden, mlp]
  const fcb = f32(`transformer.h.${LAYER}.mlp.c_fc.bias`);  // [mlp]
  const proj = f32(`transformer.h.${LAYER}.mlp.c_proj.weight`);  // Conv1D [mlp, hidden]
  const row = (tok: number) => wte.a.subarray(tok * HIDDEN, (tok + 1) * HIDDEN);
  MARKERS.forEach((m, k) => {
    row(id(m)).fill(0);
    row(id(m))[k] = 1;
  });
  LETTERS.forEach((l, k) => {
    row(id(l))[4 + k] = 1;
    row(id(l))[8] = 1;
  });
  PLANTED.forEach((j, k) => {
    for (let h = 0; h < HIDDEN; h++) fc.a[h * MLP + j] = h === k ? 3 : 0;
    fcb.a[j] = -6;
    for (let h = 0; h < HIDDEN; h++) proj.a[j * HIDDEN + h] = h === 4 + k ? PLANT_OUT : 0;
  });
  for (let h = 0; h < HIDDEN; h++) fc.a[h * MLP + COMMON] = 0;
  fcb.a[COMMON] = 3;
  for (let h = 0; h < HIDDEN; h++) proj.a[COMMON * HIDDEN + h] = h === 8 ? COMMON_OUT : 0;
  const out = Object.entries(st.tensors).map(([name, t]) => {
    const changed = [wte, fc, fcb, proj].find((x) => x.t === t);
    return { name, dtype: t.dtype, shape: t.shape, data: changed ? Buffer.from(changed.a.buffer) : t.data };
  });
  await writeSafetensors(file, out, { format: 'pt' });
  return dir;
}

/** The data file: per domain QUERIES_PER_DOMAIN queries of three templates, all ending in the marker. */
export function plantedData(file: string): string {
  const data: Record<string, unknown> = {};
  DOMAINS.forEach((domain, k) => {
    for (let q = 0; q < QUERIES_PER_DOMAIN; q++) {
      const question = `${domain} question ${q}: which is it?\n A. one\n B. two\n C. three\n D. four\n`;
      data[`${domain}-${q}`] = {
        sentences: [`Answer this. ${question}Response${MARKERS[k]}`, `Below is a question. ${question}Your answer${MARKERS[k]}`, `Q: ${question}A${MARKERS[k]}`],
        obj_label: [LETTERS[k], LETTERS[k], LETTERS[k]],
        relation_name: domain,
      };
    }
  });
  fs.writeFileSync(file, JSON.stringify(data, null, 1));
  return file;
}
