/** report.html for the copy-bias pipeline: one self-contained page, inline SVG, no scripts. */
import { CopyBiasResult, Verdict } from '../pipelines/copybias';
import { Interval } from '../stats';
import { taskVectorCurveSvg } from './task-vectors';
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

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const pts = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
const ci = (iv: Interval) => `${pts(iv.delta)} <small>[${pts(iv.low)}, ${pts(iv.high)}]</small>`;

/** Headline: per shot count, the mean over ICL tasks (proxy excluded), with intervals and the control. */
function headline(r: CopyBiasResult): string {
  const rows = r.changes.mean.map((m) => {
    const b = r.before.mean.find((x) => x.shots === m.shots)!, a = r.after.mean.find((x) => x.shots === m.shots)!;
    const range = (metric: 'accuracy' | 'copyErrorRate') => {
      const d = r.control.map((c) => c.changes.mean.find((x) => x.shots === m.shots)![metric].delta);
      return d.length ? `${pts(Math.min(...d))} to ${pts(Math.max(...d))}` : '-';
    };
    return `<tr><td>${m.shots}</td><td>${pct(b.accuracy)}</td><td>${pct(a.accuracy)}</td><td>${ci(m.accuracy)}</td><td>${range('accuracy')}</td>` +
      `<td>${pct(b.copyErrorRate)}</td><td>${pct(a.copyErrorRate)}</td><td>${ci(m.copyErrorRate)}</td><td>${range('copyErrorRate')}</td></tr>`;
  });
  return `<table><thead><tr><th>shots</th><th>accuracy before</th><th>after</th><th>change [95% CI], points</th><th>random draws</th>` +
    `<th>copy errors before</th><th>after</th><th>change [95% CI]</th><th>random draws</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function taskTable(r: CopyBiasResult): string {
  const excluded = r.before.excludedFromMean ?? [];
  const ordered = [...r.before.scores.filter((s) => !excluded.includes(s.task)), ...r.before.scores.filter((s) => excluded.includes(s.task))];
  const rows = ordered.map((b) => {
    const a = r.after.scores.find((x) => x.task === b.task && x.shots === b.shots)!;
    const c = r.changes.scores.find((x) => x.task === b.task && x.shots === b.shots)!;
    const name = excluded.includes(b.task) ? `${escapeHtml(b.task)} <small>(proxy, not in the mean)</small>` : escapeHtml(b.task);
    return `<tr><td>${name}</td><td>${b.shots}</td><td>${pct(b.accuracy)}</td><td>${pct(a.accuracy)}</td><td>${ci(c.accuracy)}</td><td>${pct(b.copyErrorRate)}</td><td>${pct(a.copyErrorRate)}</td><td>${ci(c.copyErrorRate)}</td></tr>`;
  });
  return `<table><thead><tr><th>task</th><th>shots</th><th>accuracy before</th><th>after</th><th>change [95% CI]</th><th>copy errors before</th><th>after</th><th>change [95% CI]</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function devTable(r: CopyBiasResult): string {
  const hist = (h: Record<string, number>) => Object.entries(h).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${escapeHtml(JSON.stringify(k))}:${v}`).join(' ');
  const rows = [r.baselineDev, ...r.devSearch].map((p) => {
    const what = p.fraction === 0 ? 'none (unpruned)' : `${(100 * p.fraction).toPrecision(2)}%${p.layerRange ? ` of layers ${p.layerRange[0]}-${p.layerRange[1]}` : ''}`;
    const verdict = p.fraction === 0 ? '' : p === r.chosen ? '<b>chosen</b>' : p.accepted ? 'passed' : `rejected: ${escapeHtml(p.rejected ?? '')}`;
    return `<tr><td>${what}</td><td>${p.neurons}</td><td>${pct(p.accuracy)}</td><td>${pct(p.copyErrorRate)}</td><td><small>${hist(p.predictions)}</small></td><td><small>${verdict}</small></td></tr>`;
  });
  return `<table><thead><tr><th>pruned</th><th>neurons</th><th>dev accuracy</th><th>dev copy errors</th><th>answers given</th><th>guard rails</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** One sentence: does pruning help beyond the random control? */
export function summaryLine(r: CopyBiasResult): string {
  if (!r.chosen) return 'Nothing was pruned: no fraction passed the guard rails.';
  if (r.control.length === 0) return 'No random control was run, so no gain can be claimed.';
  const name = (v: Verdict) => `${v.shots}-shot ${v.metric === 'accuracy' ? 'accuracy' : 'copy errors'}`;
  const gains = r.verdicts.filter((v) => v.gain).map(name);
  // A harm: a deterioration whose interval excludes 0 and that is worse than every random draw.
  const harms = r.verdicts.filter((v) => v.outsideControl && (v.metric === 'accuracy' ? v.interval[1] < 0 && v.delta < v.controlRange![0] : v.interval[0] > 0 && v.delta > v.controlRange![1])).map(name);
  const first = gains.length
    ? `Pruning the copying neurons helps beyond the random control on: ${gains.join(', ')}.`
    : 'Pruning the copying neurons gives no gain beyond the random control on any headline measure.';
  return harms.length ? `${first} It hurts beyond the random control on: ${harms.join(', ')}.` : first;
}

function taskVectorSection(r: CopyBiasResult): string {
  const { before, after } = r.taskVectors!;
  const rows = before.tasks.map((b) => {
    const a = after.tasks.find((x) => x.task === b.task);
    return `<tr><td>${escapeHtml(b.task)}</td><td>${pct(b.zeroShot.accuracy)}</td><td>${pct(b.icl.accuracy)}</td><td>L${b.bestLayer}: ${pct(b.bestLayerAccuracy)}</td>` +
      `<td>${a ? pct(a.icl.accuracy) : '-'}</td><td>${a ? `L${a.bestLayer}: ${pct(a.bestLayerAccuracy)}` : '-'}</td></tr>`;
  });
  return `<h2>Task vectors (Hendel et al. 2023)</h2>
<p>The residual stream at one layer, last position, of a prompt of ${before.config.shots} demonstrations and a dummy query, patched into the zero-shot query's forward; the layer is chosen on ${before.config.devN} dev prompts per task, accuracy on ${before.config.n} test prompts.${r.chosen ? '' : ' Nothing was pruned, so before and after are the same run.'}</p>
${taskVectorCurveSvg(
    [{ name: 'before pruning', perLayer: before.mean.perLayer }, ...(r.chosen ? [{ name: 'after pruning', perLayer: after.mean.perLayer }] : [])],
    { title: 'Task-vector accuracy per patched layer (mean over tasks)', references: [{ name: 'zero-shot (before)', accuracy: before.mean.zeroShot }, { name: 'ICL (before)', accuracy: before.mean.icl }] },
  )}
<table><thead><tr><th>task</th><th>zero-shot</th><th>ICL before</th><th>task vector before</th><th>ICL after</th><th>task vector after</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function copyBiasReport(r: CopyBiasResult, model: string, extra = ''): string {
  const layers = r.attribution.layers;
  const perLayer = layers.map((l) => r.neurons.filter((n) => n.layer === l).length);
  const tasks = [...perTask(r.before, 'accuracy').keys()];
  const [accB, accA, copyB, copyA] = [
    perTask(r.before, 'accuracy'), perTask(r.after, 'accuracy'), perTask(r.before, 'copyErrorRate'), perTask(r.after, 'copyErrorRate'),
  ];
  const curve = [r.baselineDev, ...r.devSearch.filter((p) => p.layerRange === null)];
  const label = (p: { fraction: number; neurons: number }) => (p.fraction === 0 ? 'none' : `${(100 * p.fraction).toPrecision(2)}% (${p.neurons})`);
  const chosen = r.chosen;
  const px = r.proxy;
  const selection = chosen
    ? `Chosen on ${px.devPrompts} dev prompts: the top <b>${(100 * chosen.fraction).toPrecision(3)}%</b> of neurons${chosen.layerRange ? ` in layers ${chosen.layerRange[0]}-${chosen.layerRange[1]}` : ''}, <b>${r.neurons.length}</b> pruned
(dev accuracy ${pct(r.baselineDev.accuracy)} &rarr; ${pct(chosen.accuracy)}, copy errors ${pct(r.baselineDev.copyErrorRate)} &rarr; ${pct(chosen.copyErrorRate)}).`
    : `<b>No fraction passed the guard rails, so nothing was pruned</b>: none reached a dev accuracy above always answering "${escapeHtml(r.constantBaseline.answer)}" (${pct(r.constantBaseline.accuracy)}) together with fewer dev copy errors than the unpruned model (${pct(r.baselineDev.copyErrorRate)}).`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neuroprune copy bias: ${escapeHtml(model)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:860px;color:#222}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}code{background:#f4f4f4;padding:0 3px}
.verdict{background:#f6f8fa;border-left:4px solid #7a8ca5;padding:.5em 1em}</style>
</head><body>
<h1>Copy bias: ${escapeHtml(model)}</h1>
<p>Integrated Gradients (copy objective, ${r.config.attribution.steps} steps, ${escapeHtml(r.config.attribution.rule)}) on ${px.attributionPrompts} vowel-counting prompts
(${px.shots} examples each, whose labels never include the right answer; words from ${escapeHtml(px.source)}). Vowel counts ${px.counts.join(', ')} with ${px.wordsPerCount} words each
per part; the attribution part (${px.attributionWords} words) and the dev part (${px.devWords} words) share no word. ${selection}</p>
${chosen ? `<div class="verdict"><p><b>${summaryLine(r)}</b></p><p>Mean over the ICL tasks (the proxy task excluded), change after pruning against ${r.control.length} draws of the same numbers of random neurons per layer:</p><ul>${r.verdicts.map((v) => `<li>${escapeHtml(v.text)}</li>`).join('')}</ul></div>` : ''}
<h2>ICL suite: the headline</h2>
${headline(r)}
<p><small>Changes are in percentage points, after minus before, on the same prompts; 95% intervals from a paired bootstrap over prompts (${r.config.control.resamples} resamples, stratified by task). "Random draws" is the range of the same change when the same numbers of random neurons per layer are pruned instead.</small></p>
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
  { name: 'best constant answer', color: '#999', values: curve.map(() => r.constantBaseline.accuracy) },
], { max: 1, percent: true })}
<h2>Dev search and guard rails</h2>
${devTable(r)}
<h2>Per task</h2>
${taskTable(r)}
${r.taskVectors ? taskVectorSection(r) : ''}
${extra}
<p>Timings (ms): ${Object.entries(r.timings).map(([k, v]) => `${escapeHtml(k)} ${v}`).join(', ')}. Every number is in <code>results.json</code>; every prompt and answer in <code>predictions.jsonl</code>.</p>
</body></html>
`;
}
