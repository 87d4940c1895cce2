// Budgets: caps by key, team or user with this period's spend; create and delete with
// `budgets:manage`.
import { api, can, el, errorBox, field, heading, table, usd } from "../lib.js";

// This period's spend: dollars and/or tokens, as the budget counts them.
function spent(s) {
  if (typeof s === "number") return usd(s);
  if (!s) return "—";
  const parts = [];
  if (s.usd !== undefined) parts.push(usd(s.usd));
  if (s.tokens !== undefined) parts.push(`${Number(s.tokens).toLocaleString("en")} tokens`);
  return parts.join(" · ") || "—";
}

export async function render(root) {
  heading(root, "Budgets", "Spending caps per key, team or user, and what each period has spent.");
  const listBox = el("div", { id: "budgets-list" });
  const notice = el("div");
  root.append(notice);
  if (can("budgets:manage")) {
    const form = el("form", { id: "budget-create", class: "card", "aria-labelledby": "budget-create-title" },
      el("h2", { id: "budget-create-title" }, "Create a budget"),
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "budget-scope" }, "Scope"),
          el("select", { id: "budget-scope", name: "scope" }, ["team", "key", "user"].map(s => el("option", { value: s }, s)))),
        el("div", {}, el("label", { for: "budget-subject" }, "Subject (id)"), el("input", { id: "budget-subject", name: "subject", required: true })),
        el("div", {}, el("label", { for: "budget-period" }, "Period"),
          el("select", { id: "budget-period", name: "period" }, ["month", "day", "total"].map(s => el("option", { value: s }, s)))),
        el("div", {}, el("label", { for: "budget-usd" }, "Limit (USD)"), el("input", { id: "budget-usd", name: "limit_usd", type: "number", min: 0, step: "any", required: true })),
        el("div", { class: "fit" }, el("button", { type: "submit" }, "Create budget"))),
      el("p", { class: "error", role: "alert" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const err = form.querySelector(".error");
      err.textContent = "";
      try {
        await api("/admin/budgets", { method: "POST", body: {
          scope: field(form, "scope"), subject: field(form, "subject"), period: field(form, "period"),
          limit_usd: Number(field(form, "limit_usd")) } });
        form.reset();
        await refresh();
      } catch (e) { err.textContent = e.message; }
    });
    root.append(form);
  }
  root.append(listBox);
  async function refresh() {
    const data = (await api("/admin/budgets")).data;
    const columns = [
      { label: "Id", get: b => el("code", {}, b.id) },
      { label: "Scope", get: b => b.scope },
      { label: "Subject", get: b => b.subject },
      { label: "Period", get: b => b.period },
      { label: "Limit", get: b => b.limit_usd !== null ? usd(b.limit_usd) : `${b.limit_tokens} tokens`, num: true },
      { label: "Spent", get: b => spent(b.spent), num: true },
      { label: "Hard", get: b => b.hard ? "yes" : "no" },
    ];
    if (can("budgets:manage")) {
      columns.push({ label: "Actions", get: b => el("button", { type: "button", class: "small danger", "aria-label": `Delete budget ${b.id}`,
        onclick: async () => { try { await api(`/admin/budgets/${b.id}`, { method: "DELETE" }); await refresh(); } catch (e) { notice.replaceChildren(errorBox(e)); } } }, "Delete") });
    }
    listBox.replaceChildren(table(columns, data, { empty: "No budgets yet." }));
  }
  await refresh();
}
