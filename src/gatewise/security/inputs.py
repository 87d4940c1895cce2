"""What the admin API and the admin CLI accept: request bodies, query strings and path ids.

One definition for three readers. The server decodes each admin body and query string into
these types, so a value out of range or with a forbidden character is a 400 naming the field
before anything is read from or written to a store (no key, team, budget or audit row comes
of a refused request). The OpenAPI document is generated from the same types, so it
describes exactly what the server accepts. The CLI builds the same structs from its flags
(`parse_input`), so `gatewise keys create --rpm -5` is refused as `POST /admin/keys` is.

Field types come from `gatewise.types.limits` (shared with the config schema); roles and
permissions from `gatewise.security.rbac`'s tables. Rules across fields live in each body's
`check()` and are published in the document too (`SCHEMA_EXTRA`), so a client generated
from it cannot send a body the server then refuses for a reason the document did not state.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import msgspec

from gatewise.config.schema import PromptExamplesConfig, PromptMessageConfig, PromptVariableConfig
from gatewise.errors import InvalidRequestError
from gatewise.security.rbac import PERMISSIONS, ROLES
from gatewise.storage.usage import GROUP_BY_PATTERN, parse_group_by
from gatewise.types.limits import (
    END,
    KEY_ID_PATTERN,
    RULES,
    TEAM_ID_PATTERN,
    BudgetId,
    CredentialName,
    KeyRef,
    ModelPattern,
    Name,
    ProviderName,
    RequestsPerMinute,
    Secret,
    Subject,
    TeamId,
    TimeBound,
    TokenLimit,
    TokensPerMinute,
    UsdLimit,
    UserId,
)
from gatewise.types.requests import ResponseFormat
from gatewise.types.validation import (
    check_depth,
    refused_only_for_whole_float,
    whole_floats_as_ints,
)


def _one_of(words: Any) -> str:
    return "^(?:" + "|".join(re.escape(w) for w in sorted(words)) + ")" + END


_ROLE_PATTERN = _one_of(ROLES)
# A known permission, or `family:*` for a known family (as `rbac.validate_permissions`).
_PERMISSIONS = sorted(PERMISSIONS | {f"{p.split(':', 1)[0]}:*" for p in PERMISSIONS})
_PERMISSION_PATTERN = _one_of(_PERMISSIONS)
Role = Annotated[str, msgspec.Meta(pattern=_ROLE_PATTERN, description=", ".join(ROLES))]
Permission = Annotated[str, msgspec.Meta(pattern=_PERMISSION_PATTERN)]
ModelList = Annotated[list[ModelPattern], msgspec.Meta(max_length=256)]
PermissionList = Annotated[list[Permission], msgspec.Meta(max_length=32)]
ExpiresIn = Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400,
                                          description="seconds from now (at most 10 years)")]
Overlap = Annotated[float, msgspec.Meta(ge=0, le=30 * 86400,
                                        description="seconds the old key stays valid (≤ 30 days)")]
RotationDays = Annotated[int, msgspec.Meta(ge=1, le=3650)]
BudgetScope = Literal["key", "team", "user"]
BudgetPeriod = Literal["day", "month", "total"]
# Checked by `parse_group_by` (which names an unknown grouping); published as a pattern.
GroupBy = Annotated[str, msgspec.Meta(max_length=200, extra_json_schema={
    "pattern": GROUP_BY_PATTERN,
    "description": "comma-separated groupings (empty: one total)"})]
PageSize = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
AuditSeq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

_SUBJECT_BY_SCOPE = {"key": KEY_ID_PATTERN, "team": TEAM_ID_PATTERN}
_RULES = {repr(p): text for p, text in {
    **RULES, _ROLE_PATTERN: f"one of {', '.join(ROLES)}",
    _PERMISSION_PATTERN: f"one of {', '.join(_PERMISSIONS)}"}.items()}


class Input(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body: unknown fields are errors, like the config."""

    # JSON Schema for the rules `check` enforces across fields (merged into the document).
    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {}

    def check(self) -> None:
        """Rules across fields; each field's own type has already been checked."""


class KeyCreate(Input):
    name: Name
    role: Role = "member"
    team: TeamId | None = None
    user: UserId | None = None
    models: ModelList = msgspec.field(default_factory=list)
    permissions: PermissionList = msgspec.field(default_factory=list)
    expires_in_s: ExpiresIn | None = None
    rpm: RequestsPerMinute | None = None
    tpm: TokensPerMinute | None = None

    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"role": {"const": "team_admin"}}, "required": ["role"]},
        "then": {"required": ["team"], "properties": {"team": {"type": "string"}}}}

    def check(self) -> None:
        if self.role == "team_admin" and self.team is None:
            raise InvalidRequestError("a team_admin key needs a team", param="team")


class KeyUpdate(Input):
    name: Name | None = None
    role: Role | None = None
    models: ModelList | None = None
    permissions: PermissionList | None = None
    expires_in_s: ExpiresIn | None = None
    rpm: RequestsPerMinute | None = None
    tpm: TokensPerMinute | None = None


class KeyRotate(Input):
    overlap_s: Overlap = 86400.0


class TeamCreate(Input):
    id: TeamId
    name: Name | None = None
    models: ModelList = msgspec.field(default_factory=list)
    rpm: RequestsPerMinute | None = None
    tpm: TokensPerMinute | None = None


class TeamUpdate(Input):
    name: Name | None = None
    models: ModelList | None = None
    rpm: RequestsPerMinute | None = None
    tpm: TokensPerMinute | None = None


class BudgetCreate(Input):
    scope: BudgetScope
    subject: Subject
    period: BudgetPeriod = "month"
    limit_usd: UsdLimit | None = None
    limit_tokens: TokenLimit | None = None
    hard: bool = True

    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {
        "anyOf": [{"required": ["limit_usd"], "properties": {"limit_usd": {"type": "number"}}},
                  {"required": ["limit_tokens"],
                   "properties": {"limit_tokens": {"type": "integer"}}}],
        "allOf": [{"if": {"properties": {"scope": {"const": scope}}},
                   "then": {"properties": {"subject": {
                       "pattern": rf"^(?:\*|{pattern[1:-len(END)]}){END}"}}}}
                  for scope, pattern in _SUBJECT_BY_SCOPE.items()]}

    def check(self) -> None:
        if self.limit_usd is None and self.limit_tokens is None:
            raise InvalidRequestError("give limit_usd or limit_tokens", param="limit_usd")
        pattern = _SUBJECT_BY_SCOPE.get(self.scope)
        if pattern and self.subject != "*" and not re.fullmatch(pattern, self.subject):
            raise InvalidRequestError(f"a {self.scope} budget's subject must be a {self.scope} "
                                      "id (or '*' for each one)", param="subject")


class CredentialPut(Input):
    name: CredentialName
    provider: ProviderName
    secret: Secret
    rotate_every_days: RotationDays | None = None


class CredentialRotate(Input):
    # Without a secret, the credential rotates from its `security.rotation` source.
    secret: Secret | None = None


class Query(msgspec.Struct, kw_only=True):
    """A query string. Parameters not listed are ignored, as HTTP clients expect; listed ones
    are checked like body fields (an empty value too: `?team=` is not "every team")."""

    def check(self) -> None:
        """Rules a field's type leaves to a parser (which names what is wrong)."""


class KeysQuery(Query):
    team: TeamId | None = None


class BudgetsQuery(Query):
    scope: BudgetScope | None = None
    subject: Subject | None = None


class UsageQuery(Query):
    since: TimeBound | None = None
    until: TimeBound | None = None
    team: TeamId | None = None
    key: KeyRef | None = None
    group_by: GroupBy = "team,model,day"
    format: Literal["json", "csv"] = "json"

    def check(self) -> None:
        parse_group_by(self.group_by)


class RecordsQuery(Query):
    since: TimeBound | None = None
    until: TimeBound | None = None
    team: TeamId | None = None
    key: KeyRef | None = None
    limit: PageSize = 1000


class AuditQuery(Query):
    since_seq: AuditSeq = 0
    limit: PageSize = 1000


# The response cache: an entry's key (the `x-gatewise-cache-key` response header), a tag, an
# alias glob and a raw key prefix (all of one key's form, so nothing else reaches the store).
CacheKey = Annotated[str, msgspec.Meta(
    pattern=rf"^cache:v1:[0-9a-f]{{16}}:[0-9a-f]{{16}}:[0-9a-f]{{64}}{END}",
    description="a cache entry's key, as sent in the x-gatewise-cache-key header")]
CacheTag = Annotated[str, msgspec.Meta(
    pattern=rf"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{{0,127}}{END}",
    description="1-128 letters, digits or _ . : @ + -, starting with a letter, digit or _")]
CacheKeyPrefix = Annotated[str, msgspec.Meta(
    pattern=rf"^cache:v1:[0-9a-f:]{{0,120}}{END}",
    description="the start of cache entry keys (e.g. a key's first 26 characters: its team)")]


class CacheEntriesQuery(Query):
    """`prefix` wins over `alias` (a key prefix names its team and alias already)."""

    team: TeamId | None = None
    alias: ModelPattern | None = None
    prefix: CacheKeyPrefix | None = None


class CacheStatsQuery(Query):
    team: TeamId | None = None


class CacheScopeQuery(Query):
    team: TeamId | None = None


# Prompt templates (`gatewise.prompts`): a name, a version number, a template's body.
PromptName = Annotated[str, msgspec.Meta(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$",
    description="1-128 letters, digits or _ . - (starting with a letter or digit)")]
PromptVersion = Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,6}$",
                                            description="a version number (1, 2, ...)")]


class PromptCreate(Input):
    """A new version of a prompt template: the config's `PromptTemplateConfig` fields (its
    `version` is assigned by the store) under a `name`."""

    name: PromptName
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    role: Annotated[str, msgspec.Meta(max_length=20_000)] | None = None
    instructions: Annotated[str, msgspec.Meta(max_length=100_000)] | None = None
    messages: Annotated[list[PromptMessageConfig], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=list)
    variables: Annotated[dict[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")],
                              PromptVariableConfig], msgspec.Meta(max_length=64)] = msgspec.field(
        default_factory=dict)
    response_format: ResponseFormat | None = None
    examples: PromptExamplesConfig | None = None

    SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {"anyOf": [
        {"required": ["messages"], "properties": {"messages": {"type": "array", "minItems": 1}}},
        {"required": ["role"], "properties": {"role": {"type": "string"}}},
        {"required": ["instructions"], "properties": {"instructions": {"type": "string"}}}]}

    def check(self) -> None:
        if not self.messages and self.role is None and self.instructions is None:
            raise InvalidRequestError("a template needs messages, a role or instructions",
                                      param="messages")


# An A/B experiment's name (`experiments:` keys; `gatewise.quality.experiments` checks them).
ExperimentName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}" + END)]
# A maintenance job's name (`gatewise.maintenance`: purge_cache, quality_check, ...).
JobName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_.\-]{1,64}" + END)]
# Every `{name}` of the admin route templates, and what it may be.
PATH_PARAMS: dict[str, Any] = {"prompt": PromptName, "version": PromptVersion,
                               "key_id": KeyRef, "team_id": TeamId, "budget_id": BudgetId,
                               "name": CredentialName, "cache_key": CacheKey, "tag": CacheTag,
                               "experiment": ExperimentName, "job": JobName}

T = TypeVar("T")


def _refused(exc: msgspec.ValidationError) -> InvalidRequestError:
    """msgspec says what is wrong and where (`… - at `$.rpm``): the message, the field as
    `param`. It never quotes the value, so nothing hostile is echoed back."""
    message, _, where = str(exc).partition(" - at `$")
    param = where.lstrip(".").rstrip("`") or None
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", message)
    if unknown:  # the field is the problem, so it is the param
        param = f"{param}.{unknown[1]}" if param else unknown[1]
    return InvalidRequestError(_worded(message, param), param=param)


def _worded(message: str, param: str | None) -> str:
    """msgspec's message, with a pattern put in words."""
    _, found, pattern = message.partition("matching regex ")
    if found and pattern in _RULES:
        return f"'{param}' must be {_RULES[pattern]}" if param else f"must be {_RULES[pattern]}"
    return message


def decode_input(kind: type[T], raw: bytes) -> T:
    """A JSON request body (empty = `{}`) as `kind`, every rule checked.

    JSON Schema counts `5.0` as an integer (and so does a client generated from the
    document); msgspec does not, so a body refused only for that is decoded again with
    integral floats read as integers. `5.5` is still no integer."""
    try:
        value = msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        if not refused_only_for_whole_float(exc):
            raise _refused(exc) from None
        check_depth(raw)  # the untyped decode and its walk below recurse
        try:
            value = msgspec.convert(whole_floats_as_ints(msgspec.json.decode(raw)), kind)
        except msgspec.ValidationError as again:
            raise _refused(again) from None
        except (msgspec.DecodeError, RecursionError):
            raise InvalidRequestError("the body is not valid JSON") from None
    except msgspec.DecodeError:
        raise InvalidRequestError("the body is not valid JSON") from None
    if isinstance(value, Input | Query):
        value.check()
    return value


def parse_input(kind: type[T], data: dict[str, Any]) -> T:
    """Python values (the CLI's flags; None = not given) as `kind`, every rule checked."""
    try:
        value = msgspec.convert({k: v for k, v in data.items() if v is not None}, kind)
    except msgspec.ValidationError as exc:
        raise _refused(exc) from None
    if isinstance(value, Input | Query):
        value.check()
    return value


def parse_query(kind: type[T], params: dict[str, str]) -> T:
    """Query parameters (strings) as `kind`: numbers from their decimal spelling only
    (`1e20` is not an integer), ranges and patterns as in a body. A query string has no
    null: `?scope=null` is a value (and not a valid scope), not "no filter"."""
    try:
        value = msgspec.convert(params, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _refused(exc) from None
    for name in params:
        if name in kind.__struct_fields__ and getattr(value, name) is None:  # type: ignore[attr-defined]
            raise InvalidRequestError(f"'{name}' must be a value; leave it out for no filter",
                                      param=name)
    if isinstance(value, Input | Query):
        value.check()
    return value


def check_path(params: dict[str, str]) -> None:
    """Each path parameter against its pattern (`/admin/keys/%00` is a 400, not a lookup)."""
    for name, value in params.items():
        try:
            msgspec.convert(value, PATH_PARAMS[name])
        except msgspec.ValidationError as exc:
            message = str(exc).partition(" - at ")[0]
            raise InvalidRequestError(_worded(message, name), param=name) from None
