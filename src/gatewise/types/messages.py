"""Chat messages in OpenAI's shape: the one message format every provider is translated from.

Messages are a tagged union on `role` and content parts on `type`, so decoding a request both
validates it and picks the right class in one pass (msgspec, no per-request model building), and
an unknown role or part type is rejected with the exact JSON path that is wrong.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class _Base(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    pass


class TextPart(_Base, tag="text", tag_field="type"):
    text: str


class ImageURL(_Base):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Base, tag="image_url", tag_field="type"):
    image_url: ImageURL


class InputAudio(_Base):
    data: str
    format: str


class AudioPart(_Base, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileData(_Base):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Base, tag="file", tag_field="type"):
    file: FileData


class RefusalPart(_Base, tag="refusal", tag_field="type"):
    refusal: str


UserContentPart = TextPart | ImagePart | AudioPart | FilePart
AssistantContentPart = TextPart | RefusalPart


class _Lenient(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Shared by requests and upstream responses, so it tolerates fields a provider adds."""


class FunctionCall(_Lenient):
    name: str
    arguments: str


class ToolCall(_Lenient):
    id: str
    type: Literal["function"]
    function: FunctionCall


class SystemMessage(_Base, tag="system", tag_field="role"):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Base, tag="developer", tag_field="role"):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Base, tag="user", tag_field="role"):
    content: str | list[UserContentPart]
    name: str | None = None


class AssistantMessage(_Base, tag="assistant", tag_field="role"):
    content: str | list[AssistantContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    name: str | None = None


class ToolMessage(_Base, tag="tool", tag_field="role"):
    content: str | list[TextPart]
    tool_call_id: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


def text_of(content: str | list[TextPart] | list[UserContentPart] | list[AssistantContentPart] | None) -> str:
    """The plain text of a message's content, joining text parts; other parts are skipped."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, TextPart))
