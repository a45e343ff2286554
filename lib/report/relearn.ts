/** report.html of a relearn run: recovery curves beside the random control, saliency heatmap, similarity. */
import { escapeHtml, lineChart, barChart } from './svg';
import type { RunResult } from '../pipelines/relearn';
import type { ControlPoint } from '../relearn/control';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Saliency per layer (rows) over checkpoints (columns), darker = more salient. */
function heatmap(title: string, run: RunResult, layers: number): string {
  const cell = 36, left = 60, top = 28, cols = run.checkpoints.length;
  const rects = run.checkpoints.flatMap((c, x) => c.saliency.map((s, l) => {
    const shade = Math.round(255 * (1 - s.mean));
    return `<rect x="${left + x * cell}" y="${top + (layers - 1 - l) * cell}" width="${cell - 2}" height="${cell - 2}" fill="rgb(${shade},${shade},255)"><title>layer ${l}, ${c.phase} step ${c.step}: mean ${s.mean.toFixed(3)}, ${s.above} above 0.5</title></rect>`;
  }));
  const rowLabels = Array.from({ length: layers }, (_, l) => `<text x="${left - 6}" y="${top + (layers - 1 - l) * cell + cell / 2}" text-anchor="end" font-size="11">layer ${l}</text>`);
  const colLabels = run.checkpoints.map((c, x) => `<text x="${left + x * cell + cell / 2}" y="${top + layers * cell + 14}" text-anchor="middle" font-size="10">${c.phase === 'trained' ? c.step : c.phase}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${left + cols * cell + 20}" height="${top + layers * cell + 30}"><text x="${left}" y="16" font-size="13">${escapeHtml(title)}</text>${rects.join('')}${rowLabels.join('')}${colLabels.join('')}</svg>`;
}

export function relearnReport(results: { model: string; settings: Record<string, unknown>; control: ControlPoint[] | null }, runs: RunResult[], layers: number): string {
  const labels = runs[0].checkpoints.map((c) => (c.phase === 'trained' ? String(c.step) : c.phase));
  const draws = runs.length - 1;
  // The main run, and beside it the random draws' mean with its 95% bootstrap band.
  const curve = (what: 'concept' | 'control') => {
    const stats = results.control?.map((p) => p[what]);
    const random = stats && stats.every((s) => s !== null) ? stats.map((s) => s!.random) : undefined;
    return lineChart(`${what} token accuracy over retraining steps`, labels, [
      { name: `${runs[0].ranking} pruning`, color: COLORS[0], values: runs[0].checkpoints.map((c) => c.scores.accuracy[what]) },
      ...(random ? [{ name: `random pruning (mean of ${draws}, 95% band)`, color: COLORS[1], values: random.map((r) => r.mean), dashed: true, band: { low: random.map((r) => r.low), high: random.map((r) => r.high) } }] : []),
    ], { max: 1, percent: true });
  };
  const diffRows = (results.control ?? []).map((p) => {
    const cell = (s: ControlPoint['concept']) => (s ? `${pct(s.difference.delta)} [${pct(s.difference.low)}, ${pct(s.difference.high)}]` : 'n/a');
    return `<tr><td>${p.phase === 'trained' ? p.step : p.phase}</td><td>${cell(p.concept)}</td><td>${cell(p.control)}</td></tr>`;
  });
  const diffTable = diffRows.length
    ? `<p>Accuracy of ${escapeHtml(runs[0].ranking)} pruning minus random pruning (mean of ${draws} draws), with paired 95% bootstrap intervals over the held-out tokens:</p><table><tr><th>checkpoint</th><th>concept</th><th>control</th></tr>${diffRows.join('')}</table>`
    : '';
  const last = runs[0].checkpoints[runs[0].checkpoints.length - 1];
  const bins = [0, 0.2, 0.4, 0.6, 0.8, 1.0001];
  const histOver = (edges: number[]) => (xs: Array<number | null>) => edges.slice(0, -1).map((b, i) => xs.filter((x) => x !== null && x >= b && x < edges[i + 1]).length);
  const labelsOf = (edges: number[]) => edges.slice(0, -1).map((b, i) => `${b.toFixed(1)} to ${Math.min(1, edges[i + 1]).toFixed(1)}`);
  const hist = histOver(bins), binLabels = labelsOf(bins);
  const cosBins = [-1, 0, 0.2, 0.4, 0.6, 0.8, 1.0001];  // cosine can be negative; most mass sits near 1
  const cosHist = histOver(cosBins);
  return `<!doctype html><html><head><meta charset="utf-8"><title>relearn: ${escapeHtml(results.model)}</title>
<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}pre{background:#f4f4f4;padding:1em;overflow:auto}td,th{padding:2px 10px;text-align:right}</style></head><body>
<h1>Relearning after pruning</h1>
<p>Model <code>${escapeHtml(results.model)}</code>. Settings:</p><pre>${escapeHtml(JSON.stringify(results.settings, null, 2))}</pre>
<h2>Recovery</h2>${curve('concept')}${curve('control')}${diffTable}
<h2>Concept saliency per layer over steps (${escapeHtml(runs[0].ranking)} pruning)</h2>${heatmap('mean saliency per layer', runs[0], layers)}
<h2>Concept similarity at the last checkpoint (step ${last.step})</h2>
<p>Jaccard overlap of each unit's top-5 activating held-out tokens before pruning and now; units with no nonzero activation (frozen pruned units) are left out.</p>
${barChart('units per Jaccard bin', binLabels, [{ name: 'pruned units', color: COLORS[0], values: hist(last.similarity.pruned) }, { name: 'current top units', color: COLORS[2], values: hist(last.similarity.top) }])}
<p>Cosine of the mean input embeddings (the starting model's) of those two token sets; units without top tokens, or a model whose embeddings could not be read, are left out.</p>
${barChart('units per embedding-cosine bin', labelsOf(cosBins), [{ name: 'pruned units', color: COLORS[0], values: cosHist(last.similarity.prunedCosine) }, { name: 'current top units', color: COLORS[2], values: cosHist(last.similarity.topCosine) }])}
</body></html>
`;
}
