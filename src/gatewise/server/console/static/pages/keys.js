// Keys: list, create, revoke, rotate. A new or rotated key's secret is shown once, right
// here, and never again (the gateway keeps only its hash).
import { api, can, el, errorBox, field, heading, secretBox, state, table, when } from "../lib.js";

const ROLES = ["member", "viewer", "team_admin", "admin"];

export async function render(root) {
  heading(root, "Keys", "Virtual keys: each has a role, a team and optional model and rate limits.");
  const manage = can("keys:manage");
  const notice = el("div", { id: "keys-notice" });
  const listBox = el("div", { id: "keys-list" });
  root.append(notice);

  if (manage) {
    const ownTeam = state.session.team;
    const admin = can("admin:*");
    const form = el("form", { id: "key-create", class: "card", "aria-labelledby": "key-create-title" },
      el("h2", { id: "key-create-title" }, "Create a key"),
      el("div", { class: "row" },
        el("div", {}, el("label", { for: "key-name" }, "Name"),
          el("input", { id: "key-name", name: "name", required: true, maxlength: 200 })),
        el("div", {}, el("label", { for: "key-role" }, "Role"),
          el("select", { id: "key-role", name: "role" },
            ROLES.filter(r => admin || r !== "admin").map(r => el("option", { value: r }, r)))),
        el("div", {}, el("label", { for: "key-team" }, "Team"),
          el("input", { id: "key-team", name: "team", value: ownTeam || "", readonly: !admin && ownTeam ? true : null,
                        placeholder: admin ? "none" : "" })),
        el("div", { class: "fit" }, el("button", { type: "submit" }, "Create key"))),
      el("p", { class: "error", role: "alert", id: "key-create-error" }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const err = form.querySelector(".error");
      err.textContent = "";
      const body = { name: field(form, "name"), role: field(form, "role") };
      const team = field(form, "team");
      if (team) body.team = team;
      try {
        const created = await api("/admin/keys", { method: "POST", body });
        notice.replaceChildren(secretBox(created.key, `New key ${created.id}`));
        form.reset();
        await refresh();
      } catch (e) { err.textContent = e.message; }
    });
    root.append(form);
  }
  root.append(el("h2", {}, "All keys"), listBox);

  async function act(path, body, what) {
    try {
      const res = await api(path, { method: "POST", body });
      if (res.key) notice.replaceChildren(secretBox(res.key, `${what} ${res.id}`));
      await refresh();
    } catch (e) { notice.replaceChildren(errorBox(e)); }
  }

  async function refresh() {
    let data;
    try { data = (await api("/admin/keys")).data; } catch (e) { listBox.replaceChildren(errorBox(e)); return; }
    data.sort((a, b) => (b.created || 0) - (a.created || 0));
    const columns = [
      { label: "Id", get: k => el("code", {}, k.id) },
      { label: "Name", get: k => k.name },
      { label: "Role", get: k => k.role },
      { label: "Team", get: k => k.team },
      { label: "Created", get: k => when(k.created) },
      { label: "Last used", get: k => when(k.last_used) },
      { label: "State", get: k => k.revoked ? el("span", { class: "bad" }, "revoked")
          : k.rotated_to ? el("span", { class: "warn" }, `rotated → ${k.rotated_to}`)
          : k.expires && k.expires * 1000 < Date.now() ? el("span", { class: "warn" }, "expired")
          : el("span", { class: "ok" }, "active") },
    ];
    if (manage) {
      columns.push({ label: "Actions", get: k => k.revoked ? "" : el("span", {},
        el("button", { type: "button", class: "small", "aria-label": `Rotate key ${k.name}`,
                       onclick: () => act(`/admin/keys/${k.id}/rotate`, { overlap_s: 0 }, "Rotated key") }, "Rotate"),
        el("button", { type: "button", class: "small danger", "aria-label": `Revoke key ${k.name}`,
                       onclick: () => { if (confirm(`Revoke ${k.name} (${k.id})? Its callers stop at once.`)) act(`/admin/keys/${k.id}/revoke`, {}, "Revoked"); } }, "Revoke")) });
    }
    listBox.replaceChildren(table(columns, data, { empty: "No keys yet." }));
  }
  await refresh();
}
