/** report.html for the task-vector pipeline: one self-contained page, inline SVG, no scripts. */
import { TaskVectorsResult } from '../pipelines/task-vectors';
import { escapeHtml, lineChart, Series } from './svg';

const CURVES = ['#d9822b', '#3b6fb6', '#2e8b57', '#8e44ad'];
const ZERO = '#999999', ICL = '#444444';

export interface TaskVectorCurve {
  name: string;
  perLayer: Array<{ layer: number; accuracy: number }>;
}

/**
 * Task-vector accuracy per layer as an inline SVG figure, one line per series (e.g. a model before
 * and after pruning), with optional horizontal reference lines (e.g. zero-shot and ICL accuracy).
 * Series may cover different layers; the x axis is their union.
 */
export function taskVectorCurveSvg(
  series: TaskVectorCurve[],
  options: { title?: string; references?: Array<{ name: string; accuracy: number }> } = {},
): string {
  const layers = [...new Set(series.flatMap((s) => s.perLayer.map((p) => p.layer)))].sort((a, b) => a - b);
  // A layer a series lacks is drawn at 0, and its legend says which layers it lacks.
  const lines: Series[] = series.map((s, i) => {
    const missing = layers.filter((l) => !s.perLayer.some((p) => p.layer === l));
    return {
      name: missing.length ? `${s.name} (no layers ${missing.join(',')})` : s.name,
      color: CURVES[i % CURVES.length],
      values: layers.map((l) => s.perLayer.find((p) => p.layer === l)?.accuracy ?? 0),
    };
  });
  const refs: Series[] = (options.references ?? []).map((r, i) => ({
    name: r.name,
    color: i === 0 ? ZERO : ICL,
    values: layers.map(() => r.accuracy),
    dashed: true,
  }));
  return lineChart(options.title ?? 'Task-vector accuracy per patched layer', layers.map((l) => `L${l}`), [...lines, ...refs], { max: 1, percent: true });
}

function table(r: TaskVectorsResult): string {
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  const head = `<tr><th>task</th><th>zero-shot</th><th>ICL</th>${r.layers.map((l) => `<th>L${l}</th>`).join('')}<th>best (dev)</th><th>test at best</th></tr>`;
  const rows = r.tasks.map(
    (t) =>
      `<tr><td>${escapeHtml(t.task)}</td><td>${pct(t.zeroShot.accuracy)}</td><td>${pct(t.icl.accuracy)}</td>${t.perLayer
        .map((p) => `<td${p.layer === t.bestLayer ? ' class="best"' : ''}>${pct(p.accuracy)}</td>`)
        .join('')}<td>L${t.bestLayer}</td><td>${pct(t.bestLayerAccuracy)}</td></tr>`,
  );
  const mean = `<tr class="mean"><td>mean</td><td>${pct(r.mean.zeroShot)}</td><td>${pct(r.mean.icl)}</td>${r.mean.perLayer.map((p) => `<td>${pct(p.accuracy)}</td>`).join('')}<td></td><td>${pct(r.mean.bestLayerAccuracy)}</td></tr>`;
  return `<table><thead>${head}</thead><tbody>${rows.join('')}${r.tasks.length ? mean : ''}</tbody></table>`;
}

export function taskVectorsReport(r: TaskVectorsResult, model: string): string {
  const c = r.config;
  const perTask = r.tasks
    .map((t) =>
      taskVectorCurveSvg([{ name: 'task vector', perLayer: t.perLayer }], {
        title: `${t.task}: accuracy per patched layer (best on dev: L${t.bestLayer})`,
        references: [{ name: 'zero-shot', accuracy: t.zeroShot.accuracy }, { name: `${c.shots}-shot ICL`, accuracy: t.icl.accuracy }],
      }),
    )
    .join('\n');
  const skipped = r.skipped.length ? `<p>Skipped: ${r.skipped.map((s) => `${escapeHtml(s.task)} (${escapeHtml(s.reason)})`).join('; ')}.</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>neuroprune task vectors: ${escapeHtml(model)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:780px;color:#222}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}tr.mean{font-weight:600}td.best{background:#fdebd0}code{background:#f4f4f4;padding:0 3px}</style>
</head><body>
<h1>Task vectors: ${escapeHtml(model)}</h1>
<p>Hendel, Geva &amp; Globerson (2023): the residual stream <code>blocks.{L}.hook_resid_post</code> at the last token of
${c.shots} demonstrations plus a dummy query, patched into the last token of the zero-shot query <code>example:{x}-&gt;</code>
at layer L. ${c.n} test and ${c.devN} dev prompts per task (seed ${c.seed}; one-token answers); the best layer is chosen on dev.
"Answer = dummy query's" counts patched predictions equal to the dummy query's answer: there the vector carried the dummy
query itself, not only the task.</p>
${taskVectorCurveSvg([
  { name: 'task vector (mean over tasks)', perLayer: r.mean.perLayer },
  { name: 'answer = dummy query\'s', perLayer: r.mean.perLayer.map((p) => ({ layer: p.layer, accuracy: p.dummyAnswerRate })) },
], {
  title: 'Mean over tasks: accuracy per patched layer',
  references: [{ name: 'zero-shot', accuracy: r.mean.zeroShot }, { name: `${c.shots}-shot ICL`, accuracy: r.mean.icl }],
})}
${table(r)}
${skipped}
${perTask}
<p>Total time ${(r.timings.total / 1000).toFixed(1)} s.</p>
</body></html>
`;
}
