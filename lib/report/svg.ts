/** Small dependency-free SVG charts for self-contained HTML reports. */

export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const W = 720, H = 260, PAD = { left: 48, right: 48, top: 24, bottom: 64 };

export interface Series {
  name: string;
  color: string;
  values: number[];
  /** Drawn dashed and without markers (reference lines). */
  dashed?: boolean;
  /** lineChart: a shaded band from low to high around the line (an interval per x). */
  band?: { low: number[]; high: number[] };
}

/** Grouped bars: one group per label, one bar per series. */
export function barChart(title: string, labels: string[], series: Series[], options: { max?: number; percent?: boolean } = {}): string {
  const max = options.max ?? Math.max(1e-9, ...series.flatMap((s) => s.values));
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  const groupW = plotW / Math.max(1, labels.length);
  const barW = (groupW * 0.8) / series.length;
  const fmt = (v: number) => (options.percent ? `${(100 * v).toFixed(0)}%` : String(Math.round(v * 100) / 100));
  const bars = labels.flatMap((label, g) =>
    series.map((s, k) => {
      const v = s.values[g] ?? 0;
      const h = (v / max) * plotH;
      const x = PAD.left + g * groupW + groupW * 0.1 + k * barW;
      return `<rect x="${x.toFixed(1)}" y="${(PAD.top + plotH - h).toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="${s.color}"><title>${escapeHtml(`${label} ${s.name}: ${fmt(v)}`)}</title></rect>`;
    }),
  );
  const ticks = labels.map((label, g) => {
    const x = PAD.left + g * groupW + groupW / 2;
    return `<text x="${x.toFixed(1)}" y="${H - PAD.bottom + 14}" font-size="10" text-anchor="end" transform="rotate(-35 ${x.toFixed(1)} ${H - PAD.bottom + 14})">${escapeHtml(label)}</text>`;
  });
  return frame(title, [...axes(max, fmt), ...bars, ...ticks, ...legend(series)]);
}

/** Lines over x positions labelled by `labels`. */
export function lineChart(title: string, labels: string[], series: Series[], options: { max?: number; percent?: boolean } = {}): string {
  const max = options.max ?? Math.max(1e-9, ...series.flatMap((s) => s.values));
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (labels.length === 1 ? plotW / 2 : (i / (labels.length - 1)) * plotW);
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const fmt = (v: number) => (options.percent ? `${(100 * v).toFixed(0)}%` : String(Math.round(v * 100) / 100));
  const bands = series.filter((s) => s.band).map((s) => {
    const upper = s.band!.high.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    const lower = s.band!.low.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).reverse();
    return `<polygon fill="${s.color}" fill-opacity="0.18" stroke="none" points="${[...upper, ...lower].join(' ')}"><title>${escapeHtml(`${s.name}: 95% interval`)}</title></polygon>`;
  });
  const lines = series.map(
    (s) =>
      `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>` +
      (s.dashed ? '' : s.values.map((v, i) => `<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"><title>${escapeHtml(`${labels[i]} ${s.name}: ${fmt(v)}`)}</title></circle>`).join('')),
  );
  const ticks = labels.map((l, i) => `<text x="${x(i).toFixed(1)}" y="${H - PAD.bottom + 14}" font-size="10" text-anchor="middle">${escapeHtml(l)}</text>`);
  return frame(title, [...axes(max, fmt), ...bands, ...lines, ...ticks, ...legend(series)]);
}

function axes(max: number, fmt: (v: number) => string): string[] {
  const plotH = H - PAD.top - PAD.bottom;
  return [0, 0.5, 1].map((f) => {
    const yy = PAD.top + plotH - f * plotH;
    return `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${yy}" y2="${yy}" stroke="#ddd"/><text x="${PAD.left - 6}" y="${yy + 3}" font-size="10" text-anchor="end">${fmt(f * max)}</text>`;
  });
}

function legend(series: Series[]): string[] {
  return series.map((s, i) => `<rect x="${PAD.left + i * 150}" y="4" width="10" height="10" fill="${s.color}"/><text x="${PAD.left + i * 150 + 14}" y="13" font-size="11">${escapeHtml(s.name)}</text>`);
}

function frame(title: string, parts: string[]): string {
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${parts.join('')}</svg></figure>`;
}
