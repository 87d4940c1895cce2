// The console shell: sign-in, the nav (built from pages.js), hash routing (#/<page>), and
// loading each page's module on first visit. No framework; pages build DOM with lib.el.
import { PAGES } from "./pages.js";
import { api, can, el, state, errorBox } from "./lib.js";

const $ = (id) => document.getElementById(id);
let cleanup = null;

// The first moment the console answers input (the sign-in form, or the first page rendered):
// a User Timing mark, so a test or a real-user monitor reads "time to interactive" from the
// browser's own clock.
function interactive() {
  if (!performance.getEntriesByName("gw:interactive").length) performance.mark("gw:interactive");
}

function visible() {
  return PAGES.filter(p => can(p.needs));
}

function showSignIn(message) {
  state.session = null;
  if (cleanup) { cleanup(); cleanup = null; }
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("page").replaceChildren();
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  document.title = "Sign in · gatewise console";
  $("signin-key").focus();
  interactive();
}

function showConsole() {
  const s = state.session;
  $("signin").hidden = true;
  $("signout").hidden = false;
  $("who").textContent = `${s.key_id || "?"} · ${s.role || "admin"}${s.team ? " · team " + s.team : ""}`;
  const list = $("nav-list");
  list.replaceChildren(...visible().map(p =>
    el("li", {}, el("a", { href: `#/${p.id}`, "data-page": p.id }, p.title))));
  $("nav").hidden = false;
  route();
}

async function route() {
  if (!state.session) return;
  const pages = visible();
  const wanted = location.hash.replace(/^#\/?/, "");
  const page = pages.find(p => p.id === wanted) || pages[0];
  for (const a of document.querySelectorAll("#nav-list a")) {
    if (a.dataset.page === (page && page.id)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (cleanup) { cleanup(); cleanup = null; }
  const root = $("page");
  root.replaceChildren();
  root.dataset.page = page ? page.id : "";
  if (!page) {
    root.append(el("h1", {}, "Nothing to show"),
      el("p", {}, "This key holds no permission any console page needs."));
    return;
  }
  document.title = `${page.title} · gatewise console`;
  root.setAttribute("aria-busy", "true");
  try {
    const mod = await import(`./pages/${page.id}.js`);
    const done = await mod.render(root, { api, can, el, session: state.session, page });
    if (typeof done === "function") cleanup = done;
  } catch (err) {
    root.append(errorBox(err));
  } finally {
    root.removeAttribute("aria-busy");
    root.dataset.ready = "1";
    interactive();
  }
}

async function signIn(ev) {
  ev.preventDefault();
  const input = $("signin-key");
  const button = ev.target.querySelector("button");
  button.disabled = true;
  $("signin-error").textContent = "";
  try {
    const resp = await fetch("/console/session", {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: input.value }),
    });
    const data = await resp.json();
    if (!resp.ok) throw new Error(data.error ? data.error.message : resp.statusText);
    input.value = "";
    state.session = data;
    showConsole();
  } catch (err) {
    $("signin-error").textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try { await api("/console/session", { method: "DELETE" }); } catch (_) { /* ended anyway */ }
  showSignIn("Signed out.");
}

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  window.addEventListener("gw:signed-out", () => showSignIn("Your session ended; sign in again."));
  try {
    const resp = await fetch("/console/session", { credentials: "same-origin" });
    const data = resp.ok ? await resp.json() : null;
    if (data && data.signed_in) {
      state.session = data;
      showConsole();
      return;
    }
  } catch (_) { /* offline: sign-in form */ }
  showSignIn();
}

start();
