"""The price table: lookup and its fallbacks, override precedence, and the cost arithmetic."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from gatewise.accounting.prices import FREE, ModelPrice, PriceTable, strip_version
from gatewise.config.schema import Prices
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.types.responses import CompletionTokensDetails, PromptTokensDetails, Usage


def _dep(ref: str, *, wire: str = "openai", prices: Prices | None = None,
         dep_id: str | None = None) -> Deployment:
    provider, _, model = ref.partition("/")
    return Deployment(alias="a", id=dep_id or ref, target=Target(provider=provider, wire=wire, model=model),
                      prices=prices)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_the_shipped_table_says_where_its_prices_come_from_and_when() -> None:
    raw = json.loads((files("gatewise.accounting") / "prices.json").read_text("utf-8"))
    assert "pricing" in raw["_source"] and raw["_as_of"]
    entries = {k: v for k, v in raw.items() if not k.startswith("_")}
    assert len(entries) >= 40
    for key, entry in entries.items():
        assert "/" in key
        assert entry["input"] >= 0 and entry["output"] >= 0, key
        if "cached_input" in entry:
            assert entry["cached_input"] <= entry["input"], key


@pytest.mark.parametrize("ref", [
    "openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4.1", "openai/gpt-4.1-mini", "openai/o1", "openai/o3",
    "openai/o3-mini", "openai/o4-mini", "openai/gpt-5", "openai/gpt-5-nano", "openai/text-embedding-3-small",
    "anthropic/claude-3-5-haiku", "anthropic/claude-3-5-sonnet", "anthropic/claude-3-7-sonnet",
    "anthropic/claude-sonnet-4", "anthropic/claude-opus-4", "anthropic/claude-3-haiku",
    "gemini/gemini-1.5-pro", "gemini/gemini-1.5-flash", "gemini/gemini-2.0-flash", "gemini/gemini-2.5-pro",
    "gemini/gemini-2.5-flash", "groq/llama-3.3-70b-versatile", "mistral/mistral-large",
    "deepseek/deepseek-chat",
])
def test_current_models_of_every_major_vendor_are_priced(table: PriceTable, ref: str) -> None:
    provider, _, model = ref.partition("/")
    assert table.lookup(provider, model) is not None


def test_gpt_4o_has_its_published_prices(table: PriceTable) -> None:
    assert table.lookup("openai", "gpt-4o") == ModelPrice(2.5, 10.0, 1.25, 128000, 16384)


@pytest.mark.parametrize(("ref", "base"), [
    ("openai/gpt-4o-2024-08-06", "openai/gpt-4o"),
    ("openai/gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
    ("openai/o3-mini-2025-01-31", "openai/o3-mini"),
    ("openai/gpt-4-0613", "openai/gpt-4"),
    ("anthropic/claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet"),
    ("anthropic/claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku"),
    ("gemini/gemini-2.0-flash-001", "gemini/gemini-2.0-flash"),
    ("gemini/gemini-2.5-pro-preview-05-06", "gemini/gemini-2.5-pro"),
    ("mistral/mistral-large-latest", "mistral/mistral-large"),
    ("mistral/mistral-large-2411", "mistral/mistral-large"),
])
def test_a_dated_or_aliased_model_name_falls_back_to_its_base_entry(table: PriceTable, ref: str,
                                                                   base: str) -> None:
    provider, _, model = ref.partition("/")
    bp, _, bm = base.partition("/")
    assert table.lookup(provider, model) == table.lookup(bp, bm) is not None


def test_strip_version_removes_one_suffix_at_a_time() -> None:
    assert strip_version("gpt-4o-2024-08-06") == "gpt-4o"
    assert strip_version("gpt-4o") is None
    assert strip_version("gemini-2.5-flash-preview-04-17") == "gemini-2.5-flash"


def test_a_vendors_model_is_found_by_its_bare_name_on_other_hosts(table: PriceTable) -> None:
    gpt4o = table.lookup("openai", "gpt-4o")
    assert table.lookup("azure", "gpt-4o") == gpt4o
    assert table.lookup("openrouter", "openai/gpt-4o") == gpt4o
    assert table.lookup("litellm", "anthropic/claude-3-5-sonnet-20241022") == table.lookup(
        "anthropic", "claude-3-5-sonnet")


def test_a_hosts_price_for_an_open_model_does_not_leak_to_other_hosts(table: PriceTable) -> None:
    assert table.lookup("groq", "llama-3.3-70b-versatile") is not None
    assert table.lookup("together_ai", "llama-3.3-70b-versatile") is None


def test_unknown_models_have_no_price(table: PriceTable) -> None:
    assert table.for_deployment(_dep("openai/not-a-model")) is None
    assert table.cost(Usage(prompt_tokens=10, completion_tokens=10), None) == 0.0
    assert table.worst_case(10, 10, None) == 0.0


def test_in_process_models_are_free(table: PriceTable) -> None:
    assert table.for_deployment(_dep("llamacpp/smollm2-135m", wire="llamacpp")) == FREE
    assert table.for_deployment(_dep("fake/echo", wire="fake")) == FREE


def test_deployment_prices_beat_overrides_which_beat_the_shipped_table() -> None:
    overrides = {"openai/gpt-4o": Prices(input=2.0), "gpt-4o-mini": Prices(output=0.5)}
    table = PriceTable.load(overrides)
    shipped = PriceTable.load().lookup("openai", "gpt-4o")
    assert shipped is not None
    # override by provider/model: only the field it names changes
    assert table.for_deployment(_dep("openai/gpt-4o", dep_id="d1")) == ModelPrice(
        2.0, shipped.output, shipped.cached_input, shipped.context_window, shipped.max_output)
    # override by bare model name, also for a dated spelling
    mini = table.for_deployment(_dep("openai/gpt-4o-mini-2024-07-18", dep_id="d2"))
    assert mini is not None and (mini.input, mini.output) == (0.15, 0.5)
    # the deployment's own config wins over both
    own = table.for_deployment(_dep("openai/gpt-4o", prices=Prices(input=1.0, cached_input=0.1), dep_id="d3"))
    assert own is not None and (own.input, own.output, own.cached_input) == (1.0, shipped.output, 0.1)


def test_config_prices_price_a_model_the_table_does_not_know_and_even_a_local_one() -> None:
    table = PriceTable.load()
    p = table.for_deployment(_dep("openai_compatible/my-model", prices=Prices(input=1.0, output=2.0)))
    assert p == ModelPrice(1.0, 2.0)
    local = table.for_deployment(_dep("llamacpp/x", wire="llamacpp", prices=Prices(input=0.01, output=0.02)))
    assert local == ModelPrice(0.01, 0.02)


def test_for_deployment_is_cached_by_deployment_id() -> None:
    table = PriceTable.load()
    first = table.for_deployment(_dep("openai/gpt-4o", dep_id="same"))
    # Same id, different target: the cached answer is returned without another lookup.
    assert table.for_deployment(_dep("anthropic/claude-3-haiku", dep_id="same")) is first


def test_cost_prices_cached_prompt_tokens_at_the_cached_rate() -> None:
    price = ModelPrice(input=2.5, output=10.0, cached_input=1.25)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, total_tokens=1_100_000,
                  prompt_tokens_details=PromptTokensDetails(cached_tokens=400_000))
    # 600k uncached x 2.5 + 400k cached x 1.25 + 100k x 10 = 1.5 + 0.5 + 1.0
    assert PriceTable.cost(usage, price) == pytest.approx(3.0)


def test_cost_uses_the_input_price_for_cache_reads_when_no_cached_price_is_known() -> None:
    price = ModelPrice(input=2.0, output=8.0)
    usage = Usage(prompt_tokens=1000, completion_tokens=0,
                  prompt_tokens_details=PromptTokensDetails(cached_tokens=1000))
    assert PriceTable.cost(usage, price) == pytest.approx(0.002)


def test_reasoning_tokens_are_paid_as_output_once() -> None:
    price = ModelPrice(input=1.1, output=4.4)
    usage = Usage(prompt_tokens=0, completion_tokens=1000,
                  completion_tokens_details=CompletionTokensDetails(reasoning_tokens=800))
    assert PriceTable.cost(usage, price) == pytest.approx(0.0044)


def test_anthropic_cache_writes_cost_their_premium(table: PriceTable) -> None:
    price = table.lookup("anthropic", "claude-sonnet-4")
    assert price is not None and price.cache_write == 3.75
    usage = Usage(prompt_tokens=3000, completion_tokens=0, prompt_tokens_details=PromptTokensDetails(
        cached_tokens=1000, cache_creation_tokens=1000))
    # 1000 plain x 3 + 1000 read x 0.30 + 1000 written x 3.75
    assert PriceTable.cost(usage, price) == pytest.approx((3000 + 300 + 3750) / 1e6)


def test_worst_case_assumes_no_cache_hit_and_every_allowed_output_token() -> None:
    assert PriceTable.worst_case(1000, 500, ModelPrice(2.5, 10.0, 1.25)) == pytest.approx(0.0075)
    anthropic_like = ModelPrice(3.0, 15.0, 0.3, cache_write=3.75)
    assert PriceTable.worst_case(1000, 0, anthropic_like) == pytest.approx(0.00375)
