/**
 * The files of a query-neurons run, written into a folder (the CLI's staging folder, renamed into
 * place afterwards): results.json, neurons/<domain>.json (neuroprune.neurons/1, with their site),
 * attributions.safetensors, report.html.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeJson } from '../attribution';
import { writeSafetensors } from '../checkpoint';
import { environment } from '../environment';
import type { ModelInfo } from '../model';
import { neuronSet, writeNeuronSet } from '../neurons';
import { queryNeuronsReport } from '../report/query-neurons';
import { QueryNeuronsResult } from './query-neurons';

/** A domain name as a file name: letters, digits, '.', '_' and '-' kept, anything else '_'. */
export function domainFileName(domain: string): string {
  const safe = domain.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return `${safe || '_'}.json`;
}

/**
 * Sparse per-item scores as COO tensors: `<name>.indices` I64 [nnz, 3] (item, layer row, neuron) and
 * `<name>.values` F32 [nnz]; items in the order of results.json's queries.
 */
function coo(name: string, perItem: Map<number, number>[], dMlp: number) {
  const rows: Array<[number, number, number, number]> = [];
  perItem.forEach((m, item) => [...m].sort((a, b) => a[0] - b[0]).forEach(([flat, v]) => rows.push([item, Math.floor(flat / dMlp), flat % dMlp, v])));
  const indices = Buffer.alloc(rows.length * 3 * 8), values = Buffer.alloc(rows.length * 4);
  rows.forEach(([item, r, i, v], k) => {
    indices.writeBigInt64LE(BigInt(item), 24 * k);
    indices.writeBigInt64LE(BigInt(r), 24 * k + 8);
    indices.writeBigInt64LE(BigInt(i), 24 * k + 16);
    values.writeFloatLE(v, 4 * k);
  });
  return [
    { name: `${name}.indices`, dtype: 'I64', shape: [rows.length, 3], data: indices },
    { name: `${name}.values`, dtype: 'F32', shape: [rows.length], data: values },
  ];
}

export async function writeQueryNeuronOutputs(dir: string, r: QueryNeuronsResult, modelId: string, info: ModelInfo, totalMs: number): Promise<void> {
  const method = { name: r.options.method, ...r.options };
  const files: Record<string, string> = {};
  fs.mkdirSync(path.join(dir, 'neurons'), { recursive: true });
  for (const [domain, neurons] of Object.entries(r.domains)) {
    let file = path.join('neurons', domainFileName(domain));
    if (Object.values(files).includes(file)) file = file.replace(/\.json$/, `-${Object.keys(files).length}.json`);
    files[domain] = file;
    await writeNeuronSet(path.join(dir, file), neuronSet(modelId, neurons, { ...method, domain }, r.options.site));
  }
  const layers = Buffer.alloc(8 * r.layers.length);
  r.layers.forEach((l, i) => layers.writeBigInt64LE(BigInt(l), 8 * i));
  await writeSafetensors(
    path.join(dir, 'attributions.safetensors'),
    [...coo('na', r.dense.na, r.dMlp), ...coo('score', r.dense.final, r.dMlp), { name: 'layers', dtype: 'I64', shape: [r.layers.length], data: layers }],
    { format: 'pt', model: modelId, site: r.options.site, method: r.options.method, d_mlp: String(r.dMlp), items: String(r.queries.length) },
  );
  const { config: _config, ...model } = info;
  void _config;
  await writeJson(path.join(dir, 'results.json'), {
    environment: environment(),
    model,
    options: r.options,
    kind: r.kind,
    layers: r.layers,
    site: r.options.site,
    queries: r.queries,
    skipped: r.skipped,
    letterForm: r.letterForm,
    domains: Object.fromEntries(Object.entries(r.domains).map(([d, neurons]) => [d, { file: files[d], neurons }])),
    pcr: r.pcr,
    prediction: r.prediction,
    localisation: r.localisation,
    attributions: { file: 'attributions.safetensors', tensors: 'na.indices/na.values and score.indices/score.values: sparse [item, layer row, neuron] -> value, items in the order of queries' },
    timings: { ...roundAll(r.timings), totalMs: Math.round(totalMs) },
  });
  fs.writeFileSync(path.join(dir, 'report.html'), queryNeuronsReport(r, modelId));
}

function roundAll<T extends Record<string, number>>(x: T): T {
  return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, Math.round(v)])) as T;
}
