"""The router's view of direct models (`provider/model`): refusals are 404s, and names made up
by callers cannot grow its memory."""

from __future__ import annotations

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ModelNotFoundRequestError
from gatewise.routing import router as router_module
from gatewise.routing.router import Router


def _router(allow: object = True) -> Router:
    cfg, w = parse_config({"models": {"a": [{"model": "fake/echo"}]},
                           "allow_direct_models": allow})
    return Router(resolve_config(cfg, None, {"OPENAI_API_KEY": "sk"}, w), seed=1)


def test_an_unknown_or_refused_direct_model_is_model_not_found() -> None:
    r = _router()
    for model in ("ollama/llama3.2", "openai/../x", "nope/x", "openai/" + "x" * 5000):
        with pytest.raises(ModelNotFoundRequestError) as info:
            r.candidates(model)
        assert info.value.status == 404 and info.value.param == "model"
        assert len(info.value.message) < 200  # a long name is not echoed in full


def test_made_up_names_do_not_grow_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "_DIRECT_CACHE", 8)
    r = _router()
    for i in range(50):
        with pytest.raises(ModelNotFoundRequestError):
            r.candidates(f"ollama/m{i}")
    served = [r.candidates(f"openai/m{i}")[0] for i in range(8)]
    assert [d.target.model for d in served] == [f"m{i}" for i in range(8)]
    # Past the limit a new name is refused (it would add tracker, breaker and metric state);
    # the names already served keep working, as the same deployment objects.
    for i in range(8, 50):
        with pytest.raises(ModelNotFoundRequestError, match="add an alias"):
            r.candidates(f"openai/m{i}")
    assert len(r._direct) == 8
    assert r.candidates("openai/m0")[0] is served[0]
