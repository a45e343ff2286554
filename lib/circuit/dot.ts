/**
 * A circuit as Graphviz DOT: one node per head, MLP, the input and the logits, ranked by layer (input
 * at the top, logits at the bottom); an edge per (writer node, reader) with its score, labelled with
 * the q/k/v input it enters, its pen width by |score|, blue when ablating it lowers the metric (the
 * edge helps) and red when it raises it.
 */
import { CircuitGraph, layerOf, nodeOf } from './graph';

export function circuitDot(g: CircuitGraph, mask: Uint8Array, scores: Float32Array, title = 'circuit'): string {
  const R = g.readers.length;
  const edges: Array<{ from: string; to: string; input: string; score: number }> = [];
  let max = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const reader = g.readers[i % R];
    const input = /<([qkv])>$/.exec(reader)?.[1] ?? '';
    edges.push({ from: g.writers[Math.floor(i / R)], to: nodeOf(reader), input, score: scores[i] });
    max = Math.max(max, Math.abs(scores[i]));
  }
  const nodes = [...new Set(edges.flatMap((e) => [e.from, e.to]))];
  const byLayer = new Map<number, string[]>();
  for (const n of nodes) byLayer.set(layerOf(n), [...(byLayer.get(layerOf(n)) ?? []), n]);
  const q = (s: string) => JSON.stringify(s);
  const shape = (n: string) => (n.startsWith('a') ? 'ellipse' : n.startsWith('m') ? 'box' : 'doubleoctagon');
  const lines = [
    `digraph ${q(title)} {`,
    '  rankdir=TB;',
    '  node [fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=8, arrowsize=0.5];',
    ...nodes.map((n) => `  ${q(n)} [shape=${shape(n)}${n.startsWith('m') ? ', style=filled, fillcolor="#f3e6c8"' : n.startsWith('a') ? ', style=filled, fillcolor="#dce8f7"' : ''}];`),
    ...[...byLayer.keys()].sort((a, b) => a - b).map((l) => `  { rank=same; ${byLayer.get(l)!.map(q).join('; ')}; }`),
    ...edges.map((e) => {
      const width = max > 0 ? 0.5 + (4.5 * Math.abs(e.score)) / max : 1;
      const color = e.score < 0 ? '#2b5fb3' : '#c0392b';
      return `  ${q(e.from)} -> ${q(e.to)} [penwidth=${width.toFixed(2)}, color=${q(color)}${e.input ? `, label=${q(e.input)}` : ''}, tooltip=${q(`score ${e.score.toPrecision(4)}`)}];`;
    }),
    '}',
  ];
  return lines.join('\n') + '\n';
}
