// Teams: the list, and (for admins) creating one.
import { api, can, el, field, heading, table, when } from "../lib.js";

export async function render(root) {
  heading(root, "Teams", "Teams scope keys, budgets, usage and the cache.");
  const listBox = el("div", { id: "teams-list" });
  if (can("teams:manage")) {
    const form = el("form", { id: "team-create", class: "card", "aria-labelledby": "team-create-title" },
      el("h2", { id: "team-create-title" }, "Create a team"),
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "team-id" }, "Id"), el("input", { id: "team-id", name: "id", required: true, maxlength: 64 })),
        el("div", {}, el("label", { for: "team-name" }, "Name"), el("input", { id: "team-name", name: "name", maxlength: 200 })),
        el("div", {}, el("label", { for: "team-rpm" }, "Requests per minute"), el("input", { id: "team-rpm", name: "rpm", type: "number", min: 1 })),
        el("div", { class: "fit" }, el("button", { type: "submit" }, "Create team"))),
      el("p", { class: "error", role: "alert" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const err = form.querySelector(".error");
      err.textContent = "";
      const body = { id: field(form, "id") };
      if (field(form, "name")) body.name = field(form, "name");
      if (field(form, "rpm")) body.rpm = Number(field(form, "rpm"));
      try { await api("/admin/teams", { method: "POST", body }); form.reset(); await refresh(); }
      catch (e) { err.textContent = e.message; }
    });
    root.append(form);
  }
  root.append(listBox);
  async function refresh() {
    const data = (await api("/admin/teams")).data;
    listBox.replaceChildren(table([
      { label: "Id", get: t => el("code", {}, t.id) },
      { label: "Name", get: t => t.name },
      { label: "Models", get: t => t.models.length ? t.models : "every model" },
      { label: "RPM", get: t => t.rpm, num: true },
      { label: "TPM", get: t => t.tpm, num: true },
      { label: "Created", get: t => when(t.created) },
    ], data, { empty: "No teams yet." }));
  }
  await refresh();
}
