/** report.html for the copy-bias pipeline: one self-contained page, inline SVG, no scripts. */
import { CopyBiasResult } from '../pipelines/copybias';
import { EvalResult } from '../pipelines/evaluate';
import { barChart, escapeHtml, lineChart } from './svg';

const BEFORE = '#7a8ca5', AFTER = '#d9822b', COPY = '#c0392b';

/** Per task, the mean over shot counts. */
function perTask(result: EvalResult, key: 'accuracy' | 'copyErrorRate'): Map<string, number> {
  const out = new Map<string, number>();
  for (const task of new Set(result.scores.map((s) => s.task))) {
    const s = result.scores.filter((x) => x.task === task);
    out.set(task, s.reduce((a, x) => a + x[key], 0) / s.length);
  }
  return out;
}

function table(r: CopyBiasResult): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = r.before.scores.map((b) => {
    const a = r.after.scores.find((x) => x.task === b.task && x.shots === b.shots)!;
    return `<tr><td>${escapeHtml(b.task)}</td><td>${b.shots}</td><td>${pct(b.accuracy)}</td><td>${pct(a.accuracy)}</td><td>${pct(b.copyErrorRate)}</td><td>${pct(a.copyErrorRate)}</td></tr>`;
  });
  const means = r.before.mean.map((b) => {
    const a = r.after.mean.find((x) => x.shots === b.shots)!;
    return `<tr class="mean"><td>mean</td><td>${b.shots}</td><td>${pct(b.accuracy)}</td><td>${pct(a.accuracy)}</td><td>${pct(b.copyErrorRate)}</td><td>${pct(a.copyErrorRate)}</td></tr>`;
  });
  return `<table><thead><tr><th>task</th><th>shots</th><th>accuracy before</th><th>after</th><th>copy errors before</th><th>after</th></tr></thead><tbody>${[...rows, ...means].join('')}</tbody></table>`;
}

export function copyBiasReport(r: CopyBiasResult, model: string): string {
  const layers = r.attribution.layers;
  const perLayer = layers.map((l) => r.neurons.filter((n) => n.layer === l).length);
  const tasks = [...perTask(r.before, 'accuracy').keys()];
  const [accB, accA, copyB, copyA] = [
    perTask(r.before, 'accuracy'), perTask(r.after, 'accuracy'), perTask(r.before, 'copyErrorRate'), perTask(r.after, 'copyErrorRate'),
  ];
  const curve = [r.baselineDev, ...r.devSearch.filter((p) => p.layerRange === null)];
  const label = (p: { fraction: number; neurons: number }) => (p.fraction === 0 ? 'none' : `${(100 * p.fraction).toPrecision(2)}% (${p.neurons})`);
  const chosen = r.chosen;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neuroprune copy bias: ${escapeHtml(model)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:780px;color:#222}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}tr.mean{font-weight:600}code{background:#f4f4f4;padding:0 3px}</style>
</head><body>
<h1>Copy bias: ${escapeHtml(model)}</h1>
<p>Integrated Gradients (copy objective, ${r.config.attribution.steps} steps, ${escapeHtml(r.config.attribution.rule)}) on ${r.proxy.attributionPrompts} vowel-counting prompts
(${r.proxy.shots} examples each; words from ${escapeHtml(r.proxy.source)}). Chosen on ${r.proxy.devPrompts} dev prompts: the top
<b>${(100 * chosen.fraction).toPrecision(3)}%</b> of neurons${chosen.layerRange ? ` in layers ${chosen.layerRange[0]}-${chosen.layerRange[1]}` : ''}, <b>${r.neurons.length}</b> pruned
(dev accuracy ${(100 * r.baselineDev.accuracy).toFixed(1)}% &rarr; ${(100 * chosen.accuracy).toFixed(1)}%, copy errors ${(100 * r.baselineDev.copyErrorRate).toFixed(1)}% &rarr; ${(100 * chosen.copyErrorRate).toFixed(1)}%).</p>
${barChart('Pruned neurons per layer', layers.map(String), [{ name: 'pruned neurons', color: AFTER, values: perLayer }])}
${barChart('Accuracy per task (mean over shots)', tasks, [
  { name: 'before', color: BEFORE, values: tasks.map((t) => accB.get(t)!) },
  { name: 'after pruning', color: AFTER, values: tasks.map((t) => accA.get(t)!) },
], { max: 1, percent: true })}
${barChart('Copy-error rate per task (mean over shots)', tasks, [
  { name: 'before', color: BEFORE, values: tasks.map((t) => copyB.get(t)!) },
  { name: 'after pruning', color: COPY, values: tasks.map((t) => copyA.get(t)!) },
], { max: Math.max(0.05, ...[...copyB.values(), ...copyA.values()]), percent: true })}
${lineChart('Dev search: fraction of neurons pruned', curve.map(label), [
  { name: 'dev accuracy', color: BEFORE, values: curve.map((p) => p.accuracy) },
  { name: 'dev copy-error rate', color: COPY, values: curve.map((p) => p.copyErrorRate) },
], { max: 1, percent: true })}
<h2>ICL suite, before and after</h2>
${table(r)}
<p>Timings (ms): ${Object.entries(r.timings).map(([k, v]) => `${escapeHtml(k)} ${v}`).join(', ')}. Every number is in <code>results.json</code>.</p>
</body></html>
`;
}
