"""Ranges and character rules for the numbers and names an operator sets: rate limits, budgets,
weights, ids and names.

One definition, read by three places: the config schema (`gatewise.yaml`), the admin API
(which decodes its bodies and query strings with these types and generates its OpenAPI
document from them) and the admin CLI (which builds the same bodies from its flags). So
`rpm: -5` is refused the same way in a config file, over HTTP and on the command line.

Why bounds at all: a limit is compared, summed and stored. `rpm: -5` refuses every request
with a 429; `rpm: 2**64` overflows a PostgreSQL bigint; `limit_usd: 1e400` decodes to
infinity; a NUL byte cannot be stored in PostgreSQL text and a control character in a name
corrupts logs and CSV exports. Refused where they enter, with a 400 naming the field, none of
them is found later as a 429 or a 500.

Patterns are written so that Python's `re` and ECMAScript read them alike (they are published
in the OpenAPI document): character classes with `\\xNN`/`\\uNNNN` escapes, `[0-9]` for digits.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import msgspec

# -- numbers --------------------------------------------------------------------------------

MAX_RATE = 2**31 - 1            # fits every counter and integer column we store it in
MAX_USD = 1e9                   # a budget above a billion dollars is a typo
MAX_TOKENS = 2**53              # counters are float64: integers are exact up to 2**53
MAX_WEIGHT = 1e6

RequestsPerMinute = Annotated[int, msgspec.Meta(
    ge=1, le=MAX_RATE, description="requests per minute; at least 1 (omit it for no limit)")]
TokensPerMinute = Annotated[int, msgspec.Meta(
    ge=1, le=MAX_RATE, description="tokens per minute; at least 1 (omit it for no limit)")]
UsdLimit = Annotated[float, msgspec.Meta(
    ge=0, le=MAX_USD, description="US dollars per period; 0 allows nothing")]
TokenLimit = Annotated[int, msgspec.Meta(
    ge=0, le=MAX_TOKENS, description="tokens per period; 0 allows nothing")]
Weight = Annotated[float, msgspec.Meta(gt=0, le=MAX_WEIGHT)]

# -- names and ids -------------------------------------------------------------------------

# The end of the string. Plain `$` would do in ECMAScript, but Python's `re` (which msgspec
# checks patterns with) also lets `$` match before a final newline: "red\n" would pass as a
# team id. The lookahead makes both dialects read "the end" alike.
END = r"$(?!\n)"
# Printable text: no C0/C1 control characters (NUL included). (A lone surrogate cannot get
# this far: the JSON decoder refuses it.)
_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f]"
# The same without spaces, for things that are matched or looked up (model globs).
_TOKEN = r"[^\x00-\x20\x7f-\x9f]"

TEAM_ID_PATTERN = rf"^[a-z0-9][a-z0-9_.-]{{0,63}}{END}"
KEY_ID_PATTERN = rf"^[0-9a-f]{{12}}{END}"
KEY_REF_PATTERN = rf"^(?:[0-9a-f]{{12}}|master){END}"
BUDGET_ID_PATTERN = rf"^bud_[0-9a-f]{{12}}{END}"
CREDENTIAL_NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}{END}"
PROVIDER_PATTERN = rf"^[a-z0-9][a-z0-9_.-]{{0,63}}{END}"

NAME_PATTERN = f"^{_PRINTABLE}{{1,200}}{END}"
USER_PATTERN = f"^{_PRINTABLE}{{1,256}}{END}"
MODEL_PATTERN = f"^{_TOKEN}{{1,256}}{END}"
SECRET_PATTERN = rf"^[^\x00]+{END}"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NAME_PATTERN)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=USER_PATTERN)]
# A budget's subject: a key id, a team id or a user id by scope; `*` is each one separately.
Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=USER_PATTERN)]
ModelPattern = Annotated[str, msgspec.Meta(
    min_length=1, max_length=256, pattern=MODEL_PATTERN,
    description="an alias or provider/model, fnmatch globs allowed")]
# Ids are their pattern alone (which fixes their length too), so a refusal states the rule.
TeamId = Annotated[str, msgspec.Meta(
    pattern=TEAM_ID_PATTERN,
    description="1-64 of a-z 0-9 _ . - starting with a letter or digit")]
KeyId = Annotated[str, msgspec.Meta(pattern=KEY_ID_PATTERN,
                                    description="a virtual key's public id (12 hex digits)")]
# What the ledger and the audit log call a key: its id, or `master` for the master key (which
# is no stored key: the key routes answer 404 for it, usage can be filtered by it).
KeyRef = Annotated[str, msgspec.Meta(pattern=KEY_REF_PATTERN,
                                     description="a virtual key's id (12 hex digits) or 'master'")]
BudgetId = Annotated[str, msgspec.Meta(pattern=BUDGET_ID_PATTERN)]
CredentialName = Annotated[str, msgspec.Meta(
    pattern=CREDENTIAL_NAME_PATTERN,
    description="referenced from the config as `vault:<name>`")]
ProviderName = Annotated[str, msgspec.Meta(pattern=PROVIDER_PATTERN)]
# A provider secret may be a multi-line JSON document (service accounts); only NUL is refused.
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=65536, pattern=SECRET_PATTERN)]

# -- report bounds -------------------------------------------------------------------------

# Epoch seconds, a date, or a date and time (UTC unless an offset is given). Every string the
# pattern admits is a time `parse_time_bound` understands (a day past the month's end rolls
# over, as in `calendar.timegm`), so the published pattern and the parser cannot disagree.
TIME_BOUND_PATTERN = (
    r"^(?:[0-9]{1,12}(?:\.[0-9]{1,6})?"
    r"|([1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:\.([0-9]{1,6}))?)?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?)" + END)
_TIME_BOUND = re.compile(TIME_BOUND_PATTERN)
TimeBound = Annotated[str, msgspec.Meta(
    max_length=40, pattern=TIME_BOUND_PATTERN,
    description="epoch seconds, YYYY-MM-DD (UTC midnight) or YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM]")]

# Each pattern in words, for error messages (a regex is no answer to a person).
RULES: dict[str, str] = {
    NAME_PATTERN: "1-200 printable characters (no control characters)",
    USER_PATTERN: "1-256 printable characters (no control characters)",
    MODEL_PATTERN: "1-256 printable characters without spaces",
    TEAM_ID_PATTERN: "1-64 of a-z 0-9 _ . - starting with a letter or digit",
    KEY_ID_PATTERN: "a key id (12 hex digits)",
    KEY_REF_PATTERN: "a key id (12 hex digits) or 'master'",
    BUDGET_ID_PATTERN: "a budget id ('bud_' and 12 hex digits)",
    CREDENTIAL_NAME_PATTERN: "1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit",
    PROVIDER_PATTERN: "1-64 of a-z 0-9 _ . - starting with a letter or digit",
    SECRET_PATTERN: "a non-empty string without NUL characters",
    TIME_BOUND_PATTERN: "epoch seconds, a date (YYYY-MM-DD) or a date and time "
                        "(YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])",
}


def parse_time_bound(text: str) -> float | None:
    """Epoch seconds of a string matching `TIME_BOUND_PATTERN`; None when it does not match."""
    m = _TIME_BOUND.fullmatch(text)
    if m is None:
        return None
    if m[1] is None:
        return float(text)
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    days = dt.date(year, month, 1).toordinal() - dt.date(1970, 1, 1).toordinal() + day - 1
    seconds = float(days * 86400 + int(m[4] or 0) * 3600 + int(m[5] or 0) * 60 + int(m[6] or 0))
    seconds += float(f"0.{m[7]}") if m[7] else 0.0
    tz = m[8]
    if tz and tz != "Z":
        offset = int(tz[1:3]) * 3600 + int(tz[4:6]) * 60
        seconds -= offset if tz[0] == "+" else -offset
    return seconds
