// Titles: the epic title generator (POST /v1/titles). A description in; the title streams in
// while it is generated, can be edited by hand, regenerated (the cache skipped with
// `x-gatewise-cache: no-cache`) and accepted. A title served from the cache says so; a
// refusal (the team's budget, a rate limit, a field the gateway refused) says what to do.
import { api, el, heading, loadStyle, sseFrames, state } from "../lib.js";

const STYLES = ["concise", "detailed"];
const CATEGORIES = ["feature", "bug", "improvement", "task", "research", "infrastructure"];
const ACCEPTED_KEY = "gatewise.titles.accepted";
const KEEP = 10;

// What a refusal means for the person at the form (the gateway's message follows).
function explain(status, error, retryAfter) {
  const msg = (error && error.message) || "";
  const code = error && error.code;
  if (status === 402 || code === "budget_exceeded") {
    return `Your team's budget is spent, so no title was generated. ${msg}`;
  }
  if (status === 429) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again shortly.";
    return `Too many requests: the rate limit is reached.${wait} ${msg}`;
  }
  if (status === 400) return `Please check the form: ${msg}`;
  if (status === 403) return `This key may not generate titles: ${msg}`;
  return `The title could not be generated (${status}): ${msg}`;
}

class Refused extends Error {
  constructor(status, error, retryAfter) {
    super(explain(status, error, retryAfter));
    this.param = error && error.param;
  }
}

function readAccepted() {
  try {
    const list = JSON.parse(localStorage.getItem(ACCEPTED_KEY) || "[]");
    return Array.isArray(list) ? list.filter(t => typeof t === "string") : [];
  } catch (_) { return []; }
}

export async function render(root) {
  loadStyle("/console/pages/titles.css");
  heading(root, "Titles", "Describe an epic and get a title: generated through the gateway " +
    "with your key, so your team's budget and rate limits apply. Similar requests are " +
    "answered from the cache.");

  let models = [];
  try { models = (await api("/v1/models")).data.map(m => m.id).sort(); } catch (_) { /* default only */ }
  const description = el("textarea", { id: "ti-description", name: "description", rows: 5,
    required: true, maxlength: 8000, placeholder: "What is the epic about? Who is it for?" });
  const style = el("select", { id: "ti-style", name: "style" }, STYLES.map(s => el("option", { value: s }, s)));
  const maxLength = el("input", { id: "ti-max", name: "max_length", type: "number", min: 10,
    max: 200, step: 1, value: 80, required: true });
  const category = el("select", { id: "ti-category", name: "category" },
    el("option", { value: "" }, "(none)"), CATEGORIES.map(c => el("option", { value: c }, c)));
  const model = el("select", { id: "ti-model", name: "model" },
    el("option", { value: "" }, "(the gateway's title model)"), models.map(m => el("option", { value: m }, m)));
  const examples = el("textarea", { id: "ti-examples", name: "examples", rows: 3,
    "aria-describedby": "ti-examples-hint", placeholder: "Add audit log export\nSupport SCIM provisioning" });
  const generate = el("button", { type: "submit", id: "ti-generate" }, "Generate");
  const form = el("form", { id: "ti-form", class: "card", "aria-labelledby": "ti-form-title" },
    el("h2", { id: "ti-form-title" }, "Epic"),
    el("label", { for: "ti-description" }, "Description"), description,
    el("div", { class: "row" },
      el("div", {}, el("label", { for: "ti-style" }, "Style"), style),
      el("div", {}, el("label", { for: "ti-max" }, "Maximum length (characters)"), maxLength),
      el("div", {}, el("label", { for: "ti-category" }, "Category"), category),
      el("div", {}, el("label", { for: "ti-model" }, "Model"), model)),
    el("label", { for: "ti-examples" }, "Example titles (optional)"), examples,
    el("p", { id: "ti-examples-hint", class: "muted hint" }, "One per line, up to 10: titles your team likes."),
    el("div", { class: "fit" }, generate));

  const output = el("textarea", { id: "ti-title", name: "title", class: "title-out", rows: 2,
    maxlength: 200, "aria-describedby": "ti-status", placeholder: "The title appears here",
    disabled: true });
  const status = el("p", { id: "ti-status", class: "title-status muted", role: "status", "aria-live": "polite" });
  const error = el("p", { id: "ti-error", class: "error", role: "alert" });
  const regenerate = el("button", { type: "button", id: "ti-regenerate", class: "ghost", disabled: true }, "Regenerate");
  const accept = el("button", { type: "button", id: "ti-accept", disabled: true }, "Accept");
  const acceptedList = el("ol", { id: "ti-accepted", class: "accepted" });
  const noneYet = el("p", { class: "muted", id: "ti-none-accepted" }, "None yet.");
  const result = el("section", { class: "card", "aria-labelledby": "ti-result-title" },
    el("h2", { id: "ti-result-title" }, "Title"),
    el("label", { for: "ti-title" }, "Generated title (you can edit it)"), output, status,
    el("div", { class: "row actions" }, el("div", { class: "fit" }, regenerate, accept)),
    error);
  const accepted = el("section", { class: "card", "aria-labelledby": "ti-accepted-title" },
    el("h2", { id: "ti-accepted-title" }, "Accepted titles"),
    el("p", { class: "muted hint" }, "Kept in this browser only."), noneYet, acceptedList);
  root.append(el("div", { class: "titles" }, form, el("div", {}, result, accepted)));

  let controller = null;
  let last = null; // the request body of the title shown (Regenerate asks for it again)

  function showAccepted() {
    const list = readAccepted();
    acceptedList.replaceChildren(...list.map(t => el("li", {}, t)));
    acceptedList.hidden = !list.length;
    noneYet.hidden = list.length > 0;
  }

  function body() {
    const b = { description: description.value, style: style.value,
                max_length: Number(maxLength.value), stream: true };
    if (category.value) b.category = category.value;
    if (model.value) b.model = model.value;
    const ex = examples.value.split("\n").map(s => s.trim()).filter(Boolean);
    if (ex.length) b.examples = ex;
    return b;
  }

  function markInvalid(param) {
    for (const f of [description, style, maxLength, category, model, examples]) f.removeAttribute("aria-invalid");
    const name = (param || "").replace(/\[\d+\]$/, "");
    const bad = { description, style, max_length: maxLength, category, model, examples }[name];
    if (bad) { bad.setAttribute("aria-invalid", "true"); bad.focus(); }
  }

  function busy(on, label) {
    generate.disabled = on;
    regenerate.disabled = on || !last;
    accept.disabled = on || !output.value;
    generate.textContent = on && label === "generate" ? "Generating…" : "Generate";
    regenerate.textContent = on && label === "regenerate" ? "Regenerating…" : "Regenerate";
    output.setAttribute("aria-busy", on ? "true" : "false");
    if (on) { status.replaceChildren(el("span", { class: "busy" }, "Generating the title")); }
  }

  async function run(request, how) {
    if (controller) controller.abort();
    controller = new AbortController();
    error.textContent = "";
    markInvalid(null);
    const before = output.value; // shown again if this request is refused
    const beforeStatus = [...status.childNodes];
    output.value = "";
    output.disabled = true;
    busy(true, how);
    const headers = { "content-type": "application/json", "x-csrf-token": state.session.csrf_token };
    if (how === "regenerate") headers["x-gatewise-cache"] = "no-cache";
    let final = null;
    try {
      const resp = await fetch("/v1/titles", { method: "POST", credentials: "same-origin",
        signal: controller.signal, headers, body: JSON.stringify(request) });
      if (!resp.ok) {
        let err = null;
        try { err = (await resp.json()).error; } catch (_) { /* not JSON */ }
        if (resp.status === 401) window.dispatchEvent(new CustomEvent("gw:signed-out"));
        throw new Refused(resp.status, err, resp.headers.get("retry-after"));
      }
      const cache = resp.headers.get("x-gatewise-cache") || "miss";
      let text = "";
      for await (const { data } of sseFrames(resp.body)) {
        if (data === "[DONE]") break;
        const frame = JSON.parse(data);
        if (frame.error) throw new Refused(frame.error.code === "rate_limit_exceeded" ? 429 : 502, frame.error);
        if (frame.object === "title.delta") { text += frame.delta; output.value = text; }
        else if (frame.object === "title") final = frame;
      }
      if (!final) throw new Error("The stream ended before the title arrived; try again.");
      output.value = final.title; // the whole title is the truth (deltas spell it)
      last = request;
      const u = final.usage || {};
      const parts = [];
      if (final.cached) {
        parts.push(el("span", { class: "badge cached", id: "ti-cached" },
          cache === "semantic_hit" ? "from cache (similar request)" : "from cache"));
      } else {
        parts.push(el("span", { class: "badge", id: "ti-fresh" }, "generated"));
      }
      parts.push(el("span", {}, `${final.model} · ${u.total_tokens ?? 0} tokens · ` +
        `$${Number(final.cost_usd || 0).toFixed(6)} · ${final.title.length}/${request.max_length} characters`));
      status.replaceChildren(...parts);
    } catch (err) {
      if (err.name === "AbortError") return;
      output.value = before;
      status.replaceChildren(...beforeStatus);
      error.textContent = err.message;
      if (err instanceof Refused) markInvalid(err.param);
    } finally {
      output.disabled = false;
      busy(false, how);
      accept.disabled = !output.value;
      regenerate.disabled = !last;
      controller = null;
    }
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(body(), "generate"); });
  regenerate.addEventListener("click", () => last && run({ ...last }, "regenerate"));
  output.addEventListener("input", () => { accept.disabled = !output.value.trim(); });
  accept.addEventListener("click", async () => {
    const title = output.value.trim();
    if (!title) return;
    const list = [title, ...readAccepted().filter(t => t !== title)].slice(0, KEEP);
    try { localStorage.setItem(ACCEPTED_KEY, JSON.stringify(list)); } catch (_) { /* private mode */ }
    let copied = false;
    try { if (navigator.clipboard) { await navigator.clipboard.writeText(title); copied = true; } } catch (_) { /* not allowed */ }
    showAccepted();
    status.replaceChildren(el("span", { class: "badge ok", id: "ti-accepted-note" }, "accepted"),
      el("span", {}, copied ? "Copied to the clipboard and added to the accepted titles."
        : "Added to the accepted titles."));
  });
  showAccepted();
  return () => controller && controller.abort();
}
