"""Masking and restoring JSON documents the gateway keeps after a call: a stored Responses
thread (its Response object, input items and chat messages) and conversations read back.

Only conversation text is touched: string values under `text`, `content`, `output`,
`instructions` and `refusal`, and tool-call `arguments` (JSON: values masked inside it, so
escaping stays valid), at any depth; settings (`metadata`, `tools`, the `text` format,
`usage`, image and file references) are never walked. `mask_docs` masks every text of several
documents in one pass (one vault, so a value gets one placeholder everywhere); `restore_doc`
puts back what a vault mapping holds. Both return copies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from gatewise.guardrails.pii.masking import unmask_json_text, unmask_text
from gatewise.pipeline.core import Call

# (text, is JSON tool-call arguments) -> masked texts, in order (`Guardrails.mask_texts`).
MaskTexts = Callable[[Call, Sequence[tuple[str, bool]]], Awaitable[list[str]]]

# Keys whose string value is text a person wrote or a model answered; `arguments` is JSON.
_TEXT_KEYS = frozenset({"text", "content", "output", "instructions", "refusal"})
_JSON_KEYS = frozenset({"arguments"})
# Settings, not conversation: never walked (`text` only when it is the format settings).
_SKIP = frozenset({"metadata", "tools", "usage", "reasoning", "text", "tool_choice",
                   "image_url", "file", "incomplete_details", "error"})

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder()

Slot = tuple[dict[str, Any], str, bool]


def _slots(doc: Any, out: list[Slot]) -> None:
    if isinstance(doc, list):
        for v in doc:
            _slots(v, out)
        return
    if not isinstance(doc, dict):
        return
    for k, v in doc.items():
        if isinstance(v, str):
            if k in _TEXT_KEYS or k in _JSON_KEYS:
                out.append((doc, k, k in _JSON_KEYS))
        elif k not in _SKIP:
            _slots(v, out)


def copy_doc(doc: Any) -> Any:
    return _decode.decode(_encode(doc))


async def mask_docs(mask: MaskTexts, call: Call, docs: list[Any]) -> list[Any]:
    """Copies of `docs` (JSON-shaped) with every text masked, in one pass (one vault)."""
    copies = copy_doc(docs)
    slots: list[Slot] = []
    _slots(copies, slots)
    masked = await mask(call, [(d[k], is_json) for d, k, is_json in slots])
    for (d, k, _), text in zip(slots, masked, strict=True):
        d[k] = text
    return list(copies)


def restore_doc(doc: Any, mapping: Mapping[str, str]) -> Any:
    """A copy of `doc` with the placeholders `mapping` holds restored."""
    if not mapping:
        return doc
    copy = copy_doc(doc)
    slots: list[Slot] = []
    _slots(copy, slots)
    for d, k, is_json in slots:
        d[k] = (unmask_json_text if is_json else unmask_text)(d[k], mapping)
    return copy
