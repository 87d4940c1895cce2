"""`gatewise serve --log-format json`: every stderr line is one JSON object, uvicorn's own lines
included; each request is one `gatewise.request` line with its fields (and no access-log
twin); no prompt text, master key or provider key anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakes.ports import free_port

MASTER = "sk-master-canary-5e1f0a9b8c7d"
UPSTREAM_KEY = "sk-upstream-canary-0123456789"
PROMPT = "CANARY-prompt-41d2 tell me a story"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    config = tmp_path / "gatewise.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"m": [{"model": "fake/echo", "api_key": UPSTREAM_KEY,
                          "prices": {"input": 1.0, "output": 2.0}}]},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"database": "memory"},
    }))
    port = free_port()
    err = tmp_path / "stderr.log"
    env = {**os.environ, "GATEWISE_STATE_DIR": str(tmp_path / "state")}
    with err.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gatewise.cli.main", "serve", "--config", str(config),
             "--port", str(port), "--no-warmup", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=out, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gatewise serve exited: {err.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("gatewise serve did not start")
        time.sleep(0.1)
    yield url, proc, err
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_json_logs_on_stderr_carry_one_line_per_request(
        served: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    url, proc, err = served
    auth = {"Authorization": f"Bearer {MASTER}"}
    ok = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=30, json={
        "model": "m", "messages": [{"role": "user", "content": PROMPT}]})
    assert ok.status_code == 200, ok.text
    missing = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=30, json={
        "model": "no-such-alias", "messages": [{"role": "user", "content": PROMPT}]})
    assert missing.status_code == 404
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0

    text = err.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # all JSON
    assert all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    assert any(x["logger"] == "gatewise.server" and x["msg"] == "serving" for x in lines)
    assert any(x["logger"].startswith("uvicorn") for x in lines)  # uvicorn's lines, as JSON
    assert not any(x["logger"] == "uvicorn.access" for x in lines)  # no second line per request

    requests = [x for x in lines if x["logger"] == "gatewise.request"]
    assert [r["status"] for r in requests] == [200, 404]
    first = requests[0]
    assert first["request_id"] == ok.headers["x-request-id"]
    assert (first["level"], first["alias"], first["deployment"]) == ("info", "m", "m:fake/echo")
    assert first["prompt_tokens"] > 0 and first["completion_tokens"] > 0
    assert first["cost_usd"] > 0 and first["latency_ms"] > 0
    assert requests[1]["error_type"] == "ModelNotFoundRequestError"

    for secret in ("CANARY-prompt-41d2", MASTER, UPSTREAM_KEY):
        assert secret not in text
