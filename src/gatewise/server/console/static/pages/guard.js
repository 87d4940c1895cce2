// Guard events: the guardrails' decisions (PII masked, injections blocked, tool calls
// refused, outputs flagged) and denied keys, every replica's with Redis (else this one's);
// refreshed every few seconds. Details hold entity types, counts and rule names, never prompt text.
import { api, el, errorBox, heading, table, when } from "../lib.js";

const POLL_MS = 3000;
const KEEP = 500;

export async function render(root) {
  heading(root, "Guard events", "Security events, newest first: every replica's when they share Redis, else this one's (the audit log keeps them for good).");
  const kind = el("select", { id: "guard-kind", name: "kind" },
    el("option", { value: "" }, "every kind"),
    ["pii", "prompt_injection", "tool_call", "output_check", "auth", "budget", "access"].map(k => el("option", { value: k }, k)));
  const box = el("div", { id: "guard-events" });
  root.append(el("div", { class: "row card" }, el("div", {}, el("label", { for: "guard-kind" }, "Kind"), kind)), box);
  let events = [];
  let after = 0;
  let timer = 0;
  let stopped = false;

  function show() {
    const k = kind.value;
    const rows = (k ? events.filter(e => e.kind === k) : events).slice().reverse();
    box.replaceChildren(table([
      { label: "Time", get: e => when(e.ts) },
      { label: "Kind", get: e => e.kind },
      { label: "Action", get: e => el("span", { class: e.action === "block" || e.action === "deny" ? "bad" : "warn" }, e.action) },
      { label: "Team", get: e => e.tenant },
      { label: "Key", get: e => e.key_id },
      { label: "Request", get: e => e.request_id },
      { label: "Detail", get: e => el("code", {}, JSON.stringify(e.detail)) },
    ], rows, { empty: "No guard events yet." }));
  }

  async function poll() {
    try {
      const page = await api(`/admin/security/events?after=${after}&limit=500`);
      after = page.next;
      if (page.data.length || !events.length) {
        events = events.concat(page.data).slice(-KEEP);
        show();
      }
    } catch (e) { box.replaceChildren(errorBox(e)); return; }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }
  kind.addEventListener("change", show);
  await poll();
  return () => { stopped = true; clearTimeout(timer); };
}
