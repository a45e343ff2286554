/**
 * report.html for circuit: the circuit drawn layer by layer (edge width by |score|), faithfulness and
 * Hit@k beside the full model and random circuits, the faithfulness-vs-edges curve, the top nodes with
 * their logit lens, ACDC's runs, and the facts used and skipped.
 */
import { layerOf, nodeOf } from '../circuit/graph';
import type { CircuitResult } from '../pipelines/circuit';
import type { Condition, SplitEvaluation } from '../pipelines/circuit-eval';
import { topNodes } from '../pipelines/circuit';
import { escapeHtml, lineChart } from './svg';

const num = (x: number | null | undefined, digits = 3) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : Math.abs(x) >= 1000 ? x.toFixed(0) : x.toPrecision(digits));
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');
const interval = (c: { delta: number; low: number; high: number }) => `${pct(c.delta)} <small>[${pct(c.low)}, ${pct(c.high)}]</small>`;

/** The circuit as an SVG: one row per layer (input at the bottom, logits at the top), heads then the MLP across. */
export function circuitSvg(r: CircuitResult): string {
  const g = r.graph, R = g.readers.length;
  const heads = Math.max(1, ...g.writers.map((w) => Number(/\.h(\d+)$/.exec(w)?.[1] ?? -1) + 1));
  const layers = Math.max(0, ...g.writers.map(layerOf).filter(Number.isFinite)) + 1;
  const colW = Math.max(34, Math.min(60, 900 / (heads + 1))), rowH = Math.max(40, Math.min(70, 1000 / (layers + 2)));
  const left = 50, width = left + (heads + 1) * colW + 20, height = (layers + 2) * rowH + 20;
  const pos = (node: string): [number, number] => {
    const l = layerOf(node);
    const y = l === -1 ? height - rowH / 2 - 10 : l === Infinity ? rowH / 2 + 10 : height - (l + 1.5) * rowH - 10;
    if (node === 'input' || node === 'logits') return [left + ((heads + 1) * colW) / 2, y];
    const h = /\.h(\d+)$/.exec(node);
    return [left + (h ? Number(h[1]) + 0.5 : heads + 0.5) * colW, y];
  };
  let max = 0;
  for (let i = 0; i < r.mask.length; i++) if (r.mask[i]) max = Math.max(max, Math.abs(r.scores[i]));
  const lines: string[] = [];
  for (let i = 0; i < r.mask.length; i++) {
    if (!r.mask[i]) continue;
    const writer = g.writers[Math.floor(i / R)], reader = g.readers[i % R];
    const [x1, y1] = pos(writer), [x2b, y2] = pos(nodeOf(reader));
    const input = /<([qkv])>$/.exec(reader)?.[1];
    const x2 = x2b + (input === 'q' ? -6 : input === 'v' ? 6 : 0);
    const w = max > 0 ? 0.4 + (5 * Math.abs(r.scores[i])) / max : 1;
    const color = r.scores[i] < 0 ? '#2b5fb3' : '#c0392b';
    const mx = (x1 + x2) / 2 + (y1 - y2) * 0.08;
    lines.push(
      `<path d="M${x1.toFixed(1)},${y1.toFixed(1)} Q${mx.toFixed(1)},${((y1 + y2) / 2).toFixed(1)} ${x2.toFixed(1)},${(y2 + 8).toFixed(1)}" fill="none" stroke="${color}" stroke-opacity="0.55" stroke-width="${w.toFixed(2)}"><title>${escapeHtml(`${writer} -> ${reader}: ${r.scores[i].toPrecision(4)}`)}</title></path>`,
    );
  }
  const labels = Array.from({ length: layers }, (_, l) => `<text x="6" y="${(height - (l + 1.5) * rowH - 6).toFixed(1)}" font-size="10" fill="#666">L${l}</text>`);
  const nodes = r.circuit.nodes.map((n) => {
    const [x, y] = pos(n);
    const fill = n.startsWith('a') ? '#dce8f7' : n.startsWith('m') ? '#f3e6c8' : '#e0e0e0';
    const short = n.startsWith('a') ? n.replace(/^a\d+\./, '') : n;
    return `<g><rect x="${(x - colW / 2 + 2).toFixed(1)}" y="${(y - 8).toFixed(1)}" width="${(colW - 4).toFixed(1)}" height="16" rx="4" fill="${fill}" stroke="#555"/><text x="${x.toFixed(1)}" y="${(y + 4).toFixed(1)}" font-size="9" text-anchor="middle">${escapeHtml(short)}</text><title>${escapeHtml(n)}</title></g>`;
  });
  return `<figure><figcaption>The circuit (${r.circuit.edges} edges, ${r.circuit.nodes.length} nodes): rows are layers, input at the bottom, logits at the top; heads left to right, the MLP last; an edge ends left of a head for q, in the middle for k, right for v. Width by |score|; blue: ablating the edge lowers the metric, red: raises it.</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${width.toFixed(0)}" height="${height.toFixed(0)}" role="img">${[...labels, ...lines, ...nodes].join('')}</svg></figure>`;
}

function conditionRow(name: string, c: Condition, faith?: { ratio: number | null; normalized: number | null }) {
  return `<tr><td>${escapeHtml(name)}</td><td>${c.edges}</td><td>${num(c.metric, 4)}</td><td>${interval(c.hit)}</td><td>${faith ? num(faith.ratio) : ''}</td><td>${faith ? num(faith.normalized) : ''}</td></tr>`;
}

function splitTable(e: SplitEvaluation, hitK: number): string {
  return `<h3>${e.split} split (${e.facts} facts, scored against their own answers)</h3>
<table><tr><th>edges kept</th><th>edges</th><th>mean metric</th><th>Hit@${hitK} (95% CI over facts)</th><th>faithfulness (ratio)</th><th>faithfulness (normalised)</th></tr>
${conditionRow('full model', e.full, { ratio: 1, normalized: 1 })}
${conditionRow('circuit', e.circuit, e.circuit.faithfulness)}
${conditionRow(`random circuits of the same size (${e.random.draws.length} draws)`, e.random, e.random.faithfulness)}
${conditionRow('empty (every edge ablated)', e.empty, { ratio: null, normalized: 0 })}
</table>
${e.hitCircuitMinusRandom ? `<p>Circuit minus random Hit@${hitK}, paired over facts: ${interval(e.hitCircuitMinusRandom)}.</p>` : ''}`;
}

export function circuitReport(r: CircuitResult): string {
  const c = r.config;
  const nodes = topNodes(r, c.topNodes);
  const curveLabels = r.curve.map((p) => String(p.edges));
  const normalized = (f: { normalized: number | null }) => f.normalized ?? 0;
  const curve = lineChart(
    `Faithfulness (normalised) of the top-n circuits on the test split, by edges kept after pruning`,
    curveLabels,
    [
      { name: 'circuit (top n)', color: '#3b6fb6', values: r.curve.map((p) => normalized(p.faithfulness)) },
      { name: 'random, same size', color: '#999', values: r.curve.map((p) => normalized(p.random.faithfulness)) },
    ],
    { max: Math.max(1, ...r.curve.map((p) => Math.max(normalized(p.faithfulness), normalized(p.random.faithfulness)))) },
  );
  const hitCurve = lineChart(
    `Hit@${c.hitK} of the top-n circuits on the test split`,
    curveLabels,
    [
      { name: 'circuit (top n)', color: '#3b6fb6', values: r.curve.map((p) => p.hit) },
      { name: 'random, same size', color: '#999', values: r.curve.map((p) => p.random.hit) },
    ],
    { max: 1, percent: true },
  );
  const nodeRows = nodes
    .map((n) => `<tr><td>${escapeHtml(n.node)}</td><td>${num(n.score, 4)}</td><td>${n.inCircuit ? 'yes' : ''}</td><td>${n.lens ? num(n.lens.meanRank, 4) : 'n/a'}</td><td>${n.lens ? pct(n.lens.hit) : 'n/a'}</td></tr>`)
    .join('\n');
  const edgeRows = r.circuit.edgeList
    .slice(0, 40)
    .map((e) => `<tr><td>${escapeHtml(e.writer)} &rarr; ${escapeHtml(e.reader)}</td><td>${num(e.score, 4)}</td></tr>`)
    .join('\n');
  const acdc = r.acdc
    ? `<h2>ACDC</h2><p>Settings: ablation <b>${r.ablation}</b>, metric ${c.acdc.metric === 'nll' ? 'MatchNLL (&minus;log p(answer))' : 'KL to the clean output'}; readers from the logits back, each reader's edges from the latest writer back; an edge stays ablated when the metric rises by less than &tau;. The circuit above is the last &tau;'s, dead nodes pruned. Agreement with EAP-IG on the same facts: the share of ACDC's edges among EAP-IG's top edges of the same count, and the ROC-AUC of EAP-IG's |score| against ACDC's kept edges.</p>
<table><tr><th>&tau;</th><th>edges kept</th><th>metric (full)</th><th>metric (circuit)</th><th>forward passes</th><th>overlap with EAP-IG</th><th>ROC-AUC of EAP-IG</th></tr>
${r.acdc.map((a) => `<tr><td>${a.tau}</td><td>${a.edges}</td><td>${num(a.metricFull, 4)}</td><td>${num(a.metricCircuit, 4)}</td><td>${a.evaluations}</td><td>${pct(a.overlapWithEapIg)}</td><td>${num(a.aucEapIg)}</td></tr>`).join('\n')}
</table>`
    : '';
  const relations = r.data.relations
    .map((x) => `<tr><td>${escapeHtml(x.name)}</td><td><code>${escapeHtml(x.template)}</code></td><td>${x.facts}</td><td>${x.known}</td><td>${x.paired}</td><td>${x.validation}</td><td>${x.test}</td></tr>`)
    .join('\n');
  const skipped = r.data.skipped.length
    ? `<details><summary>${r.data.skipped.length} facts skipped</summary><ul>${r.data.skipped.slice(0, 300).map((s) => `<li>${escapeHtml(s.relation)} / ${escapeHtml(s.subject)}: ${escapeHtml(s.reason)}</li>`).join('')}</ul></details>`
    : '<p>No fact was skipped.</p>';
  const metricText = c.metric === 'logprob' ? 'log p(answer)' : c.metric === 'logit_diff' ? 'logit(answer) &minus; logit(corrupted answer)' : 'KL(clean output || output)';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>circuit: ${escapeHtml(r.model)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}small{color:#666}</style></head>
<body>
<h1>Knowledge circuit: ${escapeHtml(r.model)}</h1>
<p>Method <b>${escapeHtml(c.method)}</b>${c.method === 'acdc' ? ` (edge scores: EAP-IG, m = ${c.steps})` : c.method === 'eap-ig' ? ` with m = ${c.steps} steps` : ''}; metric ${metricText}; ablated edges carry the <b>${r.ablation}</b> value.
Circuit: ${c.method === 'acdc' ? `ACDC at &tau; = ${c.acdc.taus[c.acdc.taus.length - 1]}` : c.threshold === null ? `top ${c.topN} edges by |score|` : `edges with |score| &ge; ${c.threshold}`}, ${r.circuit.chosen} chosen, ${r.circuit.edges} left after dead nodes are pruned, of ${r.curve[r.curve.length - 1]?.edges ?? '?'} in the graph.
Edge scores from the validation split; everything below is measured on each split against its own answers.</p>
<table><tr><th>relation</th><th>template</th><th>facts</th><th>known (top ${c.knownTopK})</th><th>with a partner</th><th>validation</th><th>test</th></tr>
${relations}</table>
<h2>Faithfulness and Hit@${c.hitK}</h2>
<p>Faithfulness (ratio) = metric(circuit, every other edge ablated) / metric(full model), Yao et al.'s definition; for log-probabilities 1 is perfect and larger is worse. Faithfulness (normalised) = (m<sub>circuit</sub> &minus; m<sub>empty</sub>) / (m<sub>full</sub> &minus; m<sub>empty</sub>), Hanna et al.'s: 1 = the circuit does what the full model does, 0 = no better than ablating every edge.</p>
${splitTable(r.evaluation.test, c.hitK)}
${splitTable(r.evaluation.validation, c.hitK)}
${circuitSvg(r)}
<h2>Faithfulness against circuit size</h2>
${curve}
${hitCurve}
${acdc}
<h2>Top nodes and their logit lens</h2>
<p>Node score: the sum of the node's outgoing edge scores (attribution patching of the node: its first-order effect on the metric when its output is ablated). Logit lens: the node's output read through the final norm and the unembedding at the last position; the answer's mean rank (0 = top) and how often it is in the top ${c.hitK}, over the test facts.</p>
<table><tr><th>node</th><th>score</th><th>in circuit</th><th>lens: mean rank</th><th>lens: Hit@${c.hitK}</th></tr>
${nodeRows}</table>
<h2>Strongest edges of the circuit</h2>
<table><tr><th>edge</th><th>score</th></tr>
${edgeRows}</table>
<h2>Facts skipped</h2>
${skipped}
<p>Timings: facts ${(r.timings.factsMs / 1000).toFixed(1)} s, edge scores ${(r.timings.scoresMs / 1000).toFixed(1)} s (${r.scoring.microBatches} micro-batches${r.scoring.resumedGroups ? `, ${r.scoring.resumedGroups} of ${r.scoring.groups} length groups resumed` : ''})${r.acdc ? `, ACDC ${(r.timings.acdcMs / 1000).toFixed(1)} s` : ''}, evaluation ${(r.timings.evaluationMs / 1000).toFixed(1)} s.</p>
</body></html>
`;
}
