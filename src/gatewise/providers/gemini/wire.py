"""Gemini's wire shapes: canonical requests into `generateContent` bodies, and the response
structs that come back.

Gemini differs from OpenAI in ways that matter for correctness: roles are `user`/`model` and
must alternate (consecutive turns are merged), the system prompt lives outside the turns, tool
results are matched to calls by function *name* (not id), and tool schemas are an OpenAPI
subset that rejects common JSON-schema keys. Thinking models also sign their function calls;
Gemini 3 refuses a history whose calls lost their signature, so the signature rides along
inside the canonical tool-call id and is restored when the history comes back.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.providers.base import Target
from gatewise.providers.common import parse_data_url
from gatewise.providers.gemini.schema import to_gemini_schema
from gatewise.types.ids import new_id
from gatewise.types.messages import (
    AssistantMessage,
    AudioPart,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
    text_of,
)
from gatewise.types.requests import (
    ChatRequest,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ToolChoice,
)
from gatewise.types.responses import CompletionTokensDetails, PromptTokensDetails, Usage

_encode = msgspec.json.Encoder().encode

# A tool-call id carries Gemini's thought signature after this marker (see module docstring).
SIGNATURE_MARK = "__thought__"

_VERSIONED = re.compile(r"/v1(?:beta\d*|alpha)?$")
_MIME_BY_EXT = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "webp": "image/webp", "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf",
    "mp3": "audio/mp3", "wav": "audio/wav", "mp4": "video/mp4", "txt": "text/plain",
}
_TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_TOP_LEVEL_PARAMS = ("safetySettings", "cachedContent")
_FINISH = {
    "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
    "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter", "IMAGE_PROHIBITED_CONTENT": "content_filter",
}


# --- response structs (lenient: Google adds fields often) -----------------------------------

class _Wire(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class FunctionCallWire(_Wire):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class PartWire(_Wire):
    text: str | None = None
    thought: bool = False
    thought_signature: str | None = None
    function_call: FunctionCallWire | None = None


class ContentWire(_Wire):
    parts: list[PartWire] = []
    role: str | None = None


class CandidateWire(_Wire):
    content: ContentWire | None = None
    finish_reason: str | None = None
    index: int | None = None


class UsageMetadataWire(_Wire):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    total_token_count: int | None = None
    cached_content_token_count: int | None = None
    thoughts_token_count: int | None = None


class PromptFeedbackWire(_Wire):
    block_reason: str | None = None


class GenerateContentResponse(_Wire):
    candidates: list[CandidateWire] = []
    prompt_feedback: PromptFeedbackWire | None = None
    usage_metadata: UsageMetadataWire | None = None
    model_version: str | None = None
    response_id: str | None = None
    error: dict[str, Any] | None = None


class ContentEmbeddingWire(_Wire):
    values: list[float]


class EmbedResponseWire(_Wire):
    embedding: ContentEmbeddingWire | None = None
    embeddings: list[ContentEmbeddingWire] | None = None


# --- URLs and headers ------------------------------------------------------------------------

def api_root(target: Target) -> str:
    """`{api_base}/v1beta`, tolerating a base that already ends in a version segment."""
    base = target.api_base.rstrip("/")
    if _VERSIONED.search(base):
        return base
    return f"{base}/{target.api_version or 'v1beta'}"


def model_name(model: str) -> str:
    return model.removeprefix("models/")


def model_path(model: str) -> str:
    """`models/<name>` for a URL: the name percent-encoded as one path segment, so no model
    name (configured or requested) can add path segments, a query or a fragment."""
    return f"models/{quote(model_name(model), safe='')}"


def chat_url(target: Target, stream: bool) -> str:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{api_root(target)}/{model_path(target.model)}:{method}"


def headers_for(target: Target, *, json_body: bool = True) -> dict[str, str]:
    """The key goes in a header, never the URL: URLs end up in logs and error messages."""
    h: dict[str, str] = {"content-type": "application/json"} if json_body else {}
    key = target.api_key
    if key and target.auth != "none":
        if target.auth == "bearer":
            h["authorization"] = f"Bearer {key}"
        else:
            h["x-goog-api-key"] = key
    if target.headers:
        h.update(target.headers)
    return h


# --- chat request ----------------------------------------------------------------------------

def chat_body(req: ChatRequest, target: Target) -> bytes:
    """Deployment `params` named like canonical fields fill what the caller left unset; any
    other key is a Gemini-native setting (`safetySettings`, `cachedContent` at the top level,
    the rest such as `topK` or `thinkingConfig` inside `generationConfig`)."""
    native: dict[str, Any] = {}
    if target.params:
        changes: dict[str, Any] = {}
        for k, v in target.params.items():
            if k in ChatRequest.__struct_fields__:
                if getattr(req, k) is None:
                    changes[k] = v
            else:
                native[k] = v
        if changes:
            req = msgspec.structs.replace(req, **changes)
    system, contents = convert_messages(req.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if req.tools:
        decls = []
        for tool in req.tools:
            fn = tool.function
            decl: dict[str, Any] = {"name": fn.name}
            if fn.description:
                decl["description"] = fn.description
            params = to_gemini_schema(fn.parameters) if fn.parameters else {}
            if params.get("properties"):
                decl["parameters"] = params
            decls.append(decl)
        body["tools"] = [{"functionDeclarations": decls}]
        if req.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": tool_calling_config(req.tool_choice)}
    for key in _TOP_LEVEL_PARAMS:
        if key in native:
            body[key] = native.pop(key)
    config = generation_config(req)
    config.update(native)
    if config:
        body["generationConfig"] = config
    return _encode(body)


def tool_calling_config(choice: ToolChoice) -> dict[str, Any]:
    if isinstance(choice, NamedToolChoice):
        return {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    return {"mode": _TOOL_MODES[choice]}


def generation_config(req: ChatRequest) -> dict[str, Any]:
    c: dict[str, Any] = {}
    if req.temperature is not None:
        c["temperature"] = req.temperature
    if req.top_p is not None:
        c["topP"] = req.top_p
    if req.output_limit is not None:
        c["maxOutputTokens"] = req.output_limit
    if req.stop is not None:
        c["stopSequences"] = [req.stop] if isinstance(req.stop, str) else list(req.stop)
    if req.seed is not None:
        c["seed"] = req.seed
    if req.n is not None:
        c["candidateCount"] = req.n
    if req.presence_penalty is not None:
        c["presencePenalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        c["frequencyPenalty"] = req.frequency_penalty
    rf = req.response_format
    if isinstance(rf, ResponseFormatJSONObject | ResponseFormatJSONSchema):
        c["responseMimeType"] = "application/json"
        if isinstance(rf, ResponseFormatJSONSchema) and rf.json_schema.schema:
            c["responseSchema"] = to_gemini_schema(rf.json_schema.schema)
    return c


def convert_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents). Same-role neighbours merge: Gemini wants turns to
    alternate, and all results of one round of parallel calls belong in one user turn."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for m in messages:
        if isinstance(m, SystemMessage | DeveloperMessage):
            text = text_of(m.content)
            if text:
                system.append({"text": text})
            continue
        if isinstance(m, UserMessage):
            role, parts = "user", user_parts(m.content)
        elif isinstance(m, AssistantMessage):
            role, parts = "model", []
            text = text_of(m.content)
            if text:
                parts.append({"text": text})
            for call in m.tool_calls or ():
                names[call.id] = call.function.name
                parts.append(function_call_part(call))
        elif isinstance(m, ToolMessage):
            role = "user"
            response = {"name": names.get(m.tool_call_id, m.tool_call_id),
                        "response": tool_result(text_of(m.content))}
            parts = [{"functionResponse": response}]
        else:  # pragma: no cover - the Message union is closed
            continue
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def user_parts(content: str | list[Any]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, TextPart):
            if p.text:
                parts.append({"text": p.text})
        elif isinstance(p, ImagePart):
            parts.append(media_part(p.image_url.url))
        elif isinstance(p, AudioPart):
            fmt = p.input_audio.format
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": p.input_audio.data}})
        elif isinstance(p, FilePart):
            f = p.file
            if f.file_data:
                parts.append(media_part(f.file_data, f.filename))
            elif f.file_id:
                parts.append(media_part(f.file_id, f.filename))
    return parts


def media_part(url: str, filename: str | None = None) -> dict[str, Any]:
    parsed = parse_data_url(url)
    if parsed is not None:
        inline = parsed[0] or _guess_mime(filename or "") or "application/octet-stream"
        return {"inlineData": {"mimeType": inline, "data": parsed[1]}}
    data: dict[str, Any] = {"fileUri": url}
    guessed = _guess_mime(filename or url)
    if guessed:
        data["mimeType"] = guessed
    return {"fileData": data}


def _guess_mime(name: str) -> str | None:
    path = name.split("?", 1)[0].split("#", 1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _MIME_BY_EXT.get(ext)


def function_call_part(call: ToolCall) -> dict[str, Any]:
    try:
        args = json.loads(call.function.arguments) if call.function.arguments.strip() else {}
    except ValueError:
        raise InvalidRequestError(
            f"tool call '{call.id}' has arguments that are not JSON", param="messages"
        ) from None
    part: dict[str, Any] = {"functionCall": {"name": call.function.name,
                                             "args": args if isinstance(args, dict) else {}}}
    _, mark, signature = call.id.partition(SIGNATURE_MARK)
    if mark and signature:
        part["thoughtSignature"] = signature
    return part


def tool_result(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": text}


# --- responses -------------------------------------------------------------------------------

def finish_reason(raw: str | None, has_calls: bool) -> str | None:
    if raw is None:
        return None
    mapped = _FINISH.get(raw, "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def usage_from(meta: UsageMetadataWire) -> Usage:
    """Thinking tokens are billed as output, so they count into completion_tokens."""
    thoughts = meta.thoughts_token_count or 0
    completion = meta.candidates_token_count + thoughts
    total = meta.total_token_count
    return Usage(
        prompt_tokens=meta.prompt_token_count,
        completion_tokens=completion,
        total_tokens=total if total is not None else meta.prompt_token_count + completion,
        prompt_tokens_details=(
            PromptTokensDetails(cached_tokens=meta.cached_content_token_count)
            if meta.cached_content_token_count is not None else None
        ),
        completion_tokens_details=(
            CompletionTokensDetails(reasoning_tokens=thoughts)
            if meta.thoughts_token_count is not None else None
        ),
    )


def tool_call_id(call: FunctionCallWire, signature: str | None) -> str:
    base = call.id or new_id("call")
    return f"{base}{SIGNATURE_MARK}{signature}" if signature else base


def split_parts(content: ContentWire | None) -> tuple[str, list[tuple[FunctionCallWire, str | None]]]:
    """(visible text, [(function call, thought signature)]); thought summaries are dropped."""
    if content is None:
        return "", []
    texts: list[str] = []
    calls: list[tuple[FunctionCallWire, str | None]] = []
    for p in content.parts:
        if p.function_call is not None:
            calls.append((p.function_call, p.thought_signature))
        elif p.text is not None and not p.thought:
            texts.append(p.text)
    return "".join(texts), calls


def args_json(call: FunctionCallWire) -> str:
    return _encode(call.args or {}).decode()
