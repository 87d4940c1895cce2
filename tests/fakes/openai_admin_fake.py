"""A fake OpenAI organization admin API, and the API those keys open.

Speaks the real wire format of project service accounts: `POST
/v1/organization/projects/{project_id}/service_accounts` (admin key) creates an account and
answers with its unredacted `api_key.value`; `DELETE .../service_accounts/{id}` deletes it,
which revokes its key (`organization.project.service_account.deleted`). `GET /v1/models` and
`POST /v1/chat/completions` accept only live keys (those created and not deleted, plus
`initial_keys`) and answer anything else with OpenAI's 401 `invalid_api_key` body, so a test
can see a key work during its overlap window and stop working once deleted.

    state = AdminState(admin_key="sk-admin-...", project_id="proj_abc", initial_keys={...})
    with FakeServer(state.make_app) as srv: ...
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer


def _error(status: int, message: str, code: str | None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error",
                                        "param": None, "code": code}}, status=status)


@dataclass
class AdminState:
    admin_key: str
    project_id: str = "proj_gatewise"
    initial_keys: set[str] = field(default_factory=set)
    # service account id -> its key; what tests inspect.
    accounts: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    # Set to make the next creations hand out a key the API itself refuses (a broken
    # provisioning), or fail outright with this status.
    hand_out_dead_keys: bool = False
    fail_create_status: int | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def live(self, key: str) -> bool:
        return key in self.initial_keys or key in self.accounts.values()

    def make_app(self, srv: FakeServer) -> web.Application:
        def bearer(request: web.Request) -> str:
            auth = request.headers.get("Authorization", "")
            return auth[7:] if auth.startswith("Bearer ") else ""

        def admin_only(request: web.Request) -> web.Response | None:
            if bearer(request) != self.admin_key:
                return _error(401, "Invalid authorization header: an admin key is required.",
                              "invalid_api_key")
            if request.match_info["project_id"] != self.project_id:
                return _error(404, "No such project.", None)
            return None

        def key_only(request: web.Request) -> web.Response | None:
            key = bearer(request)
            if not self.live(key):
                shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
                # OpenAI echoes a masked form of the refused key: gatewise must not keep it.
                return _error(401, f"Incorrect API key provided: {shown}. You can find your "
                              "API key at https://platform.openai.com/account/api-keys.",
                              "invalid_api_key")
            return None

        async def create(request: web.Request) -> web.Response:
            refused = admin_only(request)
            if refused is not None:
                return refused
            if self.fail_create_status is not None:
                return _error(self.fail_create_status, "The server had an error.", None)
            body = await request.json()
            account = f"svc_acct_{next(self._ids):04d}"
            value = f"sk-svcacct-{secrets.token_hex(16)}"
            if not self.hand_out_dead_keys:
                self.accounts[account] = value
            now = int(time.time())
            return web.json_response({
                "object": "organization.project.service_account", "id": account,
                "name": body.get("name", ""), "role": "member", "created_at": now,
                "api_key": {"object": "organization.project.service_account.api_key",
                            "value": value, "name": "Secret Key", "created_at": now,
                            "id": f"key_{account[10:]}"}})

        async def delete(request: web.Request) -> web.Response:
            refused = admin_only(request)
            if refused is not None:
                return refused
            account = request.match_info["account"]
            if self.accounts.pop(account, None) is None:
                return _error(404, f"No such service account: {account}", None)
            self.deleted.append(account)
            return web.json_response({"object": "organization.project.service_account.deleted",
                                      "id": account, "deleted": True})

        async def models(request: web.Request) -> web.Response:
            refused = key_only(request)
            if refused is not None:
                return refused
            return web.json_response({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1721172741,
                 "owned_by": "system"}]})

        async def chat(request: web.Request) -> web.Response:
            refused = key_only(request)
            if refused is not None:
                return refused
            body = await request.json()
            return web.json_response({
                "id": "chatcmpl-admin-fake", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": "ok",
                                         "refusal": None}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})

        app = web.Application()
        base = "/v1/organization/projects/{project_id}/service_accounts"
        app.router.add_post(base, create)
        app.router.add_delete(base + "/{account}", delete)
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", chat)
        return app
