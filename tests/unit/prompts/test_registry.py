"""Where templates come from and which version a request gets: config versions, prompt files,
the admin API's store (read through a short cache), `name@N` pins, the latest by default,
and variables checked against their declarations before anything renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from gatewise.config.schema import PromptTemplateConfig
from gatewise.errors import ConfigError, ConflictError, InvalidRequestError
from gatewise.prompts.engine import TemplateEngine
from gatewise.prompts.registry import PromptRegistry, read_prompt_dir
from gatewise.prompts.spec import (
    MissingPromptVariableError,
    PromptNotFoundError,
    PromptRef,
    PromptVariableError,
    bind_variables,
    parse_ref,
)
from gatewise.storage.prompts import MemoryPrompts


def _t(**kw: Any) -> PromptTemplateConfig:
    return msgspec.convert(kw, PromptTemplateConfig)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _registry(templates: dict[str, list[PromptTemplateConfig]] | None = None,
              store: MemoryPrompts | None = None, clock: Clock | None = None) -> PromptRegistry:
    return PromptRegistry(templates or {}, store, TemplateEngine(), example_sets={},
                          ttl_s=5.0, clock=clock or Clock())


async def test_a_bare_name_is_the_latest_version_and_name_at_n_pins_one() -> None:
    reg = _registry({"greet": [_t(version=1, instructions="one"),
                               _t(version=3, instructions="three")]})
    assert (await reg.get(parse_ref("greet"))).version == 3
    assert (await reg.get(parse_ref("greet@1"))).template.instructions == "one"
    with pytest.raises(PromptNotFoundError) as err:
        await reg.get(parse_ref("greet@2"))
    assert err.value.code == "prompt_not_found"
    assert err.value.status == 400
    assert err.value.param == "metadata.prompt"


@pytest.mark.parametrize("ref", ["", "@1", "a@0", "a@x", "a b", "../etc", "a@1@2"])
def test_a_malformed_reference_is_prompt_not_found(ref: str) -> None:
    with pytest.raises(PromptNotFoundError):
        parse_ref(ref)


def test_a_broken_config_template_fails_the_load_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"prompts\.templates\.bad"):
        _registry({"bad": [_t(instructions="{% if %}")]})
    with pytest.raises(ConfigError, match="defined twice"):
        _registry({"dup": [_t(version=1, role="a"), _t(version=1, role="b")]})
    with pytest.raises(ConfigError, match="example set"):
        _registry({"ex": [_t(role="r", examples={"set": "missing"})]})
    with pytest.raises(ConfigError, match="response_format"):
        _registry({"rf": [_t(role="r", response_format={"type": "yaml"})]})


async def test_stored_versions_are_read_through_a_short_cache() -> None:
    store, clock = MemoryPrompts(), Clock()
    reg = _registry(store=store, clock=clock)
    assert await reg.find(PromptRef("p")) is None
    # Another replica publishes: this one trusts its cached miss until the TTL passes.
    await store.add_prompt("p", {"instructions": "v1"}, created=0, actor="other")
    assert await reg.find(PromptRef("p")) is None
    clock.now = 5.1
    assert (await reg.find(PromptRef("p"))).version == 1  # type: ignore[union-attr]
    # Publishing through this replica is visible here at once.
    await reg.publish("p", reg.parse({"instructions": "v2"}), actor="me", created=1)
    assert (await reg.get(PromptRef("p"))).template.instructions == "v2"
    assert (await reg.get(PromptRef("p", 1))).template.instructions == "v1"
    assert [s.version for s in await reg.versions("p")] == [1, 2]


async def test_a_config_name_cannot_be_published_or_deleted_through_the_api() -> None:
    reg = _registry({"cfg": [_t(role="r")]}, store=MemoryPrompts())
    with pytest.raises(ConflictError):
        await reg.publish("cfg", _t(role="x"), actor="a", created=0)
    with pytest.raises(ConflictError):
        await reg.delete("cfg", None)


def test_an_admin_body_is_checked_like_a_config_template() -> None:
    reg = _registry(store=MemoryPrompts())
    with pytest.raises(InvalidRequestError) as err:
        reg.parse({"messages": [{"role": "wizard", "content": "x"}]})
    assert err.value.param == "messages[0].role"
    with pytest.raises(InvalidRequestError, match="syntax"):
        reg.parse({"instructions": "{{ unclosed"})


def test_a_prompt_directory_holds_templates_and_example_sets(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "name: support\nversion: 2\nrole: a support agent\n", encoding="utf-8")
    (tmp_path / "b.yml").write_text(
        "templates:\n  support:\n    version: 1\n    role: old\n"
        "example_sets:\n  faq:\n    - {input: q, output: a}\n", encoding="utf-8")
    templates, sets = read_prompt_dir(tmp_path)
    assert sorted(t.version for t in templates["support"]) == [1, 2]
    assert sets["faq"][0].output == "a"
    (tmp_path / "c.yaml").write_text("surprise: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key"):
        read_prompt_dir(tmp_path)


class TestVariables:
    spec = _registry({"v": [_t(role="r", variables={
        "name": {"type": "string"}, "count": {"type": "integer", "required": False},
        "tone": {"type": "string", "default": "warm"}, "tags": {"type": "array",
                                                                  "required": False}})]})

    async def _bind(self, given: dict[str, Any] | None) -> dict[str, Any]:
        return bind_variables(await self.spec.get(PromptRef("v")), given)

    async def test_defaults_fill_in_and_optional_ones_are_none(self) -> None:
        assert await self._bind({"name": "Ada"}) == {"name": "Ada", "count": None,
                                                    "tone": "warm", "tags": None}

    async def test_a_missing_one_is_a_400_naming_it(self) -> None:
        with pytest.raises(MissingPromptVariableError) as err:
            await self._bind({})
        assert (err.value.status, err.value.param) == (400, "prompt_variables.name")

    @pytest.mark.parametrize(("given", "param"), [
        ({"name": 5}, "prompt_variables.name"),
        ({"name": "a", "count": True}, "prompt_variables.count"),
        ({"name": "a", "count": 1.5}, "prompt_variables.count"),
        ({"name": "a", "tags": "x"}, "prompt_variables.tags"),
        ({"name": "a", "nmae": "typo"}, "prompt_variables.nmae"),
    ])
    async def test_wrong_types_and_unknown_names_are_refused(self, given: dict[str, Any],
                                                             param: str) -> None:
        with pytest.raises(PromptVariableError) as err:
            await self._bind(given)
        assert err.value.param == param
