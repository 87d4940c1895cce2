// Shared helpers for console pages: the signed-in session, API calls with the CSRF token,
// DOM building from elements and text nodes (never from HTML strings), and formatting.

export const state = { session: null };

export class ApiError extends Error {
  constructor(status, message, type) { super(message); this.status = status; this.type = type; }
}

// Every API call carries the session cookie (same origin) and the CSRF token; the server
// accepts the cookie only with it. A 401 means the session ended: back to sign-in.
export async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const h = { "x-csrf-token": state.session ? state.session.csrf_token : "", ...headers };
  if (body !== undefined) h["content-type"] = "application/json";
  const resp = await fetch(path, {
    method, headers: h, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (raw && resp.ok) return resp;
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    let type = "";
    try {
      const data = await resp.json();
      if (data && data.error) { message = data.error.message || message; type = data.error.type || ""; }
    } catch (_) { /* not JSON */ }
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("gw:signed-out"));
    throw new ApiError(resp.status, message, type);
  }
  const ctype = resp.headers.get("content-type") || "";
  return ctype.includes("json") ? resp.json() : resp.text();
}

export function can(permission) {
  const perms = state.session ? state.session.permissions : [];
  if (perms.includes("admin:*") || perms.includes(permission)) return true;
  return perms.includes(permission.split(":")[0] + ":*");
}

// el("button", {class: "small", onclick: fn}, "text", child...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function heading(root, title, intro) {
  root.append(el("h1", { id: "page-title" }, title));
  if (intro) root.append(el("p", { class: "muted" }, intro));
}

// A table from rows: columns = [{label, get: row => value, num: bool}]
export function table(columns, rows, { caption, empty = "Nothing yet.", label = "Table" } = {}) {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  const t = el("table", {},
    caption ? el("caption", { class: "muted" }, caption) : null,
    el("thead", {}, el("tr", {}, columns.map(c => el("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    el("tbody", {}, rows.map(r => el("tr", {}, columns.map(c => {
      const v = c.get(r);
      return el("td", { class: c.num ? "num" : null }, v instanceof Node ? v : fmt(v));
    })))));
  // Focusable so a keyboard can scroll a table wider than the screen.
  return el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption || label }, t);
}

export function fmt(v) {
  if (v === undefined || v === null || v === "") return "—";
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en") : v.toLocaleString("en", { maximumFractionDigits: 6 });
  if (Array.isArray(v)) return v.join(", ") || "—";
  return String(v);
}

export function when(ts) {
  if (!ts) return "—";
  return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);
}

// Dollars: cents for amounts of a dollar or more, more digits for the tiny costs of one call.
export function usd(v) {
  if (v === undefined || v === null) return "—";
  const n = Number(v);
  if (n === 0) return "$0";
  return "$" + (Math.abs(n) >= 1 ? n.toFixed(2) : Math.abs(n) >= 0.01 ? n.toFixed(4) : n.toFixed(6));
}

export function errorBox(err) {
  return el("p", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

// The value of a form's field by name.
export function field(form, name) {
  const f = form.elements.namedItem(name);
  return f ? f.value.trim() : "";
}

// Loads a classic script once (vendored libraries: same origin, so the CSP allows it).
const loaded = new Map();
export function loadScript(src) {
  if (!loaded.has(src)) {
    loaded.set(src, new Promise((resolve, reject) => {
      const s = el("script", { src });
      s.addEventListener("load", resolve);
      s.addEventListener("error", () => reject(new Error(`could not load ${src}`)));
      document.head.append(s);
    }));
  }
  return loaded.get(src);
}

export function loadStyle(href) {
  if (!document.querySelector(`link[href="${href}"]`)) {
    document.head.append(el("link", { rel: "stylesheet", href }));
  }
}

// A secret shown once (a new or rotated key): the only time the console ever has it.
export function secretBox(secret, what) {
  const box = el("div", { class: "card secret", role: "status" },
    el("strong", {}, `${what}: copy it now, it will not be shown again.`),
    el("code", { id: "new-secret" }, secret),
    el("button", { type: "button", class: "small", onclick: () => navigator.clipboard && navigator.clipboard.writeText(secret) }, "Copy"),
    el("button", { type: "button", class: "small", onclick: () => box.remove() }, "Done, hide it"));
  return box;
}

export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// Splits a fetch response's SSE byte stream into frames ({event, data}), yielded as each one
// completes; `event` is "message" for a frame without an `event:` line (OpenAI's chunks).
export async function* sseFrames(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const raw = buf.slice(0, i);
      buf = buf.slice(i).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data = [];
      for (const line of raw.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}
