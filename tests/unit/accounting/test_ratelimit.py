"""Rate limits: per key and per team sliding 60 s windows, OpenAI's x-ratelimit-* headers,
429 with retry-after, and per-deployment limits that make the router move on."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gatewise.accounting.ratelimit import (
    DeploymentLimitMiddleware,
    RateLimitMiddleware,
    format_reset,
)
from gatewise.errors import RateLimitedError, RateLimitExceeded
from gatewise.pipeline.core import Identity, build_chain
from gatewise.storage.base import WindowResult
from gatewise.storage.memory import MemoryWindow

from .support import Terminal, WordTokenizers, chat_call, deployment, drain


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


DEP = deployment("chat:fake/echo")


def limiter(clock: Clock, windows: MemoryWindow | None = None) -> RateLimitMiddleware:
    return RateLimitMiddleware(windows or MemoryWindow(clock), tokenizers=WordTokenizers(),
                               aliases={"chat": [DEP]}, clock=clock)


async def test_success_carries_openai_rate_limit_headers() -> None:
    clock = Clock()
    chain = build_chain([limiter(clock)], Terminal(DEP, prompt=2, completion_tokens=5))
    call = chat_call(identity=Identity(key_id="k1", rpm=3, tpm=100), max_tokens=10)
    await chain(call)
    h = call.response_headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("3", "2")
    assert h["x-ratelimit-reset-requests"] == "0s"
    # 2 prompt words + max_tokens 10 reserved up front
    assert (h["x-ratelimit-limit-tokens"], h["x-ratelimit-remaining-tokens"]) == ("100", "88")


async def test_over_rpm_is_429_with_retry_after_and_headers() -> None:
    clock = Clock()
    mw = limiter(clock)
    chain = build_chain([mw], Terminal(DEP))
    who = Identity(key_id="k1", rpm=2)
    await chain(chat_call(identity=who))
    clock.now += 15
    await chain(chat_call(identity=who))
    call = chat_call(identity=who)
    with pytest.raises(RateLimitExceeded) as info:
        await chain(call)
    err = info.value
    assert isinstance(err, RateLimitExceeded) and err.status == 429
    assert err.retry_after == pytest.approx(45.0)  # the first hit slides out at t+60
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-ratelimit-reset-requests"] == "45s"
    assert call.response_headers["x-ratelimit-limit-requests"] == "2"
    assert "k1" not in err.message


async def test_the_window_slides_and_admits_again() -> None:
    clock = Clock()
    terminal = Terminal(DEP)
    chain = build_chain([limiter(clock)], terminal)
    who = Identity(key_id="k1", rpm=1)
    await chain(chat_call(identity=who))
    clock.now += 59.9
    with pytest.raises(RateLimitExceeded):
        await chain(chat_call(identity=who))
    clock.now += 0.2
    await chain(chat_call(identity=who))
    assert terminal.calls == 2


async def test_a_key_refused_on_rpm_is_refused_locally_without_hitting_the_store() -> None:
    clock = Clock()

    class CountingWindow(MemoryWindow):
        hits = 0

        async def hit(self, key: str, amount: float, limit: float, window_s: float) -> WindowResult:
            CountingWindow.hits += 1
            return await super().hit(key, amount, limit, window_s)

    chain = build_chain([limiter(clock, CountingWindow(clock))], Terminal(DEP))
    who = Identity(key_id="k1", rpm=1)
    await chain(chat_call(identity=who))
    for _ in range(5):
        with pytest.raises(RateLimitExceeded):
            await chain(chat_call(identity=who))
    assert CountingWindow.hits == 2


async def test_team_limits_are_shared_by_every_key_of_the_team() -> None:
    clock = Clock()
    chain = build_chain([limiter(clock)], Terminal(DEP))
    await chain(chat_call(identity=Identity(key_id="k1", team="t", team_rpm=2)))
    await chain(chat_call(identity=Identity(key_id="k2", team="t", team_rpm=2)))
    with pytest.raises(RateLimitExceeded) as info:
        await chain(chat_call(identity=Identity(key_id="k3", team="t", team_rpm=2)))
    assert "team" in info.value.message
    await chain(chat_call(identity=Identity(key_id="k4", team="other", team_rpm=2)))


async def test_tpm_refuses_a_request_whose_estimate_does_not_fit() -> None:
    clock = Clock()
    chain = build_chain([limiter(clock)], Terminal(DEP))
    with pytest.raises(RateLimitExceeded) as info:
        await chain(chat_call(identity=Identity(key_id="k1", tpm=50), max_tokens=100))
    assert info.value.headers["x-ratelimit-limit-tokens"] == "50"  # type: ignore[attr-defined]


async def test_a_request_s_windows_go_to_the_store_in_one_call() -> None:
    """Key RPM, team RPM, key TPM, team TPM: one `hit_many` (one Redis round trip)."""
    clock = Clock()

    class CountingWindow(MemoryWindow):
        calls: list[list[str]] = []

        async def hit_many(self, hits: Sequence[tuple[str, float, float]],
                           window_s: float) -> list[WindowResult]:
            CountingWindow.calls.append([key for key, _, _ in hits])
            return await super().hit_many(hits, window_s)

    chain = build_chain([limiter(clock, CountingWindow(clock))], Terminal(DEP))
    await chain(chat_call(identity=Identity(key_id="k1", team="t", rpm=5, tpm=1000,
                                            team_rpm=50, team_tpm=10_000), max_tokens=10))
    assert CountingWindow.calls == [["rl:key:k1:rpm", "rl:team:default:t:rpm",
                                     "rl:key:k1:tpm", "rl:team:default:t:tpm"]]


async def test_a_tpm_refusal_still_counts_the_request_against_rpm() -> None:
    """As separate hits in turn always did: the windows checked before the refusal keep the
    request (OpenAI counts refused requests too); the refused window gains nothing."""
    clock = Clock()
    windows = MemoryWindow(clock)
    chain = build_chain([limiter(clock, windows)], Terminal(DEP))
    with pytest.raises(RateLimitExceeded) as info:
        await chain(chat_call(identity=Identity(key_id="k1", rpm=5, tpm=50), max_tokens=100))
    assert info.value.headers["x-ratelimit-remaining-requests"] == "4"  # type: ignore[attr-defined]
    assert (await windows.hit("rl:key:k1:rpm", 0, 5, 60)).used == 1
    assert (await windows.hit("rl:key:k1:tpm", 0, 50, 60)).used == 0


async def test_usage_beyond_the_estimate_is_added_to_the_token_window() -> None:
    clock = Clock()
    windows = MemoryWindow(clock)
    # estimate: 2 prompt words, no max_tokens (default 0): 2; real usage 2 + 40 = 42
    mw = limiter(clock, windows)
    chain = build_chain([mw], Terminal(DEP, prompt=2, completion_tokens=40))
    await chain(chat_call(identity=Identity(key_id="k1", tpm=100)))
    await mw.drain()  # added after the answer, off its path
    r = await windows.hit("rl:key:k1:tpm", 0, 100, 60)
    assert r.used == 42


async def test_stream_usage_beyond_the_estimate_is_added_when_it_ends() -> None:
    clock = Clock()
    windows = MemoryWindow(clock)
    mw = limiter(clock, windows)
    chain = build_chain([mw], Terminal(DEP, prompt=2, completion_tokens=30))
    await drain(await chain(chat_call(identity=Identity(key_id="k1", tpm=100), stream=True)))
    await mw.drain()
    assert (await windows.hit("rl:key:k1:tpm", 0, 100, 60)).used == 32


async def test_no_limits_means_no_store_traffic_and_no_headers() -> None:
    class Refuse(MemoryWindow):
        async def hit(self, key: str, amount: float, limit: float, window_s: float) -> WindowResult:
            raise AssertionError("no limit configured, no hit expected")

    call = chat_call(identity=Identity(key_id="k1"))
    await build_chain([limiter(Clock(), Refuse())], Terminal(DEP))(call)
    assert not any(k.startswith("x-ratelimit") for k in call.response_headers)


async def test_an_unreachable_window_store_fails_open() -> None:
    class Down(MemoryWindow):
        async def hit(self, key: str, amount: float, limit: float, window_s: float) -> WindowResult:
            raise ConnectionError("redis down")

    terminal = Terminal(DEP)
    await build_chain([limiter(Clock(), Down())], terminal)(
        chat_call(identity=Identity(key_id="k1", rpm=1)))
    assert terminal.calls == 1


async def test_a_full_deployment_raises_a_retryable_provider_rate_limit() -> None:
    clock = Clock()
    dep = deployment("chat:fake/busy", rpm=1)
    chain = build_chain([DeploymentLimitMiddleware(MemoryWindow(clock))], Terminal(dep))
    await chain(chat_call(dep=dep))
    with pytest.raises(RateLimitedError) as info:
        await chain(chat_call(dep=dep))
    assert info.value.retryable and info.value.retry_after == pytest.approx(60.0)
    assert "chat:fake/busy" in info.value.message


async def test_deployment_tpm_counts_the_prompt_and_adds_the_excess() -> None:
    clock = Clock()
    windows = MemoryWindow(clock)
    dep = deployment("chat:fake/small", tpm=20)
    chain = build_chain([DeploymentLimitMiddleware(windows, tokenizers=WordTokenizers())],
                        Terminal(dep, prompt=2, completion_tokens=10))
    await chain(chat_call(dep=dep))
    assert (await windows.hit("rl:dep:chat:fake/small:tpm", 0, 20, 60)).used == 12
    with pytest.raises(RateLimitedError):
        await chain(chat_call(dep=dep, max_tokens=10))


def test_reset_durations_read_like_openai_s() -> None:
    assert [format_reset(s) for s in (1.5, 0.0, 60.0, -1.0, 0.1234)] == [
        "1.5s", "0s", "60s", "0s", "0.123s"]
