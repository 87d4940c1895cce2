"""Every error gatewise raises, in one tree, so callers can catch at the level they care about.

```
GatewayError                      .status (HTTP) and .retryable on every class
├── ConfigError
├── InvalidRequestError           caller's mistake, names the field (.param)
│   ├── ModelNotFoundRequestError the requested model/alias is not configured (404)
│   ├── RequestTooLargeError 413 · RequestHeadersTooLargeError 431 · RequestTimeoutError 408
│   │   · MalformedRequestError 400   the HTTP layer's limits (`server/protocol.py`)
│   ├── ConflictError 409 → NotConfiguredError    the state (or the config) refuses it
│   ├── NotFoundError 404 → KeyNotFoundError, TeamNotFoundError, CredentialNotFoundError,
│   │                       ConversationNotFoundError, CollectionNotFoundError,
│   │                       DocumentNotFoundError
│   ├── UnsupportedDocumentError 415 · EmptyDocumentError 400   a document rag/ cannot read
│   └── PromptNotFoundError · PromptVariableError → MissingPromptVariableError
│       · PromptRenderError   a template request the caller got wrong (400, never 500)
├── SecretBoxError 500 · CredentialRotationError 502   secrets at rest
├── IngestionFailedError 502     no document of an upload could be stored (rag/)
├── ServerShuttingDownError 503   the server is draining; retryable (on another replica)
├── CacheMissError 504            `x-gatewise-cache: only-if-cached` and nothing cached
├── ProviderError(provider, model, status, headers, body)   never subclasses a vendor SDK type
│   ├── ProviderConnectionError / ProviderTimeoutError       retryable
│   ├── AuthenticationError 401 · PermissionDeniedError 403 · ModelNotFoundError 404
│   ├── BadRequestError 400 → ContextLengthExceededError, ContentFilteredError
│   ├── RateLimitedError(retry_after) 429                    retryable
│   │   └── QuotaExhaustedError 429   out of quota/credit: not retryable, fallbacks still apply
│   ├── ProviderServerError 5xx/529                          retryable
│   └── ProviderResponseError 502                            upstream answered garbage
├── PolicyError
│   ├── UnauthorizedError 401 · ForbiddenError 403 (the caller's gateway key)
│   ├── BudgetExceededError 402 · RateLimitExceeded 429 · CircuitOpenError 503 (retry_after)
│   ├── BudgetStoreUnavailable 503 (budgets fail closed)
│   └── GuardrailViolation → PIIViolation, PromptInjectionDetected, ToolCallRejected,
│                            OutputCheckFailed
└── AllTargetsFailedError         fallback exhausted; carries every attempt's error
```

Each class knows its HTTP status and its OpenAI error `type`/`code`, so the server turns any of
them into OpenAI's error JSON in one place (`to_openai`, called by `gatewise.server.errors`) and
the official SDK raises its own matching typed error. Provider errors keep the upstream body for
diagnosis but never print it in `str()`: bodies can echo prompts.

A message that may carry text an upstream wrote (`upstream_text`: provider errors, and the
fallback/orchestration errors that quote them) reaches clients only through `public_text`:
control characters dropped; URLs, host names, IP addresses, ports, file paths and secret-looking
tokens replaced by placeholders; at most `PUBLIC_MESSAGE_MAX` characters. An upstream may be an
internal service that names its neighbours or echoes credentials; what stays is the part SDK
users act on ("This model's maximum context length is 8192 tokens...").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

PUBLIC_MESSAGE_MAX = 300
_SCAN_MAX = 2048  # a longer upstream text is cut (at a space) before it is cleaned
# ANSI escape sequences, C0/C1 controls, zero-width and bidi-override characters.
_CONTROL = re.compile(r"\x1b\[[0-9;?]{0,16}[ -/]{0,2}[@-~]"
                      r"|[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]+")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Top-level domains that mark a word as a host name ("messages.0.content.text" is not one).
_TLDS = ("com|net|org|io|ai|dev|app|cloud|co|info|biz|me|us|uk|de|fr|eu|nl|jp|cn|ru|in|sh|"
         "internal|local|localdomain|lan|corp|home|intranet|private|svc|cluster|test|example|"
         "invalid|arpa|localhost")
_SCRUB: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b[a-z][a-z0-9+.-]{0,30}://\S*"), "[url]"),  # bounded: no O(n²)
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [redacted]"),
    # `name: value` / `name=value` for names that hold credentials ("Authorization: Basic x").
    (re.compile(r"(?i)\b(api[_-]?key|(?:access|refresh|id)[_-]?token|token|(?:client[_-]?)?secret"
                r"|password|passwd|pwd|authorization|credentials?)(\"?\s*[:=]\s*\"?)"
                r"(?:(?:bearer|basic|digest)\s+)?[^\s\"',;]+"), r"\1\2[redacted]"),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_*-]{6,}|\bAIza[0-9A-Za-z_-]{16,}|\bAKIA[0-9A-Z]{12,}"
                r"|\bgh[pousr]_[A-Za-z0-9]{16,}|\bxox[abprs]-[A-Za-z0-9-]{10,}"
                r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?"), "[redacted]"),
    (re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d{1,5})?"
                r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){3,7}[0-9A-Fa-f]{1,4}(?![\w:])"
                r"|(?<![\w:])(?=[0-9A-Fa-f:]*[0-9A-Fa-f])(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?"
                r"::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?(?![\w:])"), "[address]"),
    (re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])"), "[address]"),
    (re.compile(rf"(?<![\w.-])(?:{_HOST_LABEL}\.)*[A-Za-z][A-Za-z0-9-]{{0,62}}:\d{{2,5}}(?!\w)"),
     "[address]"),
    (re.compile(rf"(?i)(?<![\w.-])(?:(?:{_HOST_LABEL}\.)+(?:{_TLDS})|localhost)(?![\w-])"),
     "[host]"),
    (re.compile(r"(?<![\w.])(?:/[\w.-]+){2,}/?|\b[A-Za-z]:\\\S+"), "[path]"),
)
_LONG_WORD = re.compile(r"[A-Za-z0-9+/=_-]{16,}")
_PIECE = re.compile(r"[-_]")
_SPACES = re.compile(r"\s{2,}")


def public_text(text: str, limit: int = PUBLIC_MESSAGE_MAX) -> str:
    """`text` (possibly written by an upstream) made fit for a client: see the module docstring.
    Deterministic and bounded: only the first `_SCAN_MAX` characters are looked at."""
    if len(text) > _SCAN_MAX:
        cut = text.rfind(" ", 0, _SCAN_MAX)
        text = text[:cut if cut > 0 else _SCAN_MAX]  # no half word (half a secret) at the end
    text = _CONTROL.sub(" ", text)
    for pattern, placeholder in _SCRUB:
        text = pattern.sub(placeholder, text)
    text = _LONG_WORD.sub(_secret_or_word, text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        text = text[:cut if cut > limit // 2 else limit - 1].rstrip() + "…"
    return text


def _secret_or_word(m: re.Match[str]) -> str:
    """A long run of letters and digits in one piece (ids, keys, hashes, base64) is hidden;
    a long name made of short parts (`llama-3.1-8b-instruct-q4_k_m`) is kept."""
    word = m.group(0)
    for piece in _PIECE.split(word):
        if len(piece) >= 16 and any(c.isdigit() for c in piece) \
                and any(c.isalpha() for c in piece):
            return "[redacted]"
    return word


class GatewayError(Exception):
    """Root of the tree. `status` is the HTTP status a server answers with."""

    status: int = 500
    retryable: bool = False
    error_type: str = "api_error"
    code: str | None = None
    # Whether `message` may quote an upstream (its error text, an internal address): then
    # clients see it only through `public_text`.
    upstream_text: bool = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def public_message(self) -> str:
        """The message a client may see (an API response body, a tool call's arguments)."""
        return public_text(self.message) if self.upstream_text else self.message

    def to_openai(self) -> dict[str, Any]:
        """The error object OpenAI's clients parse: `{"error": {message, type, param, code}}`."""
        return {
            "error": {
                "message": self.public_message(),
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(GatewayError):
    """The configuration is wrong; `str()` names the file, the key path and the problem.

    `.message` leaves the file out (`security.encryption_key: …`): it is what may travel
    further (an escalation result, an error body), and a server's file paths are nobody
    else's business. The server goes further still (see `gatewise.server.errors`)."""

    status = 500
    error_type = "configuration_error"

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{path}: {message}" if path else message)
        self.args = (f"{where}: {message}" if where else message,)
        self.file = file
        self.path = path


class InvalidRequestError(GatewayError):
    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class RequestHeadersTooLargeError(InvalidRequestError):
    """The request line and headers (or a chunked body's trailers) passed
    `server.max_header_bytes`, or the fields `server.max_headers`."""

    status = 431
    code = "request_headers_too_large"


class RequestTimeoutError(InvalidRequestError):
    """The client was too slow: headers not complete within `server.header_timeout_s`, or a
    body that stalled (`server.body_timeout_s`) or took too long (`server.body_total_timeout_s`)."""

    status = 408
    code = "request_timeout"


class MalformedRequestError(InvalidRequestError):
    """Bytes that are not HTTP/1.1: a bad request line, header or chunked framing."""

    code = "invalid_http"


class ModelNotFoundRequestError(InvalidRequestError):
    status = 404
    code = "model_not_found"


class ConflictError(InvalidRequestError):
    """A well-formed request the current state refuses: a team that already exists, a team
    that still has live keys, a key already rotated (409, so clients can tell it from a
    malformed request)."""

    status = 409
    code = "conflict"


class NotConfiguredError(ConflictError):
    """The request needs a feature this gateway is not configured for (e.g. storing provider
    credentials without `security.encryption_key`). The message names the config key, never
    the config file; retrying cannot help until an operator sets it."""

    code = "not_configured"


class NotFoundError(InvalidRequestError):
    """An admin API object (key, team, budget, credential) that does not exist."""

    status = 404
    code = "not_found"


class KeyNotFoundError(NotFoundError):
    code = "key_not_found"


class TeamNotFoundError(NotFoundError):
    code = "team_not_found"


class ConversationNotFoundError(NotFoundError):
    """A conversation id the caller's team does not have (another team's reads the same)."""

    code = "conversation_not_found"


class CredentialNotFoundError(NotFoundError):
    code = "credential_not_found"


class CollectionNotFoundError(NotFoundError):
    """A knowledge-base collection the caller's team cannot see (another team's private one
    answers the same, so its existence does not leak)."""

    code = "collection_not_found"


class DocumentNotFoundError(NotFoundError):
    code = "document_not_found"


class MaintenanceJobNotFoundError(NotFoundError):
    code = "maintenance_job_not_found"


class UnsupportedDocumentError(InvalidRequestError):
    """A document the loaders cannot read: an unknown file type, an empty or malformed file
    (a broken PDF), text that is not UTF-8. Nothing of it is stored."""

    status = 415
    code = "unsupported_document"


class EmptyDocumentError(InvalidRequestError):
    code = "empty_document"


class IngestionFailedError(GatewayError):
    """Every document of an ingestion failed after loading (embedding or storing them), so
    nothing was stored: a 502, since the cause is usually the embedding model's."""

    status = 502
    code = "ingestion_failed"


class PromptNotFoundError(InvalidRequestError):
    """A request names a prompt template (or version) that does not exist: a 400 like any
    unknown parameter value (the admin API's own lookups answer 404)."""

    code = "prompt_not_found"


class PromptVariableError(InvalidRequestError):
    """A template variable of the wrong type, or one the template does not declare."""

    code = "invalid_prompt_variable"


class MissingPromptVariableError(PromptVariableError):
    """A required template variable was not given; `param` names it."""

    code = "missing_prompt_variable"


class PromptRenderError(InvalidRequestError):
    """A template failed to compile or render (a syntax error, an undefined name, a refused
    attribute, anything Python raised underneath): the template's fault, never a 500."""

    code = "prompt_render_error"


class SecretBoxError(GatewayError):
    """A sealed secret did not open: tampered, truncated, or sealed under another key or
    context. Never says which, and never carries key material."""

    status = 500
    error_type = "api_error"
    code = "decryption_failed"


class CredentialRotationError(GatewayError):
    """Rotating a provider credential failed; the old secret stays in use."""

    status = 502
    code = "credential_rotation_failed"


class ServerShuttingDownError(GatewayError):
    """The server is shutting down: new work is refused, and work still running when the
    shutdown grace period ends is cut with this error (a 503, or a stream's last event)."""

    status = 503
    retryable = True
    error_type = "api_error"
    code = "server_shutting_down"


class CacheMissError(GatewayError):
    """The caller asked for a cached answer only (`x-gatewise-cache: only-if-cached`, or the
    library's `cache={"mode": "only-if-cached"}`) and none is stored: 504, as HTTP caches do."""

    status = 504
    error_type = "api_error"
    code = "cache_miss"


class ProviderError(GatewayError):
    """The upstream failed. Carries what it said so operators can diagnose it."""

    status = 502
    error_type = "api_error"
    code = "upstream_error"
    upstream_text = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        upstream_status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        param: str | None = None,
        code: str | None = None,
    ):
        prefix = f"{provider} error" if provider else "provider error"
        if model:
            prefix += f" ({model})"
        super().__init__(f"{prefix}: {message}", param=param, code=code)
        self.provider = provider
        self.model = model
        self.upstream_status = upstream_status
        self.headers = dict(headers or {})
        self.body = body


class ProviderConnectionError(ProviderError):
    status = 502
    retryable = True
    code = "upstream_connection_error"


class ProviderTimeoutError(ProviderError):
    status = 504
    retryable = True
    code = "upstream_timeout"


class ProviderResponseError(ProviderError):
    """The upstream answered something that is not its protocol (bad JSON, cut stream)."""

    status = 502
    retryable = True
    code = "upstream_bad_response"


class AuthenticationError(ProviderError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(ProviderError):
    status = 403
    error_type = "permission_error"
    code = "permission_denied"


class ModelNotFoundError(ProviderError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class BadRequestError(ProviderError):
    status = 400
    error_type = "invalid_request_error"
    code = "bad_request"


class ContextLengthExceededError(BadRequestError):
    code = "context_length_exceeded"


class ContentFilteredError(BadRequestError):
    code = "content_filter"


class RateLimitedError(ProviderError):
    status = 429
    retryable = True
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class QuotaExhaustedError(RateLimitedError):
    """The account is out of quota or credit (OpenAI's 429 `insufficient_quota`). Still a rate
    limit to clients and to fallback rules (another deployment may have credit), but another
    attempt on the same deployment cannot succeed, so it is never retried there."""

    retryable = False
    error_type = "insufficient_quota"
    code = "insufficient_quota"


class ProviderServerError(ProviderError):
    status = 502
    retryable = True
    code = "upstream_server_error"


class ProviderOverloadedError(ProviderServerError):
    status = 503
    code = "upstream_overloaded"


class PolicyError(GatewayError):
    status = 403
    error_type = "policy_error"


class UnauthorizedError(PolicyError):
    """The caller did not present a valid key for this gateway (not a provider's key)."""

    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class ForbiddenError(PolicyError):
    status = 403
    error_type = "permission_error"
    code = "permission_denied"


class BudgetExceededError(PolicyError):
    status = 402
    error_type = "insufficient_quota"
    code = "budget_exceeded"


class RateLimitExceeded(PolicyError):
    status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None,
                 headers: Mapping[str, str] | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after
        # OpenAI's `x-ratelimit-*` headers, sent with the 429.
        self.headers = dict(headers or {})


class BudgetStoreUnavailable(PolicyError):
    """The budget counters cannot be reached and budgets fail closed."""

    status = 503
    error_type = "api_error"
    code = "budget_store_unavailable"


class CircuitOpenError(PolicyError):
    """The deployment (or every deployment of an alias) has an open circuit breaker.

    `retry_after` is the number of seconds until a half-open probe may be sent (None when
    unknown); the server sends it as `Retry-After`, so clients come back when it is useful."""

    status = 503
    retryable = True
    error_type = "api_error"
    code = "circuit_open"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class GuardrailViolation(PolicyError):
    status = 400
    error_type = "invalid_request_error"
    code = "guardrail_violation"


class PIIViolation(GuardrailViolation):
    code = "pii_detected"


class PromptInjectionDetected(GuardrailViolation):
    code = "prompt_injection_detected"


class ToolCallRejected(GuardrailViolation):
    code = "tool_call_rejected"


class OutputCheckFailed(GuardrailViolation):
    """The model's answer failed an output check (toxicity, code, groundedness) set to block."""

    code = "output_check_failed"


class AllTargetsFailedError(GatewayError):
    """Every deployment tried failed; `.errors` keeps each attempt's error in order."""

    retryable = False
    upstream_text = True  # orchestration quotes each model's error

    def __init__(self, message: str, errors: Sequence[GatewayError]):
        super().__init__(message)
        self.errors = list(errors)
        last = self.errors[-1] if self.errors else None
        if last is not None:
            self.status = last.status
            self.error_type = last.error_type
            self.code = last.code


__all__ = [
    "AllTargetsFailedError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigError",
    "ConflictError",
    "ContentFilteredError",
    "ContextLengthExceededError",
    "ForbiddenError",
    "GatewayError",
    "GuardrailViolation",
    "InvalidRequestError",
    "ModelNotFoundError",
    "ModelNotFoundRequestError",
    "NotConfiguredError",
    "PIIViolation",
    "PermissionDeniedError",
    "PolicyError",
    "PromptInjectionDetected",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderOverloadedError",
    "ProviderResponseError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "QuotaExhaustedError",
    "RateLimitExceeded",
    "RateLimitedError",
    "RequestTooLargeError",
    "ToolCallRejected",
    "UnauthorizedError",
]
