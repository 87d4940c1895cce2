"""Provider facts are data on the preset, and the wire-keyed views agree with it and the registry."""

from __future__ import annotations

from gatewise.providers.presets import (
    FREE_WIRES,
    IN_PROCESS_WIRES,
    LOCAL_MODEL_WIRES,
    MODEL_OWNERS,
    PRESETS,
)
from gatewise.providers.registry import IN_PROCESS, WIRE_ADAPTERS


def test_in_process_presets_are_exactly_the_registrys_in_process_engines() -> None:
    assert IN_PROCESS_WIRES == frozenset(IN_PROCESS) == {"llamacpp", "litellm", "fake"}


def test_every_preset_speaks_a_registered_wire_format() -> None:
    for name, preset in PRESETS.items():
        assert preset.wire in WIRE_ADAPTERS or preset.wire in IN_PROCESS, name


def test_an_in_process_preset_has_no_address_and_no_key() -> None:
    for name, preset in PRESETS.items():
        if preset.in_process:
            assert (preset.api_base, preset.key_required, preset.auth) == ("", False, "none"), name


def test_only_the_embedded_engine_and_the_test_double_are_free() -> None:
    # litellm bills through the inner provider's price entry, so it is in process but not free.
    assert sorted(FREE_WIRES) == ["fake", "llamacpp"]


def test_the_embedded_model_is_the_llamacpp_engine() -> None:
    assert sorted(LOCAL_MODEL_WIRES) == ["llamacpp"]


def test_a_free_or_local_model_preset_is_named_after_its_own_wire() -> None:
    # The wire-keyed views are only faithful when no other preset shares such a wire.
    for name, preset in PRESETS.items():
        if preset.free or preset.local_model or preset.in_process:
            assert name == preset.wire
            assert [n for n, p in PRESETS.items() if p.wire == preset.wire] == [name]


def test_model_owners_are_the_vendors_that_make_their_models() -> None:
    assert set(MODEL_OWNERS) == {"openai", "anthropic", "gemini", "mistral", "deepseek"}


def test_estimate_factors_lean_high_except_on_openais_own_encodings() -> None:
    factors = {name: p.estimate_factor for name, p in PRESETS.items()}
    assert factors["anthropic"] == 1.25
    assert factors["openai"] == factors["azure"] == 1.0
    assert {n for n, p in PRESETS.items() if p.openai_tokens} == {"openai", "azure"}
    assert all(f == 1.10 for n, f in factors.items() if n not in ("anthropic", "openai", "azure"))


def test_only_litellm_routes_by_an_inner_provider_and_only_ollama_takes_a_bare_host() -> None:
    assert [n for n, p in PRESETS.items() if p.model_names_provider] == ["litellm"]
    assert [n for n, p in PRESETS.items() if p.base_without_scheme] == ["ollama"]
