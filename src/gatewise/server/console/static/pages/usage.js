// Usage: cost and tokens over time by team, model or key (uPlot charts), a totals table and a
// CSV export. The last 24 hours are bucketed by hour from the ledger's records; longer ranges
// use the ledger's per-day sums.
import { api, el, errorBox, heading, loadScript, loadStyle, table, usd, download } from "../lib.js";

const UPLOT = "/console/vendor/uplot-1.6.31.min.js";
const UPLOT_CSS = "/console/vendor/uplot-1.6.31.min.css";
const COLORS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#4338ca"];
const FIELD = { team: r => r.team, model: r => r.alias, key: r => r.key_id };
const MAX_SERIES = 8;

// Axis labels short enough for the axis: cents and up as $0.12, fractions of a cent as $8.0e-6.
function money(v) {
  if (v === 0) return "$0";
  return Math.abs(v) >= 0.01 ? "$" + v.toFixed(2) : "$" + v.toExponential(1);
}

function isoDay(ts) { return new Date(ts * 1000).toISOString().slice(0, 10); }

// {buckets: [t...], series: Map(name -> {cost: [], tokens: []}), totals: Map(name -> {...})}
function bucketed(points, starts) {
  const index = new Map(starts.map((t, i) => [t, i]));
  const series = new Map();
  for (const p of points) {
    const i = index.get(p.bucket);
    if (i === undefined) continue;
    let s = series.get(p.name);
    if (!s) { s = { cost: starts.map(() => 0), tokens: starts.map(() => 0), requests: 0, costSum: 0, tokenSum: 0 }; series.set(p.name, s); }
    s.cost[i] += p.cost; s.tokens[i] += p.tokens; s.requests += p.requests;
    s.costSum += p.cost; s.tokenSum += p.tokens;
  }
  return series;
}

async function load(range, group) {
  const now = Date.now() / 1000;
  if (range === "24h") {
    const start = Math.floor(now / 3600) * 3600 - 23 * 3600;
    const starts = Array.from({ length: 24 }, (_, i) => start + i * 3600);
    const recs = (await api(`/admin/usage/records?since=${start}&limit=10000`)).data;
    return { starts, series: bucketed(recs.map(r => ({
      bucket: Math.floor(r.ts / 3600) * 3600, name: FIELD[group](r) || "(none)",
      cost: r.cost_usd || 0, tokens: (r.prompt_tokens || 0) + (r.completion_tokens || 0), requests: 1 })), starts) };
  }
  const days = range === "7d" ? 7 : 30;
  const today = Math.floor(now / 86400) * 86400;
  const starts = Array.from({ length: days }, (_, i) => today - (days - 1 - i) * 86400);
  const rows = (await api(`/admin/usage?group_by=day,${group}&since=${isoDay(starts[0])}`)).data;
  return { starts, series: bucketed(rows.map(r => ({
    bucket: Date.parse(r.group.day + "T00:00:00Z") / 1000, name: r.group[group] || "(none)",
    cost: r.cost_usd, tokens: r.prompt_tokens + r.completion_tokens, requests: r.requests })), starts) };
}

function chart(target, title, starts, names, values, unit) {
  const width = Math.max(320, (target.clientWidth || 640) - 40);  // less the card's padding
  const opts = {
    title, width, height: 260,
    series: [{ label: "time" }, ...names.map((n, i) => ({
      label: n, stroke: COLORS[i % COLORS.length], width: 2, points: { show: starts.length < 40 },
      value: (u, v) => v === null ? "—" : unit === "usd" ? "$" + v.toFixed(6) : Math.round(v).toLocaleString("en") }))],
    axes: [{}, { size: 80, values: (u, ticks) => ticks.map(v => unit === "usd" ? money(v) : v.toLocaleString("en")) }],
    scales: { x: { time: true } },
  };
  // eslint-disable-next-line no-undef
  return new uPlot(opts, [starts, ...values], target);
}

export async function render(root) {
  heading(root, "Usage", "Cost and tokens over time from the usage ledger.");
  loadStyle(UPLOT_CSS);
  const range = el("select", { id: "usage-range", name: "range" },
    el("option", { value: "24h" }, "Last 24 hours (hourly)"),
    el("option", { value: "7d" }, "Last 7 days (daily)"),
    el("option", { value: "30d" }, "Last 30 days (daily)"));
  const group = el("select", { id: "usage-group", name: "group" },
    ["team", "model", "key"].map(g => el("option", { value: g }, g)));
  const csv = el("button", { type: "button", id: "usage-csv" }, "Export CSV");
  const status = el("p", { class: "muted", "aria-live": "polite" });
  const costBox = el("div", { class: "card chart", id: "chart-cost", role: "img", "aria-label": "Cost over time" });
  const tokenBox = el("div", { class: "card chart", id: "chart-tokens", role: "img", "aria-label": "Tokens over time" });
  const totals = el("div", { id: "usage-totals" });
  root.append(el("div", { class: "row card" },
    el("div", {}, el("label", { for: "usage-range" }, "Range"), range),
    el("div", {}, el("label", { for: "usage-group" }, "By"), group),
    el("div", { class: "fit" }, csv)), status, costBox, tokenBox, el("h2", {}, "Totals"), totals);

  const plots = [];
  async function draw() {
    status.textContent = "Loading…";
    try {
      const [{ starts, series }] = await Promise.all([load(range.value, group.value), loadScript(UPLOT)]);
      const ranked = [...series.entries()].sort((a, b) => b[1].costSum - a[1].costSum || b[1].tokenSum - a[1].tokenSum);
      const shown = ranked.slice(0, MAX_SERIES);
      while (plots.length) plots.pop().destroy();
      costBox.replaceChildren(); tokenBox.replaceChildren();
      const names = shown.map(([n]) => n);
      plots.push(chart(costBox, "Cost (USD)", starts, names, shown.map(([, s]) => s.cost), "usd"));
      plots.push(chart(tokenBox, "Tokens", starts, names, shown.map(([, s]) => s.tokens), "tokens"));
      status.textContent = ranked.length ? (ranked.length > MAX_SERIES ? `Top ${MAX_SERIES} of ${ranked.length} by cost.` : "")
        : "No usage in this range yet.";
      totals.replaceChildren(table([
        { label: group.value, get: ([n]) => n },
        { label: "Requests", get: ([, s]) => s.requests, num: true },
        { label: "Tokens", get: ([, s]) => s.tokenSum, num: true },
        { label: "Cost", get: ([, s]) => usd(s.costSum), num: true },
      ], ranked, { empty: "No usage in this range." }));
    } catch (e) { status.replaceChildren(errorBox(e)); }
  }
  csv.addEventListener("click", async () => {
    const days = range.value === "30d" ? 30 : range.value === "7d" ? 7 : 1;
    const since = isoDay(Date.now() / 1000 - (days - 1) * 86400);
    try {
      const text = await api(`/admin/usage?format=csv&group_by=day,${group.value}&since=${since}`);
      download(`usage-${group.value}-${since}.csv`, text, "text/csv");
    } catch (e) { status.replaceChildren(errorBox(e)); }
  });
  range.addEventListener("change", draw);
  group.addEventListener("change", draw);
  await draw();
  return () => { while (plots.length) plots.pop().destroy(); };
}
