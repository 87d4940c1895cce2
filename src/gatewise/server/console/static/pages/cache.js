// Cache statistics: hits, semantic hits, misses, hit rate and what was saved, per team and
// alias, summed over every replica on a shared store.
import { api, el, heading, table, usd } from "../lib.js";

const pct = v => (100 * (v || 0)).toFixed(1) + " %";

export async function render(root) {
  heading(root, "Cache", "The response cache's effectiveness (exact and semantic).");
  const s = await api("/admin/cache/stats");
  if (!s.enabled) {
    root.append(el("p", { class: "card" }, "The response cache is off in this gateway's configuration."));
  }
  const t = s.total;
  root.append(el("div", { class: "stats" }, [
    ["Hit rate", pct(t.hit_rate)], ["Hits", t.hits], ["Semantic hits", t.semantic_hits],
    ["Misses", t.misses], ["Bypasses", t.bypasses], ["Tokens saved", t.tokens_saved], ["Saved", usd(t.usd_saved)],
  ].map(([k, v]) => el("div", { class: "card" }, el("div", { class: "muted" }, k), el("strong", {}, String(v ?? 0))))));
  root.append(el("h2", {}, "By team and alias"), table([
    { label: "Team", get: r => r.team },
    { label: "Alias", get: r => r.alias },
    { label: "Hits", get: r => r.hits, num: true },
    { label: "Semantic", get: r => r.semantic_hits, num: true },
    { label: "Misses", get: r => r.misses, num: true },
    { label: "Bypasses", get: r => r.bypasses, num: true },
    { label: "Hit rate", get: r => pct(r.hit_rate), num: true },
    { label: "Tokens saved", get: r => r.tokens_saved, num: true },
    { label: "Saved", get: r => usd(r.usd_saved), num: true },
  ], s.data, { empty: "No cache traffic yet." }));
}
