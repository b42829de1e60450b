// Small inline SVG line charts (no library): one chart, one or more series over x.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 160;
const PAD = { left: 48, right: 10, top: 10, bottom: 22 };

/** @param {string} tag @param {Record<string, string|number>} [attributes] */
function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

const compact = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, notation: 'compact' });

/**
 * A line chart of `series` (each `{name, className, points: [[x, y], ...]}`), y from 0.
 * @param {{title: string, xLabel: string, series: {name: string, className: string,
 *   points: number[][]}[], testId?: string}} spec
 * @returns {HTMLElement} a figure with the chart and its legend
 */
export function lineChart({ title, xLabel, series, testId }) {
  const figure = document.createElement('figure');
  figure.className = 'chart';
  if (testId) figure.dataset.testid = testId;
  const caption = document.createElement('figcaption');
  caption.textContent = title;
  figure.append(caption);
  const points = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': title });
  figure.append(root);
  if (!points.length) {
    const empty = svg('text', { x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'chart-empty' });
    empty.textContent = 'no chunks yet';
    root.append(empty);
    return figure;
  }
  const xs = points.map(([x]) => x);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs) > x0 ? Math.max(...xs) : x0 + 1;
  const y1 = Math.max(...points.map(([, y]) => y)) || 1;
  const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
  const py = (y) => HEIGHT - PAD.bottom - (y / y1) * (HEIGHT - PAD.top - PAD.bottom);
  root.append(
    svg('line', { x1: PAD.left, y1: py(0), x2: WIDTH - PAD.right, y2: py(0), class: 'chart-axis' }),
    svg('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: py(0), class: 'chart-axis' }),
  );
  const label = (text, x, y, anchor) => {
    const node = svg('text', { x, y, 'text-anchor': anchor, class: 'chart-label' });
    node.textContent = text;
    return node;
  };
  root.append(
    label(compact.format(y1), PAD.left - 4, PAD.top + 8, 'end'),
    label('0', PAD.left - 4, py(0), 'end'),
    label(`${compact.format(x0)}`, PAD.left, HEIGHT - 6, 'start'),
    label(`${compact.format(x1)} ${xLabel}`, WIDTH - PAD.right, HEIGHT - 6, 'end'),
  );
  const legend = document.createElement('ul');
  legend.className = 'chart-legend';
  for (const s of series) {
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (!good.length) continue;
    const line = svg('polyline', {
      points: good.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' '),
      class: `chart-line ${s.className}`,
      'data-series': s.name,
    });
    const tip = svg('title');
    tip.textContent = s.name;
    line.append(tip);
    root.append(line);
    const item = document.createElement('li');
    item.className = s.className;
    item.textContent = s.name;
    legend.append(item);
  }
  figure.append(legend);
  return figure;
}
