/**
 * Small SVG line charts drawn by hand: a few hundred bytes of code instead of a charting
 * library, and SVG (not canvas) so colours follow the theme through CSS classes.
 */
const SVG = "http://www.w3.org/2000/svg";

export interface Line {
  x: number[];
  y: number[];
  /** CSS class that sets the stroke colour from the theme. */
  className: string;
  label: string;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

export function formatNumber(value: number): string {
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1000 || Number.isInteger(value)) return value.toFixed(0);
  if (magnitude < 0.01) return value.toExponential(1);
  return value.toPrecision(3);
}

/** One chart: lines sharing axes; `xMax` fixes the x range (total steps) so the curve grows into it. */
export function lineChart(title: string, lines: Line[], xMax: number | null): HTMLElement {
  const width = 320;
  const height = 150;
  const pad = { left: 44, right: 8, top: 8, bottom: 20 };
  const figure = document.createElement("figure");
  figure.className = "chart";
  const caption = document.createElement("figcaption");
  const latest = lines.map((line) => (line.y.length > 0 ? `${line.label} ${formatNumber(line.y[line.y.length - 1] ?? 0)}` : "")).filter(Boolean);
  caption.textContent = `${title}${latest.length > 0 ? ` — ${latest.join(", ")}` : ""}`;
  const all = lines.flatMap((line) => line.y).filter(Number.isFinite);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  if (all.length === 0) {
    const empty = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" });
    empty.textContent = "no data yet";
    root.append(empty);
    figure.append(caption, root);
    return figure;
  }
  let yMin = Math.min(...all);
  let yMax = Math.max(...all);
  if (yMax - yMin < 1e-12) {
    yMin -= Math.abs(yMin) * 0.1 + 1e-6;
    yMax += Math.abs(yMax) * 0.1 + 1e-6;
  }
  const xs = lines.flatMap((line) => line.x);
  const xLo = Math.min(...xs, 0);
  const xHi = Math.max(xMax ?? 0, ...xs, xLo + 1);
  const sx = (x: number): number => pad.left + ((x - xLo) / (xHi - xLo)) * (width - pad.left - pad.right);
  const sy = (y: number): number => height - pad.bottom - ((y - yMin) / (yMax - yMin)) * (height - pad.top - pad.bottom);
  root.append(svg("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: "chart-axis" }));
  root.append(svg("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, class: "chart-axis" }));
  for (const [value, y] of [[yMax, pad.top + 8], [yMin, height - pad.bottom]] as const) {
    const label = svg("text", { x: pad.left - 4, y, "text-anchor": "end", class: "chart-tick" });
    label.textContent = formatNumber(value);
    root.append(label);
  }
  const xLabel = svg("text", { x: width - pad.right, y: height - 4, "text-anchor": "end", class: "chart-tick" });
  xLabel.textContent = `step ${formatNumber(xHi)}`;
  root.append(xLabel);
  for (const line of lines) {
    const points = line.x.map((x, index) => `${sx(x).toFixed(1)},${sy(line.y[index] ?? 0).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points, class: `chart-line ${line.className}`, fill: "none" }));
    if (line.x.length === 1 || line.className === "series-eval") {
      line.x.forEach((x, index) => root.append(svg("circle", { cx: sx(x), cy: sy(line.y[index] ?? 0), r: 2.5, class: `chart-dot ${line.className}` })));
    }
  }
  figure.append(caption, root);
  return figure;
}
