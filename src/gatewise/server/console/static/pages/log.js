// Live request log: polls /admin/requests/recent a few times a second and shows the requests
// newest first in a virtualised list: the last KEEP requests are held in memory, but only the
// rows in view exist in the DOM (a fixed set, refilled with text), inside a fixed-size,
// contained scroll box. An update, at most one per animation frame, therefore costs the same
// small layout and paint at 1 request/s or 100, however long the log has run.
import { api, el, errorBox, heading } from "../lib.js";

const POLL_MS = 250;
const KEEP = 1000;
const ROW_H = 28;      // px, as `.log-body tr` in console.css
const VISIBLE = 22;    // rows in the box (its height in console.css is VISIBLE * ROW_H)
// [label, value, numeric, width class]: fixed widths, so filling rows never re-measures the
// table (`table-layout: fixed` in console.css).
const COLUMNS = [
  ["Time", r => new Date(r.ts * 1000).toISOString().slice(11, 23), false, 8],
  ["Status", r => r.status, false, 5],
  ["Alias", r => r.alias, false, 8],
  ["Deployment", r => r.deployment || "—", false, 10],
  ["Team", r => r.team || "—", false, 6],
  ["Key", r => r.key_id || "—", false, 8],
  ["Latency ms", r => r.latency_ms !== undefined ? r.latency_ms.toFixed(1) : "—", true, 7],
  ["Tokens", r => (r.prompt_tokens || 0) + (r.completion_tokens || 0), true, 5],
  ["Cost", r => r.cost_usd !== undefined ? "$" + r.cost_usd.toFixed(6) : "—", true, 6],
  ["Cache", r => r.cache || "—", false, 5],
  ["Guards", r => (r.guards || []).join(" ") || "—", false, 8],
  ["Request id", r => r.request_id, false, 14],
];

const colgroup = () => el("colgroup", {}, COLUMNS.map(([, , , w]) => el("col", { class: `w${w}` })));

export async function render(root) {
  heading(root, "Live log", "Requests as this gateway finishes them (this replica; your team's only unless you are an admin).");
  const pause = el("button", { type: "button", id: "log-pause", "aria-pressed": "false" }, "Pause");
  const rate = el("span", { id: "log-rate" }, "0.0 req/s");
  const seen = el("span", { id: "log-seen" }, "0 seen");
  const note = el("span", { id: "log-note", class: "warn" });
  const err = el("div");
  // The rows in view: created once, refilled with text on every update.
  const rows = Array.from({ length: VISIBLE + 1 }, () => {
    const tr = el("tr", { hidden: true });
    for (const [, , num] of COLUMNS) tr.append(el("td", { class: num ? "num" : null }));
    return tr;
  });
  const body = el("tbody", { id: "log-rows" }, rows);
  const window_ = el("table", { class: "log-table log-body", "aria-label": "Recent requests" }, colgroup(),
    el("thead", { class: "visually-hidden" }, el("tr", {}, COLUMNS.map(([label]) => el("th", { scope: "col" }, label)))), body);
  const spacer = el("div", { class: "log-spacer" }, window_);
  const box = el("div", { class: "log-box", id: "log-box", tabindex: 0, role: "region", "aria-label": "Recent requests, newest first" }, spacer);
  const head = el("table", { class: "log-table", "aria-hidden": "true" }, colgroup(),
    el("thead", {}, el("tr", {}, COLUMNS.map(([label, , num]) => el("th", { class: num ? "num" : null }, label)))));
  root.append(el("div", { class: "log-stats" }, pause, rate, seen, note), err,
    el("div", { class: "log-wrap" }, head, box));

  let items = [];       // newest first, at most KEEP
  let after = 0;
  let first = true;
  let paused = false;
  let stopped = false;
  let frame = 0;
  let total = 0;
  let timer = 0;
  const arrivals = [];  // [time, count] over the last 5 s, for the rate

  function paint() {
    frame = 0;
    spacer.style.height = `${items.length * ROW_H}px`;
    const start = Math.min(Math.floor(box.scrollTop / ROW_H), Math.max(0, items.length - 1));
    window_.style.transform = `translateY(${start * ROW_H}px)`;
    for (let i = 0; i < rows.length; i++) {
      const r = items[start + i];
      const tr = rows[i];
      if (!r) { tr.hidden = true; continue; }
      tr.hidden = false;
      tr.className = r.status >= 400 ? "bad" : "";
      const cells = tr.children;
      for (let c = 0; c < COLUMNS.length; c++) cells[c].textContent = String(COLUMNS[c][1](r));
    }
    body.dataset.count = String(Math.min(items.length, rows.length));
  }
  const schedule = () => { if (!frame) frame = requestAnimationFrame(paint); };

  function add(batch) {
    const fresh = batch.slice().reverse();
    // Reading older entries: keep them where they are while new ones arrive above.
    if (box.scrollTop > 0) box.scrollTop += fresh.length * ROW_H;
    items = fresh.concat(items);
    if (items.length > KEEP) items.length = KEEP;
    schedule();
  }

  async function poll() {
    if (stopped) return;
    try {
      const page = await api(`/admin/requests/recent?after=${after}&limit=1000`);
      after = page.next;
      const now = performance.now();
      arrivals.push([now, page.data.length]);
      while (arrivals.length && now - arrivals[0][0] > 5000) arrivals.shift();
      const span = (Math.min(5000, now - arrivals[0][0]) + POLL_MS) / 1000;
      rate.textContent = `${(arrivals.reduce((n, a) => n + a[1], 0) / span).toFixed(1)} req/s`;
      total += page.data.length;
      seen.textContent = `${total} seen`;
      note.textContent = page.dropped && !first ? "Some requests were skipped (too many to show)." : "";
      first = false;
      if (!paused && page.data.length) add(page.data);
      err.replaceChildren();
    } catch (e) {
      err.replaceChildren(errorBox(e));
      if (e.status === 401 || e.status === 403) return;
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }
  box.addEventListener("scroll", schedule, { passive: true });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
  });
  await poll();
  return () => { stopped = true; clearTimeout(timer); if (frame) cancelAnimationFrame(frame); };
}
