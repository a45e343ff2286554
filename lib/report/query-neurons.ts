/** report.html for query-neurons: the PCR table, neurons per layer per domain, the domain overlap heatmap. */
import { QueryNeuronsResult } from '../pipelines/query-neurons';
import { escapeHtml, lineChart, Series } from './svg';

const COLORS = ['#3b6fb6', '#d9822b', '#2e8b57', '#8e44ad', '#c0392b', '#16a085', '#7f8c8d', '#b7950b'];

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const num = (x: number | null) => (x === null ? 'n/a' : Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

/** A Jaccard matrix as an SVG heatmap (white 0 to blue 1), values in the cells. */
function heatmap(labels: string[], matrix: number[][]): string {
  const cell = 44, left = 130, top = 110;
  const size = labels.length * cell;
  const cells = matrix.flatMap((row, i) =>
    row.map((v, j) => {
      const shade = Math.round(255 - 180 * v);
      return `<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="rgb(${shade},${shade},255)" stroke="#fff"/><text x="${left + j * cell + cell / 2}" y="${top + i * cell + cell / 2 + 4}" font-size="11" text-anchor="middle">${v.toFixed(2)}</text>`;
    }),
  );
  const rowLabels = labels.map((l, i) => `<text x="${left - 6}" y="${top + i * cell + cell / 2 + 4}" font-size="11" text-anchor="end">${escapeHtml(l)}</text>`);
  const colLabels = labels.map((l, j) => {
    const x = left + j * cell + cell / 2;
    return `<text x="${x}" y="${top - 6}" font-size="11" transform="rotate(-45 ${x} ${top - 6})">${escapeHtml(l)}</text>`;
  });
  return `<figure><figcaption>Overlap of the domain neuron sets (Jaccard)</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${left + size + 20}" height="${top + size + 20}" role="img">${[...cells, ...rowLabels, ...colLabels].join('')}</svg></figure>`;
}

export function queryNeuronsReport(r: QueryNeuronsResult, modelId: string): string {
  const o = r.options;
  const factorName = (f: number) => (f === o.boost ? `boost x${f}` : f === o.suppress ? `suppress x${f}` : `x${f}`);
  const pcrRows = r.pcr
    .map(
      (row) =>
        `<tr><td>${escapeHtml(row.method)}</td><td>${factorName(row.factor)}</td><td>${row.items}</td><td>${pct(row.related)}</td><td>${pct(row.unrelated)}</td><td>${num(row.pcr)}</td><td>${row.specificity ? `${pct(row.specificity.delta)} [${pct(row.specificity.low)}, ${pct(row.specificity.high)}]` : 'n/a'}</td><td>${pct(row.flipRelated)}</td><td>${pct(row.flipUnrelated)}</td></tr>`,
    )
    .join('\n');
  const domains = r.localisation.jaccard.domains;
  const series: Series[] = domains.map((d, i) => ({ name: d, color: COLORS[i % COLORS.length], values: r.localisation.perLayer[d] }));
  const layerChart = lineChart(`${o.method} neurons per layer, per domain (all query sets)`, r.layers.map((l) => `L${l}`), series);
  const skipped = r.skipped.length
    ? `<details><summary>${r.skipped.length} skipped</summary><ul>${r.skipped.slice(0, 200).map((s) => `<li>${escapeHtml(s.id)} (${escapeHtml(s.domain)}): ${escapeHtml(s.reason)}</li>`).join('')}</ul></details>`
    : '<p>No query was skipped.</p>';
  const prediction = r.prediction
    ? `<p>Neuron-based domain prediction (a query goes to the domain whose neurons it activates most): accuracy ${r.prediction.accuracy === null ? 'n/a (fewer than two domains with neurons)' : pct(r.prediction.accuracy)}.</p>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>query-neurons: ${escapeHtml(modelId)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head>
<body>
<h1>Query-relevant neurons: ${escapeHtml(modelId)}</h1>
<p>Method <b>${escapeHtml(o.method)}</b> at <code>blocks.{l}.${escapeHtml(o.site)}</code>; ${r.queries.length} ${r.kind === 'mcqa' ? 'queries' : 'facts'} in ${domains.length} domains.
Integrated Gradients of p(${r.kind === 'mcqa' ? 'gold letter' : "object's first token"}) at the last position, m = ${o.steps} (${o.rule}); t = ${o.t}, u = ${o.u}, v = ${o.v}, p = ${o.p}, ICA clusters: ${o.clusters}.</p>
<h2>Boosting and suppressing each query's neurons</h2>
<p>Scaling at the ${o.scalePositions === 'last' ? 'last position' : 'every position'}. Related: the relative change of p(gold) on the query's own prompts; unrelated: on ${o.unrelated} quer${o.unrelated === 1 ? 'y' : 'ies'} of other domains per query. PCR = related / unrelated. Every baseline scales as many neurons as the method chose for that query.</p>
<table><tr><th>neurons</th><th>scaling</th><th>queries</th><th>related</th><th>unrelated</th><th>PCR</th><th>related - unrelated (95% CI)</th><th>flips (related)</th><th>flips (unrelated)</th></tr>
${pcrRows || '<tr><td colspan="9">not evaluated</td></tr>'}
</table>
${prediction}
<h2>Localisation</h2>
${layerChart}
${domains.length > 1 ? heatmap(domains, r.localisation.jaccard.matrix) : ''}
<h2>Skipped</h2>
${skipped}
<p>Timings: attribution ${(r.timings.attributionMs / 1000).toFixed(1)} s (${r.timings.attributedItems} attributed, ${r.timings.resumedItems} resumed), evaluation ${(r.timings.evaluationMs / 1000).toFixed(1)} s.</p>
</body></html>
`;
}
