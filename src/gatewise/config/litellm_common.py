"""What the LiteLLM translation modules share: the native config being built, the report of
what has no gatewise equivalent, and the environment LiteLLM's settings read.

LiteLLM resolves `os.environ/NAME` in most places and reads a few settings only from its own
environment variables (OTEL_*, WEBHOOK_URL, REDIS_*); its `environment_variables:` section sets
them from the file. Where the native field is itself a secret reference (keys, URLs with
passwords), the reference is kept and resolved in the loader's second phase; where it is not
(addresses, flags), the value is read here, once, at load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewise.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w|mo)\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0,
           "mo": 30 * 86400.0}
_DAY_S = 86400.0


@dataclass(slots=True)
class Translation:
    """One LiteLLM file being read: `out` is the native config (plain data, checked by the
    schema afterwards), `warnings` the report `gatewise check` prints, one line per key."""

    file: str | None
    env: Mapping[str, str]
    out: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def report(self, path: str, why: str) -> None:
        self.warnings.append(f"{path}: {why}")

    def unsupported(self, path: str) -> None:
        self.warnings.append(f"{path}: not supported yet, ignored")

    def section(self, *names: str) -> dict[str, Any]:
        """`out[names[0]][names[1]]...`, created empty on first use."""
        node = self.out
        for name in names:
            node = node.setdefault(name, {})
        return node

    def env_value(self, value: Any, path: str) -> str | None:
        """A setting LiteLLM lets be `os.environ/NAME` where gatewise wants the value itself."""
        if value is None:
            return None
        text = str(value)
        if text.startswith("os.environ/"):
            name = text[len("os.environ/"):]
            got = self.env.get(name)
            if not got:
                raise ConfigError(f"environment variable {name} is not set", file=self.file,
                                  path=path)
            return got
        return text

    def error(self, message: str, path: str) -> ConfigError:
        return ConfigError(message, file=self.file, path=path)


def names_list(value: Any) -> list[str]:
    """LiteLLM writes callback and alerting lists as lists, or as one name."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def duration_s(value: Any) -> float | None:
    """LiteLLM's duration strings (`30s`, `30m`, `24h`, `30d`, `1mo`) in seconds; a bare
    number is seconds. None when it is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if m is None:
        return None
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def budget_period(value: Any) -> tuple[str, bool]:
    """(gatewise budget period, exact) for a LiteLLM `budget_duration`.

    gatewise budgets reset daily, monthly or never. No duration means never (LiteLLM budgets
    without one never reset); one day is `day`; 28-31 days or `1mo` is `month`. Anything else
    is not exact: a day or shorter resets daily, longer resets monthly."""
    if value is None:
        return "total", True
    seconds = duration_s(value)
    if seconds is None or seconds <= 0:
        return "month", False
    if seconds == _DAY_S:
        return "day", True
    if 28 * _DAY_S <= seconds <= 31 * _DAY_S:
        return "month", True
    return ("day", False) if seconds < _DAY_S else ("month", False)
