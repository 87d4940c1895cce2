"""Masking a `ChatRequest` before it leaves, and unmasking what comes back.

Masked: every message's text (system, developer, user, assistant history, tool results), text
content parts, and the arguments of assistant tool calls in the history (string values inside
the JSON, so escaping stays valid). Not masked: images, audio and files (not text), message
`name` fields (OpenAI restricts them to `[A-Za-z0-9_-]`), `metadata` and tool definitions.

Actions per entity: `mask` (a vault placeholder, reversible), `redact` (`<REDACTED>`), `hash`
(`<EMAIL_ADDRESS:1a2b3c4d>`, the first 8 hex of SHA-256: joins equal values without revealing
them), `block` (the request fails with `PIIViolation` naming entity types only), `flag` (counted
and reported, text unchanged) and `allow` (ignored).

Unmasking restores placeholders in response text and, JSON-escaped, inside tool-call arguments.
`StreamUnmasker` does the same on a stream, holding back only a trailing fragment that could
still become a placeholder (`<`, `<PER`, `<PERSON_1`), never the stream.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from gatewise.guardrails.pii.engine import Finding
from gatewise.guardrails.pii.vault import PLACEHOLDER_RE, PIIVault, placeholders_in
from gatewise.types.messages import AssistantMessage, Message, TextPart, ToolCall
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta, DeltaFunctionCall, DeltaToolCall

PIIAction = Literal["mask", "redact", "hash", "block", "flag", "allow"]
REDACTED = "<REDACTED>"

FindFn = Callable[[str], list[Finding]]

# A trailing fragment that may still grow into a placeholder: `<`, then a label, `_`, digits.
_PARTIAL_RE = re.compile(r"<(?:[A-Z][A-Z0-9_]*)?$")
_MAX_PLACEHOLDER = 48


@dataclass(slots=True)
class MaskOutcome:
    """What masking found and did. `request` is the caller's own object when nothing changed."""

    request: ChatRequest
    counts: dict[str, int] = field(default_factory=dict)     # entity -> spans found
    actions: dict[str, int] = field(default_factory=dict)    # action -> spans
    blocked: tuple[str, ...] = ()                            # entity types a `block` rule hit
    masked: bool = False                                     # any reversible placeholder sent

    @property
    def changed(self) -> bool:
        return bool(self.actions.keys() - {"flag"})


class _Masker:
    """One request's masking pass: detection first, everywhere, so a `block` is decided
    before anything is rewritten; then replacement."""

    def __init__(self, find: FindFn, actions: Mapping[str, PIIAction], default: PIIAction,
                 vault: PIIVault, avoid: frozenset[str]) -> None:
        self.find = find
        self.actions = actions
        self.default = default
        self.vault = vault
        self.avoid = avoid
        self.outcome_counts: dict[str, int] = {}
        self.action_counts: dict[str, int] = {}
        self.blocked: set[str] = set()
        self.masked = False
        self._cache: dict[str, list[Finding]] = {}

    def action(self, entity: str) -> PIIAction:
        return self.actions.get(entity, self.default)

    def scan(self, text: str) -> list[Finding]:
        hit = self._cache.get(text)
        if hit is None:
            hit = [f for f in self.find(text) if self.action(f.entity) != "allow"]
            self._cache[text] = hit
            for f in hit:
                self.outcome_counts[f.entity] = self.outcome_counts.get(f.entity, 0) + 1
                act = self.action(f.entity)
                self.action_counts[act] = self.action_counts.get(act, 0) + 1
                if act == "block":
                    self.blocked.add(f.entity)
        return hit

    def rewrite(self, text: str) -> str:
        findings = self._cache.get(text)
        if findings is None:
            findings = self.scan(text)
        if not findings:
            return text
        out: list[str] = []
        pos = 0
        for f in findings:
            act = self.action(f.entity)
            if act == "flag":
                continue
            value = text[f.start:f.end]
            out.append(text[pos:f.start])
            if act == "redact":
                out.append(REDACTED)
            elif act == "hash":
                out.append(f"<{f.entity}:{hashlib.sha256(value.encode()).hexdigest()[:8]}>")
            else:
                out.append(self.vault.placeholder_for(f.entity, value, avoid=self.avoid))
                self.masked = True
            pos = f.end
        out.append(text[pos:])
        return "".join(out)


def mask_request(request: ChatRequest, find: FindFn, vault: PIIVault, *,
                 actions: Mapping[str, PIIAction] | None = None,
                 default: PIIAction = "mask") -> MaskOutcome:
    """Masks a copy of `request` (the caller's object is never touched). With a `block` hit
    nothing is rewritten and `outcome.blocked` names the entity types."""
    texts = [t for m in request.messages for t in _texts_of(m)]
    avoid = frozenset(p for t in texts if "<" in t for p in placeholders_in(t))
    masker = _Masker(find, actions or {}, default, vault, avoid)
    for t in texts:
        masker.scan(t)
    outcome = MaskOutcome(request, masker.outcome_counts, masker.action_counts)
    if masker.blocked:
        outcome.blocked = tuple(sorted(masker.blocked))
        return outcome
    if not outcome.changed:
        return outcome
    messages = [_mask_message(m, masker) for m in request.messages]
    outcome.request = msgspec.structs.replace(request, messages=messages)
    outcome.masked = masker.masked
    return outcome


def text_size(request: ChatRequest) -> int:
    """Characters of message text and tool-call arguments: what masking will read, counted
    without parsing anything (where the work is run is decided on it)."""
    total = 0
    for m in request.messages:
        content = m.content
        if isinstance(content, str):
            total += len(content)
        elif content is not None:
            total += sum(len(p.text) for p in content if isinstance(p, TextPart))
        if isinstance(m, AssistantMessage):
            total += len(m.refusal or "")
            total += sum(len(tc.function.arguments) for tc in m.tool_calls or ())
    return total


def _texts_of(m: Message) -> list[str]:
    """Every string of a message that masking looks at (JSON argument values included)."""
    out: list[str] = []
    content = m.content
    if isinstance(content, str):
        out.append(content)
    elif content is not None:
        out.extend(p.text for p in content if isinstance(p, TextPart))
    if isinstance(m, AssistantMessage):
        if m.refusal:
            out.append(m.refusal)
        for tc in m.tool_calls or ():
            _collect_json_strings(tc.function.arguments, out)
    return out


def _collect_json_strings(arguments: str, out: list[str]) -> None:
    try:
        doc = json.loads(arguments)
    except ValueError:
        out.append(arguments)
        return
    _walk(doc, out.append)


def _walk(doc: Any, visit: Callable[[str], Any]) -> Any:
    """Calls `visit` on every string value (and number, as text) of a JSON document and
    returns the document rebuilt from what `visit` returned."""
    if isinstance(doc, str):
        return visit(doc)
    if isinstance(doc, dict):
        return {k: _walk(v, visit) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_walk(v, visit) for v in doc]
    if isinstance(doc, int | float) and not isinstance(doc, bool):
        text = str(doc)
        new = visit(text)
        return doc if new is None or new == text else new
    return doc


def _mask_message(m: Message, masker: _Masker) -> Message:
    changes: dict[str, Any] = {}
    content = m.content
    if isinstance(content, str):
        new = masker.rewrite(content)
        if new != content:
            changes["content"] = new
    elif content is not None:
        parts = [msgspec.structs.replace(p, text=masker.rewrite(p.text)) if isinstance(p, TextPart)
                 else p for p in content]
        if any(a is not b for a, b in zip(parts, content, strict=True)):
            changes["content"] = parts
    if isinstance(m, AssistantMessage):
        if m.refusal:
            changes["refusal"] = masker.rewrite(m.refusal)
        if m.tool_calls:
            changes["tool_calls"] = [_mask_tool_call(tc, masker) for tc in m.tool_calls]
    return msgspec.structs.replace(m, **changes) if changes else m


def _mask_tool_call(tc: ToolCall, masker: _Masker) -> ToolCall:
    args = tc.function.arguments
    try:
        doc = json.loads(args)
    except ValueError:
        new_args = masker.rewrite(args)
    else:
        new_doc = _walk(doc, masker.rewrite)
        new_args = args if new_doc == doc else json.dumps(new_doc, ensure_ascii=False)
    if new_args == args:
        return tc
    return msgspec.structs.replace(tc, function=msgspec.structs.replace(tc.function, arguments=new_args))


# -- unmasking -------------------------------------------------------------------------------

def unmask_text(text: str, mapping: Mapping[str, str]) -> str:
    if "<" not in text or not mapping:
        return text
    return PLACEHOLDER_RE.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)


def unmask_json_text(text: str, mapping: Mapping[str, str]) -> str:
    """For tool-call arguments: values go in JSON-escaped (a value with a quote or a
    backslash must not break the JSON the placeholder sat in)."""
    if "<" not in text or not mapping:
        return text

    def sub(m: re.Match[str]) -> str:
        value = mapping.get(m.group(0))
        return m.group(0) if value is None else json.dumps(value, ensure_ascii=False)[1:-1]

    return PLACEHOLDER_RE.sub(sub, text)


def unmask_completion(result: ChatCompletion, mapping: Mapping[str, str]) -> ChatCompletion:
    """A copy of `result` with placeholders restored (the original may be cached)."""
    if not mapping:
        return result
    choices = []
    for ch in result.choices:
        msg = ch.message
        changes: dict[str, Any] = {}
        if msg.content:
            changes["content"] = unmask_text(msg.content, mapping)
        if msg.refusal:
            changes["refusal"] = unmask_text(msg.refusal, mapping)
        if msg.tool_calls:
            changes["tool_calls"] = [
                msgspec.structs.replace(tc, function=msgspec.structs.replace(
                    tc.function, arguments=unmask_json_text(tc.function.arguments, mapping)))
                for tc in msg.tool_calls]
        choices.append(msgspec.structs.replace(ch, message=msgspec.structs.replace(msg, **changes))
                       if changes else ch)
    return msgspec.structs.replace(result, choices=choices)


def split_safe(text: str) -> tuple[str, str]:
    """(ready, held): `held` is the trailing fragment that may still become a placeholder."""
    i = text.rfind("<", max(0, len(text) - _MAX_PLACEHOLDER))
    if i < 0:
        return text, ""
    tail = text[i:]
    if _PARTIAL_RE.match(tail) or _is_open_number(tail):
        return text[:i], tail
    return text, ""


def _is_open_number(tail: str) -> bool:
    """`<PERSON_1` (no `>` yet) may still become `<PERSON_12>`; `_PARTIAL_RE` covers the label."""
    if tail.endswith(">"):
        return False
    j = tail.rfind("_")
    return j > 1 and tail[j + 1:].isdigit() and _PARTIAL_RE.match(tail[:j + 1]) is not None


class StreamUnmasker:
    """A `ChunkTransform`: restores placeholders in `delta.content`, `delta.refusal` and
    streamed tool-call arguments, per choice and per tool call. Each field keeps back at most
    the fragment that could still be a placeholder; it goes out with the next chunk of the same
    field, at the choice's `finish_reason`, or at the end of the stream."""

    __slots__ = ("_held", "_last", "_mapping")

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = mapping
        # (choice index, field, tool-call index) -> held text
        self._held: dict[tuple[int, str, int], str] = {}
        self._last: ChatCompletionChunk | None = None

    def _take(self, key: tuple[int, str, int], piece: str, final: bool) -> str:
        text = self._held.pop(key, "") + piece
        if not final:
            text, held = split_safe(text)
            if held:
                self._held[key] = held
        if key[1] == "args":
            return unmask_json_text(text, self._mapping)
        return unmask_text(text, self._mapping)

    def apply(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        self._last = chunk
        if not chunk.choices:
            # A usage-only chunk: whatever is still held belongs before it.
            return [*self.finish(), chunk]
        choices = [self._choice(ch) for ch in chunk.choices]
        if all(a is b for a, b in zip(choices, chunk.choices, strict=True)):
            return [chunk]
        return [msgspec.structs.replace(chunk, choices=choices)]

    def _choice(self, ch: ChunkChoice) -> ChunkChoice:
        d = ch.delta
        final = ch.finish_reason is not None
        idx = ch.index
        changes: dict[str, Any] = {}
        if d.content is not None or (final and (idx, "content", 0) in self._held):
            changes["content"] = self._take((idx, "content", 0), d.content or "", final)
        if d.refusal is not None or (final and (idx, "refusal", 0) in self._held):
            changes["refusal"] = self._take((idx, "refusal", 0), d.refusal or "", final)
        calls = list(d.tool_calls or ())
        seen = {tc.index for tc in calls}
        if final:  # flush argument fragments of calls this chunk does not mention
            calls += [DeltaToolCall(index=k[2]) for k in list(self._held)
                      if k[0] == idx and k[1] == "args" and k[2] not in seen]
        if calls:
            changes["tool_calls"] = [self._tool_call(idx, tc, final) for tc in calls]
        if not changes:
            return ch
        if changes.get("content") == "" and d.content is None:
            changes["content"] = None
        return msgspec.structs.replace(ch, delta=msgspec.structs.replace(d, **changes))

    def _tool_call(self, idx: int, tc: DeltaToolCall, final: bool) -> DeltaToolCall:
        key = (idx, "args", tc.index)
        fn = tc.function
        piece = fn.arguments if fn is not None and fn.arguments is not None else ""
        if not piece and key not in self._held:
            return tc
        text = self._take(key, piece, final)
        new_fn = (msgspec.structs.replace(fn, arguments=text) if fn is not None
                  else DeltaFunctionCall(arguments=text))
        return msgspec.structs.replace(tc, function=new_fn)

    def finish(self) -> list[ChatCompletionChunk]:
        """Releases every held fragment (unfinished placeholders go out as they are)."""
        if not self._held:
            return []
        by_choice: dict[int, Delta] = {}
        for (idx, kind, tc_index), _ in sorted(self._held.items()):
            d = by_choice.setdefault(idx, Delta())
            text = self._take((idx, kind, tc_index), "", True)
            if kind == "content":
                d.content = text
            elif kind == "refusal":
                d.refusal = text
            else:
                        d.tool_calls = [*(d.tool_calls or []),
                                DeltaToolCall(index=tc_index, function=DeltaFunctionCall(arguments=text))]
        last = self._last
        return [ChatCompletionChunk(
            id=last.id if last else "", created=last.created if last else 0,
            model=last.model if last else "",
            choices=[ChunkChoice(index=i, delta=d) for i, d in sorted(by_choice.items())])]
