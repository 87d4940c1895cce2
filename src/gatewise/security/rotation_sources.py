"""Where a rotated provider key comes from: a command, a webhook, or OpenAI's admin API.

Each source answers `new_key(credential)` with a `NewKey` and, when it can, deletes a key it
made earlier (`delete_key`). Errors are `RotationSourceError`s whose text is written here, never
copied from what the source said: a command's stderr, a webhook's body or an admin API's error
may all carry a key, so only their sizes, statuses and exception class names are reported.

The OpenAI source speaks the organization admin API: a project service account is created per
rotation (`POST /organization/projects/{project}/service_accounts`, which answers with the
account's unredacted `api_key.value`), and the replaced one is deleted when its overlap window
ends (`DELETE .../service_accounts/{id}`), which revokes its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import msgspec

from gatewise.config.schema_ops import RotationSourceConfig
from gatewise.errors import ConfigError
from gatewise.transport.base import HttpRequest, HttpResponse, Timeouts, Transport

_MAX_OUTPUT = 64 * 1024
_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode


class RotationSourceError(Exception):
    """A source gave no usable key. The message is safe to store and show (no key, no body)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    secret: str = field(repr=False)  # never in a log line or a traceback
    # The provider's id for this key (an OpenAI service account), when the source can delete.
    key_id: str | None = None


class RotationSource(Protocol):
    kind: str

    async def new_key(self, credential: str) -> NewKey: ...

    async def delete_key(self, key_id: str) -> None:
        """Revokes a key this source made (after its overlap window)."""
        ...


def _timeouts(total: float) -> Timeouts:
    return Timeouts(total=total, connect=min(total, 10.0), read=total)


class CommandSource:
    """Runs `argv` without a shell; stdout, stripped, is the new key. A non-zero exit, a
    timeout or an empty answer is a failure; stderr is never kept (only its length)."""

    kind = "command"

    def __init__(self, argv: list[str], timeout_s: float) -> None:
        self.argv = list(argv)
        self.timeout_s = timeout_s

    async def new_key(self, credential: str) -> NewKey:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise RotationSourceError(
                f"command could not start ({type(exc).__name__})") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RotationSourceError(
                f"command timed out after {self.timeout_s:g} s") from None
        if proc.returncode != 0:
            raise RotationSourceError(
                f"command exited with status {proc.returncode} (stderr: {len(err)} bytes)")
        if len(out) > _MAX_OUTPUT:
            raise RotationSourceError(f"command printed more than {_MAX_OUTPUT} bytes")
        secret = out.decode("utf-8", "replace").strip()
        if not secret:
            raise RotationSourceError("command printed no key")
        return NewKey(secret)

    async def delete_key(self, key_id: str) -> None:
        return None


class WebhookSource:
    """POSTs `{"credential": name}` to `url` (with `headers`, already resolved) and reads
    `{"key": "..."}` from a 2xx JSON answer, through the gateway's transport."""

    kind = "webhook"

    def __init__(self, url: str, headers: dict[str, str], transport: Transport,
                 timeout_s: float) -> None:
        self.url = url
        self.headers = {**headers, "content-type": "application/json"}
        self.transport = transport
        self.timeout_s = timeout_s

    async def new_key(self, credential: str) -> NewKey:
        resp = await _send(self.transport, HttpRequest(
            "POST", self.url, dict(self.headers), _encode({"credential": credential}),
            _timeouts(self.timeout_s)), "webhook")
        key = _json(resp, "webhook").get("key")
        if not isinstance(key, str) or not key.strip():
            raise RotationSourceError("webhook answer has no 'key' string")
        return NewKey(key.strip())

    async def delete_key(self, key_id: str) -> None:
        return None


class OpenAIAdminSource:
    """One OpenAI project service account per rotation; its API key is the new key, and the
    account's id is the key's id, deleted (revoking the key) after the overlap window."""

    kind = "openai_admin"

    def __init__(self, api_base: str, admin_key: str, project_id: str, transport: Transport,
                 timeout_s: float, *, clock: Callable[[], float]) -> None:
        self.base = f"{api_base.rstrip('/')}/organization/projects/{quote(project_id, safe='')}"
        self.headers = {"authorization": f"Bearer {admin_key}",
                        "content-type": "application/json"}
        self.transport = transport
        self.timeout_s = timeout_s
        self._clock = clock

    async def new_key(self, credential: str) -> NewKey:
        stamp = int(self._clock())
        body = _encode({"name": f"gatewise-{credential}-{stamp}"[:64]})
        resp = await _send(self.transport, HttpRequest(
            "POST", f"{self.base}/service_accounts", dict(self.headers), body,
            _timeouts(self.timeout_s)), "admin API")
        data = _json(resp, "admin API")
        account_id, api_key = data.get("id"), data.get("api_key")
        value = api_key.get("value") if isinstance(api_key, dict) else None
        if not isinstance(value, str) or not value:
            raise RotationSourceError("admin API answer has no api_key.value")
        if not isinstance(account_id, str) or not _ID.fullmatch(account_id):
            raise RotationSourceError("admin API answer has no usable service account id")
        return NewKey(value, account_id)

    async def delete_key(self, key_id: str) -> None:
        if not _ID.fullmatch(key_id):
            raise RotationSourceError("refusing to delete a malformed service account id")
        try:
            resp = await _send(self.transport, HttpRequest(
                "DELETE", f"{self.base}/service_accounts/{key_id}", dict(self.headers), None,
                _timeouts(self.timeout_s)), "admin API")
        except _Gone:
            return  # already deleted: what we wanted
        if _json(resp, "admin API").get("deleted") is not True:
            raise RotationSourceError("admin API did not confirm the deletion")


class _Gone(RotationSourceError):
    pass


async def _send(transport: Transport, req: HttpRequest, what: str) -> HttpResponse:
    try:
        resp = await transport.send(req)
    except Exception as exc:  # transport errors name no URL here: webhook URLs carry tokens
        raise RotationSourceError(f"{what} unreachable ({type(exc).__name__})") from None
    if resp.status == 404 and req.method == "DELETE":
        raise _Gone(f"{what} answered HTTP 404")
    if not 200 <= resp.status < 300:
        raise RotationSourceError(f"{what} answered HTTP {resp.status}")
    return resp


def _json(resp: HttpResponse, what: str) -> dict[str, Any]:
    try:
        data = _decode(resp.body)
    except msgspec.DecodeError:
        raise RotationSourceError(f"{what} answer is not JSON") from None
    if not isinstance(data, dict):
        raise RotationSourceError(f"{what} answer is not a JSON object")
    return data


def build_source(name: str, cfg: RotationSourceConfig, *, transport: Transport,
                 secret: Callable[[str | None, str], str | None], clock: Callable[[], float],
                 file: str | None = None) -> RotationSource:
    """`secret(value, path)` resolves a secret reference (`env:`, `file:`) once, at build
    time; a field the source needs and lacks is a `ConfigError` naming its key."""
    path = f"security.rotation.{name}"

    def missing(key: str, what: str) -> ConfigError:
        return ConfigError(f"the {cfg.source} source needs {what}", file=file,
                           path=f"{path}.{key}")

    if cfg.source == "command":
        if not cfg.command:
            raise missing("command", "an argv list")
        return CommandSource(cfg.command, cfg.timeout_s)
    if cfg.source == "webhook":
        if not cfg.url:
            raise missing("url", "a url")
        headers = {k: secret(v, f"{path}.headers.{k}") or "" for k, v in cfg.headers.items()}
        return WebhookSource(cfg.url, headers, transport, cfg.timeout_s)
    admin_key = secret(cfg.admin_key, f"{path}.admin_key")
    if not admin_key:
        raise missing("admin_key", "an admin key")
    if not cfg.project_id:
        raise missing("project_id", "a project id")
    return OpenAIAdminSource(cfg.api_base or "https://api.openai.com/v1", admin_key,
                             cfg.project_id, transport, cfg.timeout_s, clock=clock)
