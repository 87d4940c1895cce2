"""Shared pieces of the examples' tests: the scripted OpenAI upstream over real HTTP, and the
examples' own `gatewise.yaml` with its models pointed at that upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.examples.scripted_openai import ScriptedUpstream, make_app_for
from tests.fakes.server import FakeServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeServer, ScriptedUpstream]]:
    script = ScriptedUpstream()
    with FakeServer(make_app_for(script)) as srv:
        yield srv, script


def example_config(example: str, upstream_url: str, *, alias: str,
                   **overrides: Any) -> dict[str, Any]:
    """The example's own config as data, its alias served by the fake upstream instead of
    the embedded model, state kept in memory (each test module its own)."""
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / example / "gatewise.yaml").read_text())
    data["models"] = {alias: [{"model": "openai/gpt-4o-mini", "api_base": upstream_url + "/v1",
                               "api_key": "sk-upstream"}]}
    data.pop("local_models", None)
    data["storage"] = {"database": "memory"}
    data["accounting"] = {"enabled": False}
    data.update(overrides)
    return data
