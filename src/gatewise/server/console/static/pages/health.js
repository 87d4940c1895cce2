// Health: every deployment and store as the gateway's health monitor last saw it (/readyz
// with detail, which needs `usage:read`).
import { el, heading, state, table, when } from "../lib.js";

const CLASS = { up: "ok", ok: "ok", ready: "ok", degraded: "warn", down: "bad", not_ready: "bad", draining: "warn" };

export async function render(root) {
  heading(root, "Health", "Readiness of the gateway, each deployment and each store.");
  // Not through lib.api: a 503 (not ready) still carries the document worth showing.
  const resp = await fetch("/readyz", { credentials: "same-origin", headers: { "x-csrf-token": state.session.csrf_token } });
  let doc;
  try { doc = await resp.json(); } catch (_) { doc = { status: "unknown" }; }
  root.append(el("p", { class: "card", id: "health-status" }, "Gateway: ",
    el("strong", { class: CLASS[doc.status] || "" }, doc.status),
    doc.reasons ? el("span", { class: "muted" }, " — " + doc.reasons.join("; ")) : null));
  const comps = Object.entries(doc.components || {}).map(([name, c]) => ({ name, ...c }));
  root.append(el("h2", {}, "Components"), table([
    { label: "Name", get: c => el("code", {}, c.name) },
    { label: "Kind", get: c => c.kind },
    { label: "Status", get: c => el("span", { class: CLASS[c.status] || "" }, c.status) },
    { label: "Latency ms", get: c => c.latency_ms === null || c.latency_ms === undefined ? null : Number(c.latency_ms).toFixed(1), num: true },
    { label: "Checked", get: c => when(c.checked_at) },
    { label: "Error", get: c => c.error },
  ], comps, { empty: "No components reported yet." }));
  if (doc.deployments) {
    root.append(el("h2", {}, "Deployments"), table([
      { label: "Deployment", get: d => el("code", {}, d[0]) },
      { label: "State", get: d => el("span", { class: d[1] === "ok" ? "ok" : "bad" }, d[1]) },
    ], Object.entries(doc.deployments)));
  }
}
