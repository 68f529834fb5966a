// Small self-written canvas line charts for the health panel (no library, no build step).

function cssVar(el, name, fallback) {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (!Number.isFinite(v)) return "–";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/**
 * Draw `series` ([{label, values, color}]) on `canvas`, sized to its CSS box and the device pixel
 * ratio. The y axis starts at 0; the newest sample is at the right edge.
 */
export function drawLineChart(canvas, series, { unit = "", capacity = 300 } = {}) {
  const dpr = globalThis.devicePixelRatio || 1;
  const w = Math.max(50, canvas.clientWidth);
  const h = Math.max(40, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const grid = cssVar(canvas, "--grid", "#444");
  const text = cssVar(canvas, "--muted", "#999");
  const font = cssVar(canvas, "--chart-font", "11px system-ui, sans-serif");
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  max = niceMax(max);
  const left = 4;
  const right = w - 4;
  const top = 16;
  const bottom = h - 4;
  ctx.font = font;
  ctx.lineWidth = 1;
  ctx.strokeStyle = grid;
  ctx.fillStyle = text;
  ctx.textBaseline = "top";
  for (let i = 0; i <= 2; i += 1) {
    const y = Math.round(top + ((bottom - top) * i) / 2) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
    ctx.stroke();
  }
  ctx.textAlign = "right";
  ctx.fillText(fmt(max) + unit, right, 2);
  const step = (right - left) / Math.max(1, capacity - 1);
  ctx.textAlign = "left";
  let labelX = left;
  for (const s of series) {
    const vals = s.values;
    const n = vals.length;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let i = 0; i < n; i += 1) {
      const x = right - (n - 1 - i) * step;
      const y = bottom - (vals[i] / max) * (bottom - top);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
    ctx.fillStyle = s.color;
    const label = `${s.label} ${fmt(n ? vals[n - 1] : NaN)}${unit}`;
    ctx.fillText(label, labelX, 2);
    labelX += ctx.measureText(label).width + 10;
  }
}
