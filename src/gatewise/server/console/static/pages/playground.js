// Playground: chat, streamed or not, with a model picker from /v1/models and the step
// timeline the gateway sends (`event: gatewise.step` frames of a stream, `gatewise_steps` of
// a plain reply) when asked with `x-gatewise-steps: 1`.
import { api, el, heading, sseFrames, state } from "../lib.js";

// Step data worth a line in the timeline (ids, names and numbers only: the gateway never
// puts prompt text in a step).
function summary(step) {
  const skip = new Set(["step", "t_ms", "chunks", "branch"]);
  return Object.entries(step).filter(([k]) => !skip.has(k)).map(([k, v]) =>
    `${k}=${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join("  ");
}

// A retrieval's chunks (the `rag` step's `chunks`), one line each in rank order: the source
// number the answer cites or why the chunk was left out, where it came from, its scores and,
// for the team's own unguarded documents, a short preview (text, never HTML).
const LEFT_OUT = { below_min_score: "below min score", injection_dropped: "dropped: injection",
                   budget_dropped: "dropped: context" };

function num(v) { return typeof v === "number" ? Number(v.toPrecision(4)).toString() : "?"; }

function chunkList(chunks) {
  return el("ul", { class: "chunks" }, chunks.map(c => {
    const where = c.status === "source" ? `[${c.source_index}]` : `(${LEFT_OUT[c.status] || c.status})`;
    const scores = Object.entries(c.scores || {}).map(([k, v]) => `${k} ${num(v)}`).join(", ");
    return el("li", { class: `chunk chunk-${c.status}` },
      `#${c.rank} ${where} ${c.source || c.document_id} · ${c.chunk_id} · score ${num(c.score)}` +
      (scores ? ` (${scores})` : "") + (c.flagged ? " · flagged" : ""),
      c.preview ? el("q", { class: "preview" }, c.preview) : null);
  }));
}

// Which branch of an orchestration (parallel, consensus, cascade) a step belongs to.
function branchLabel(b) {
  return b ? el("span", { class: "branch" }, `branch ${b.index} ${b.model}${b.judge ? " judge" : ""}`) : null;
}

export async function render(root) {
  heading(root, "Playground", "Chat through the gateway with your key; each step of the " +
    "pipeline (route, cache, attempts, guards, first token, done) appears in the timeline.");
  const models = await api("/v1/models");
  const ids = models.data.map(m => m.id).sort();
  const picker = el("select", { id: "pg-model", name: "model" }, ids.map(id => el("option", { value: id }, id)));
  const system = el("textarea", { id: "pg-system", name: "system", rows: 2, placeholder: "Optional system prompt" });
  const prompt = el("textarea", { id: "pg-prompt", name: "prompt", required: true, placeholder: "Say something" });
  const streamed = el("input", { type: "checkbox", id: "pg-stream", name: "stream", checked: true });
  const send = el("button", { type: "submit", id: "pg-send" }, "Send");
  const stop = el("button", { type: "button", class: "ghost", id: "pg-stop", hidden: true }, "Stop");
  const clear = el("button", { type: "button", class: "small", id: "pg-clear" }, "New chat");
  const log = el("div", { class: "messages", id: "pg-messages", "aria-live": "polite", "aria-label": "Conversation", role: "log" });
  const timeline = el("ol", { class: "timeline", id: "pg-timeline", "aria-label": "Step timeline" });
  const stats = el("p", { class: "muted", id: "pg-stats" });
  const form = el("form", { id: "pg-form" },
    el("div", { class: "row" },
      el("div", {}, el("label", { for: "pg-model" }, "Model"), picker),
      el("div", { class: "fit" }, clear)),
    el("label", { for: "pg-system" }, "System prompt"), system,
    el("label", { for: "pg-prompt" }, "Message"), prompt,
    el("div", { class: "row" }, el("div", { class: "fit" }, send), el("div", { class: "fit" }, stop),
      el("div", { class: "fit" }, el("label", { class: "check", for: "pg-stream" }, streamed, "Stream the reply"))));
  root.append(el("div", { class: "chat" },
    el("div", {}, el("div", { class: "card" }, log), el("div", { class: "card" }, form)),
    el("div", { class: "card" }, el("h2", {}, "Timeline"), stats, timeline)));

  let history = [];
  let controller = null;
  clear.addEventListener("click", () => { history = []; log.replaceChildren(); timeline.replaceChildren(); stats.textContent = ""; });
  stop.addEventListener("click", () => controller && controller.abort());
  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
  });

  function bubble(role, text, label = role) {
    const body = el("span", { class: "text" }, text);
    const node = el("div", { class: `msg ${role}` }, el("span", { class: "who-label" }, label), body);
    log.append(node);
    log.scrollTop = log.scrollHeight;
    return body;
  }

  // The replies to one message, one per choice. An ordinary chat has one choice and keeps the
  // one plain "assistant" reply. A `parallel` orchestration answers with one choice per model,
  // `index` = the model's position in `x-gatewise-models` (or, in a stream whose headers went
  // out with its first step, in the `parallel` step); a model that failed has no choice and
  // is named in `x-gatewise-failed` (`model=ErrorType`, also in the step's `failed`).
  function replies(first) {
    const slots = new Map([[0, { body: first, text: "", seen: false }]]);
    let models = null;
    const failed = new Map();
    function slot(index) {
      let s = slots.get(index);
      if (!s) {  // a choice no model list announced (e.g. `n` > 1): its own reply all the same
        s = { body: bubble("assistant", "", `assistant · choice ${index}`), text: "", seen: false };
        s.body.parentElement.setAttribute("aria-busy", "true");
        slots.set(index, s);
      }
      return s;
    }
    return {
      setModels(list, failures) {
        if (models || !list || !list.length) return;
        models = list;
        for (const f of failures || []) {
          const i = f.lastIndexOf("=");
          if (i > 0) failed.set(f.slice(0, i), f.slice(i + 1));
        }
        const placeholder = slots.get(0);
        const nodes = list.map((model, index) => {
          const body = el("span", { class: "text" }, index === 0 ? placeholder.text : "");
          slots.set(index, { ...(index === 0 ? placeholder : { text: "", seen: false }), body });
          return el("div", { class: "msg assistant", "data-model": model, "data-index": index, "aria-busy": "true" },
            el("span", { class: "who-label" }, `assistant · ${model}`), body);
        });
        placeholder.body.parentElement.replaceWith(...nodes);
      },
      add(index, piece) {
        const s = slot(index);
        s.seen = true;
        if (piece) { s.text += piece; s.body.textContent = s.text; log.scrollTop = log.scrollHeight; }
      },
      // Models that sent no choice failed: their reply says so, with the error's type.
      finish() {
        if (!models) return;
        models.forEach((model, index) => {
          const s = slots.get(index);
          if (s.seen) return;
          const node = s.body.parentElement;
          node.className = "msg error";
          node.firstChild.textContent = `${model} · failed`;
          s.body.textContent = `no answer: ${failed.get(model) || "failed"}`;
        });
      },
      // What the conversation continues from: the first choice that has text.
      answer() {
        const found = [...slots.entries()].sort((a, b) => a[0] - b[0]).find(([, s]) => s.text);
        return found ? found[1].text : "";
      },
      nodes() { return [...slots.values()].map(s => s.body.parentElement); },
    };
  }

  function headerList(resp, name) {
    const v = resp.headers.get(name);
    return v ? v.split(",").map(x => x.trim()).filter(Boolean) : [];
  }

  function addStep(step) {
    timeline.append(el("li", { class: `step-${step.step}${step.branch ? " in-branch" : ""}` },
      el("span", { class: "t" }, `${Number(step.t_ms || 0).toFixed(1)} ms`),
      el("strong", {}, step.step), branchLabel(step.branch),
      el("div", { class: "d" }, summary(step)),
      Array.isArray(step.chunks) && step.chunks.length ? chunkList(step.chunks) : null));
    timeline.scrollTop = timeline.scrollHeight;
    if (step.step === "done" && !step.branch) {
      const u = step.usage || {};
      stats.textContent = `${u.prompt_tokens ?? "?"} in · ${u.completion_tokens ?? "?"} out · ` +
        `$${Number(step.cost_usd || 0).toFixed(6)} · ${Number(step.latency_ms || 0).toFixed(0)} ms` +
        (step.ttft_ms !== undefined ? ` · first token ${Number(step.ttft_ms).toFixed(0)} ms` : "");
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    prompt.value = "";
    timeline.replaceChildren();
    stats.textContent = "";
    history.push({ role: "user", content: text });
    bubble("user", text);
    const out = bubble("assistant", "");
    out.parentElement.setAttribute("aria-busy", "true");
    const messages = system.value.trim() ? [{ role: "system", content: system.value.trim() }, ...history] : history;
    send.disabled = true; stop.hidden = false;
    controller = new AbortController();
    const started = performance.now();
    const reply = replies(out);
    const stream = streamed.checked;
    try {
      const resp = await fetch("/v1/chat/completions", {
        method: "POST", credentials: "same-origin", signal: controller.signal,
        headers: { "content-type": "application/json", "x-gatewise-steps": "1",
                   "x-csrf-token": state.session.csrf_token },
        body: JSON.stringify(stream ? { model: picker.value, messages, stream: true,
                                        stream_options: { include_usage: true } }
                                    : { model: picker.value, messages }),
      });
      if (!resp.ok) {
        let message = `${resp.status} ${resp.statusText}`;
        try { const d = await resp.json(); message = d.error.message || message; } catch (_) { /* */ }
        if (resp.status === 401) window.dispatchEvent(new CustomEvent("gw:signed-out"));
        throw new Error(message);
      }
      reply.setModels(headerList(resp, "x-gatewise-models"), headerList(resp, "x-gatewise-failed"));
      const usageStats = (u) => {
        if (u && !stats.textContent) {
          stats.textContent = `${u.prompt_tokens} in · ${u.completion_tokens} out · ` +
            `${(performance.now() - started).toFixed(0)} ms`;
        }
      };
      if (!stream) {
        const done = await resp.json();
        for (const step of done.gatewise_steps || []) addStep(step);
        for (const c of done.choices || []) reply.add(c.index || 0, c.message && c.message.content);
        usageStats(done.usage);
      } else {
        for await (const f of sseFrames(resp.body)) {
          if (f.event === "gatewise.step") {
            const step = JSON.parse(f.data);
            if (step.step === "parallel" && !step.branch) reply.setModels(step.models, step.failed);
            addStep(step);
            continue;
          }
          if (f.data === "[DONE]") break;
          const chunk = JSON.parse(f.data);
          if (chunk.error) throw new Error(chunk.error.message || "the stream failed");
          for (const c of chunk.choices || []) reply.add(c.index || 0, c.delta && c.delta.content);
          usageStats(chunk.usage);
        }
      }
      reply.finish();
      history.push({ role: "assistant", content: reply.answer() });
    } catch (err) {
      if (err.name === "AbortError") { history.push({ role: "assistant", content: reply.answer() }); }
      else { for (const n of reply.nodes()) n.remove(); history.pop(); log.append(el("div", { class: "msg error", role: "alert" }, err.message)); }
    } finally {
      for (const n of log.querySelectorAll("[aria-busy]")) n.removeAttribute("aria-busy");
      send.disabled = false; stop.hidden = true; controller = null;
    }
  });
  return () => controller && controller.abort();
}
