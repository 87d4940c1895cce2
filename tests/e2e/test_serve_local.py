"""README command 1, as a test: `gatewise serve` with no config and no keys answers a chat with
the embedded local model, through the official openai SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import openai
import pytest

from tests.fakes.ports import free_port

pytestmark = pytest.mark.local_model

KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
            "GROQ_API_KEY", "MISTRAL_API_KEY", "OPENROUTER_API_KEY", "FIREWORKS_API_KEY",
            "AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "OLLAMA_HOST")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    cwd = tmp_path_factory.mktemp("empty")  # no gatewise.yaml anywhere near
    proc = subprocess.Popen([sys.executable, "-m", "gatewise.cli.main", "serve", "--port",
                             str(port)], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as probe:
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read() if proc.stderr else ""
                    raise RuntimeError(f"gatewise serve exited: {err}")
                try:
                    probe.models.list()
                    break
                except openai.APIConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stderr is not None:
            proc.stderr.close()


def test_zero_config_server_answers_with_the_local_model(server: str) -> None:
    with openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0) as client:
        assert [m.id for m in client.models.list()] == ["local", "smollm2-135m"]
        raw = client.chat.completions.with_raw_response.create(
            model="local", max_tokens=24, temperature=0,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        out = raw.parse()
    assert raw.headers["x-gatewise-deployment"] == "local:llamacpp/smollm2-135m"
    assert out.choices[0].message.content and out.choices[0].message.content.strip()
    assert out.usage is not None
    assert out.usage.prompt_tokens > 5 and 0 < out.usage.completion_tokens <= 24


def test_zero_config_server_streams_tokens(server: str) -> None:
    with openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0) as client:
        chunks = list(client.chat.completions.create(
            model="local", max_tokens=24, temperature=0, stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Count from one to five."}]))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= len(pieces)
