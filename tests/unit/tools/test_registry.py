"""The registry: schemas derived from Python signatures, pydantic models and config, and the
tools each caller may see."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import pydantic
import pytest

from gatewise.errors import ConfigError
from gatewise.pipeline.core import Identity
from gatewise.tools import ToolRegistry


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


def test_a_function_schema_comes_from_its_type_hints_defaults_and_docstring() -> None:
    reg = ToolRegistry()

    @reg.register
    def get_weather(city: Annotated[str, "City name"], unit: Unit = Unit.C,
                    days: int = 1, detail: Literal["short", "full"] | None = None,
                    tags: list[str] | None = None, ratio: float = 0.5,
                    extra: dict[str, int] | None = None, verbose: bool = False) -> str:
        """Current weather for a city.

        Args:
            days: how many days to forecast
        """
        return city

    tool = reg.get("get_weather")
    assert tool is not None and tool.source == "python"
    assert tool.description == "Current weather for a city."
    p = tool.parameters
    assert p["additionalProperties"] is False
    assert p["required"] == ["city"]
    props = p["properties"]
    assert props["city"] == {"type": "string", "description": "City name"}
    assert props["unit"] == {"enum": ["celsius", "fahrenheit"], "type": "string",
                             "default": "celsius"}
    assert props["days"] == {"type": "integer", "default": 1,
                             "description": "how many days to forecast"}
    assert props["detail"] == {"anyOf": [{"enum": ["short", "full"], "type": "string"},
                                         {"type": "null"}], "default": None}
    assert props["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    assert props["ratio"] == {"type": "number", "default": 0.5}
    assert props["extra"]["anyOf"][0] == {"type": "object",
                                          "additionalProperties": {"type": "integer"}}
    assert props["verbose"] == {"type": "boolean", "default": False}


def test_register_works_as_a_decorator_with_options_and_returns_the_function() -> None:
    reg = ToolRegistry()

    @reg.register(name="pay", permission="tools:payments", description="Moves money.")
    def transfer(amount: float) -> str:
        return "ok"

    assert transfer(1.0) == "ok"
    tool = reg.get("pay")
    assert tool is not None and tool.permission == "tools:payments"
    assert tool.description == "Moves money."


def test_an_identity_parameter_is_not_an_argument() -> None:
    reg = ToolRegistry()

    @reg.register
    def whoami(identity: Identity, loud: bool = False) -> str:
        return identity.tenant

    assert set(reg.get("whoami").parameters["properties"]) == {"loud"}  # type: ignore[union-attr]


class Transfer(pydantic.BaseModel):
    """Move money between accounts."""

    iban: str = pydantic.Field(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")
    amount: float = pydantic.Field(gt=0, le=10_000)
    currency: Literal["EUR", "USD"] = "EUR"


def test_a_lone_pydantic_model_parameter_is_the_whole_argument_object() -> None:
    reg = ToolRegistry()

    @reg.register
    def transfer(t: Transfer) -> str:
        return t.iban

    p = reg.get("transfer").parameters  # type: ignore[union-attr]
    assert p["type"] == "object" and p["additionalProperties"] is False
    assert p["properties"]["iban"]["pattern"].startswith("^[A-Z]{2}")
    assert p["required"] == ["iban", "amount"]
    assert reg.get("transfer").description == "Move money between accounts."  # type: ignore[union-attr]


async def test_python_handlers_get_enums_models_and_the_identity_back() -> None:
    reg = ToolRegistry()
    seen: dict[str, Any] = {}

    @reg.register
    def forecast(unit: Unit, identity: Identity) -> str:
        seen["unit"], seen["tenant"] = unit, identity.tenant
        return "ok"

    @reg.register
    async def transfer(t: Transfer) -> str:
        seen["t"] = t
        return "sent"

    who = Identity(tenant="acme")
    assert await reg.get("forecast").invoke({"unit": "fahrenheit"}, who) == "ok"  # type: ignore[union-attr]
    assert seen["unit"] is Unit.F and seen["tenant"] == "acme"
    await reg.get("transfer").invoke({"iban": "DE89370400440532013000", "amount": 5}, who)  # type: ignore[union-attr]
    assert isinstance(seen["t"], Transfer) and seen["t"].amount == 5


def test_unsupported_signatures_are_config_errors_naming_the_parameter() -> None:
    reg = ToolRegistry()

    def bad(x: complex) -> None: ...

    def star(*args: int) -> None: ...

    with pytest.raises(ConfigError, match="parameter 'x'"):
        reg.register(bad)
    with pytest.raises(ConfigError, match=r"\*args"):
        reg.register(star)


def test_registering_a_name_twice_is_refused() -> None:
    reg = ToolRegistry()

    def ping() -> str:
        return "pong"

    reg.register(ping)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register(ping)


def handler_for_config(account: str) -> str:
    return f"balance of {account}"


async def test_config_tools_take_their_schema_as_data_and_forbid_extra_arguments() -> None:
    reg = ToolRegistry()
    added = reg.add_from_config({"tools": [
        {"name": "balance", "description": "Account balance", "permission": "tools:read",
         "handler": f"{__name__}:handler_for_config",
         "parameters": {"type": "object", "properties": {"account": {"type": "string"}},
                        "required": ["account"]}},
        {"name": "declared_only", "parameters": {"type": "object", "properties": {},
                                                 "additionalProperties": True}},
    ]})
    assert [t.source for t in added] == ["config", "config"]
    balance = reg.get("balance")
    assert balance is not None and balance.parameters["additionalProperties"] is False
    assert await balance.invoke({"account": "A1"}, Identity()) == "balance of A1"
    declared = reg.get("declared_only")
    assert declared is not None and not declared.executable
    assert declared.parameters["additionalProperties"] is True


@pytest.mark.parametrize(("spec", "problem"), [
    ({"name": "x", "colour": 1}, "unknown key"),
    ({"description": "no name"}, "'name' is required"),
    ({"name": "has space"}, "tool name"),
    ({"name": "x", "parameters": {"type": "array"}}, "object schema"),
    ({"name": "x", "parameters": {"type": "object", "properties": {
        "a": {"type": "string", "pattern": "("}}}}, "invalid pattern"),
    ({"name": "x", "handler": "no.such.module:fn"}, "cannot import"),
])
def test_bad_config_tools_are_config_errors(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        ToolRegistry().add_from_config(spec)


def test_tools_for_lists_only_what_the_identity_may_use() -> None:
    reg = ToolRegistry()
    reg.add_from_config({"tools": [
        {"name": "public"},
        {"name": "read", "permission": "tools:read"},
        {"name": "pay", "permission": "payments:send"},
    ]})
    names = lambda ident: [t.function.name for t in reg.tools_for(ident)]  # noqa: E731
    assert names(Identity(permissions=frozenset())) == ["public"]
    assert names(Identity(permissions=frozenset({"tools:read"}))) == ["public", "read"]
    assert names(Identity(permissions=frozenset({"payments:*"}))) == ["public", "pay"]
    assert names(Identity()) == ["public", "read", "pay"]  # unrestricted (library caller)
