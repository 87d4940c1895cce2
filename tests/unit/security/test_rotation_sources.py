"""Rotation sources: a command's stdout, a webhook's `{"key": ...}`, OpenAI's service-account
API. What a source says besides the key (stderr, bodies, error texts) never reaches an error."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import pytest

from gatewise.security.rotation_sources import (
    CommandSource,
    NewKey,
    OpenAIAdminSource,
    RotationSourceError,
    WebhookSource,
)
from gatewise.transport.base import ConnectError, HttpRequest, HttpResponse

CANARY = "sk-CANARY-in-a-source-9999999999"


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_command_prints_the_new_key_on_stdout() -> None:
    source = CommandSource(_py("print('  sk-from-command-0123456789  ')"), timeout_s=10)
    assert await source.new_key("openai-main") == NewKey("sk-from-command-0123456789")


async def test_a_command_that_fails_reports_its_status_and_only_the_size_of_its_stderr() -> None:
    code = f"import sys; sys.stderr.write('vault said {CANARY}'); print('{CANARY}'); sys.exit(3)"
    with pytest.raises(RotationSourceError) as caught:
        await CommandSource(_py(code), timeout_s=10).new_key("x")
    text = str(caught.value)
    stderr = len(f"vault said {CANARY}")
    assert "status 3" in text and f"stderr: {stderr} bytes" in text and CANARY not in text


async def test_a_command_that_prints_nothing_fails() -> None:
    with pytest.raises(RotationSourceError, match="no key"):
        await CommandSource(_py("print('   ')"), timeout_s=10).new_key("x")


async def test_a_command_that_hangs_is_killed_at_its_timeout() -> None:
    with pytest.raises(RotationSourceError, match=r"timed out after 0\.3 s"):
        await CommandSource(_py("import time; time.sleep(30)"), timeout_s=0.3).new_key("x")


async def test_a_command_that_cannot_start_fails_without_its_path() -> None:
    with pytest.raises(RotationSourceError) as caught:
        await CommandSource(["/nonexistent/rotate-key", CANARY], timeout_s=5).new_key("x")
    assert "could not start" in str(caught.value) and CANARY not in str(caught.value)


class Scripted:
    """A transport answering from a script, recording each request."""

    def __init__(self, *answers: HttpResponse | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def open_stream(self, request: HttpRequest) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def _json(status: int, data: Any) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, msgspec.json.encode(data))


async def test_a_webhook_is_posted_the_credential_name_and_answers_the_key() -> None:
    transport = Scripted(_json(200, {"key": "sk-from-webhook-0123456789"}))
    source = WebhookSource("http://keys.test/rotate", {"authorization": "Bearer hook-token"},
                           transport, timeout_s=5)
    assert (await source.new_key("openai-main")).secret == "sk-from-webhook-0123456789"
    [req] = transport.sent
    assert req.method == "POST" and req.url == "http://keys.test/rotate"
    assert req.headers["authorization"] == "Bearer hook-token"
    assert msgspec.json.decode(req.body or b"") == {"credential": "openai-main"}
    assert req.timeouts.total == 5


@pytest.mark.parametrize(("answer", "message"), [
    (_json(500, {"error": CANARY}), "answered HTTP 500"),
    (_json(200, {"token": CANARY}), "no 'key' string"),
    (_json(200, [CANARY]), "not a JSON object"),
    (HttpResponse(200, {}, CANARY.encode()), "not JSON"),
    (ConnectError(f"http://keys.test/rotate?token={CANARY}"), r"unreachable \(ConnectError\)"),
])
async def test_a_webhook_failure_names_what_went_wrong_but_never_the_answer(
        answer: HttpResponse | Exception, message: str) -> None:
    source = WebhookSource("http://keys.test/rotate", {}, Scripted(answer), timeout_s=5)
    with pytest.raises(RotationSourceError, match=message) as caught:
        await source.new_key("x")
    assert CANARY not in str(caught.value)


def _admin(*answers: HttpResponse) -> tuple[OpenAIAdminSource, Scripted]:
    transport = Scripted(*answers)
    return OpenAIAdminSource("https://api.openai.test/v1/", "sk-admin-0000", "proj_abc",
                             transport, 5, clock=lambda: 1_700_000_000.0), transport


async def test_the_openai_admin_source_creates_a_service_account_and_deletes_it_later() -> None:
    created = {"object": "organization.project.service_account", "id": "svc_acct_abc",
               "name": "gatewise-openai-main-1700000000", "role": "member",
               "created_at": 1711471533,
               "api_key": {"object": "organization.project.service_account.api_key",
                           "value": "sk-svcacct-new-0123456789", "name": "Secret Key",
                           "created_at": 1711471533, "id": "key_abc"}}
    source, transport = _admin(_json(200, created), _json(200, {
        "object": "organization.project.service_account.deleted", "id": "svc_acct_abc",
        "deleted": True}))
    assert await source.new_key("openai-main") == NewKey("sk-svcacct-new-0123456789",
                                                         "svc_acct_abc")
    await source.delete_key("svc_acct_abc")
    post, delete = transport.sent
    assert post.url == "https://api.openai.test/v1/organization/projects/proj_abc/service_accounts"
    assert msgspec.json.decode(post.body or b"") == {"name": "gatewise-openai-main-1700000000"}
    assert post.headers["authorization"] == "Bearer sk-admin-0000"
    assert delete.method == "DELETE" and delete.url.endswith("/service_accounts/svc_acct_abc")


async def test_deleting_an_account_that_is_already_gone_is_fine() -> None:
    source, _ = _admin(_json(404, {"error": {"message": "No such service account"}}))
    await source.delete_key("svc_acct_gone")


@pytest.mark.parametrize("answer", [
    {"id": "svc_acct_abc", "api_key": None},
    {"id": "../../organization/admin_api_keys", "api_key": {"value": "sk-x-0123456789"}},
])
async def test_an_admin_answer_without_a_usable_key_or_id_fails(answer: dict[str, Any]) -> None:
    source, _ = _admin(_json(200, answer))
    with pytest.raises(RotationSourceError):
        await source.new_key("x")


async def test_a_malformed_account_id_is_never_put_in_a_url() -> None:
    source, transport = _admin()
    with pytest.raises(RotationSourceError, match="malformed"):
        await source.delete_key("svc/../../projects")
    assert transport.sent == []
