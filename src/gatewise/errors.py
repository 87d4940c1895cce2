"""Every error gatewise raises, in one tree, so callers can catch at the level they care about.

```
GatewayError                      .status (HTTP) and .retryable on every class
├── ConfigError
├── InvalidRequestError           caller's mistake, names the field (.param)
│   ├── ModelNotFoundRequestError the requested model/alias is not configured (404)
│   └── NotFoundError 404 → KeyNotFoundError, TeamNotFoundError, CredentialNotFoundError
├── SecretBoxError 500 · CredentialRotationError 502   secrets at rest
├── ProviderError(provider, model, status, headers, body)   never subclasses a vendor SDK type
│   ├── ProviderConnectionError / ProviderTimeoutError       retryable
│   ├── AuthenticationError 401 · PermissionDeniedError 403 · ModelNotFoundError 404
│   ├── BadRequestError 400 → ContextLengthExceededError, ContentFilteredError
│   ├── RateLimitedError(retry_after) 429                    retryable
│   ├── ProviderServerError 5xx/529                          retryable
│   └── ProviderResponseError 502                            upstream answered garbage
├── PolicyError
│   ├── UnauthorizedError 401 · ForbiddenError 403 (the caller's gateway key)
│   ├── BudgetExceededError 402 · RateLimitExceeded 429 · CircuitOpenError 503
│   ├── BudgetStoreUnavailable 503 (budgets fail closed)
│   └── GuardrailViolation → PIIViolation, PromptInjectionDetected, ToolCallRejected,
│                            OutputCheckFailed
└── AllTargetsFailedError         fallback exhausted; carries every attempt's error
```

Each class knows its HTTP status and its OpenAI error `type`/`code`, so the server turns any of
them into OpenAI's error JSON in one place (`gatewise.server.errors`) and the official SDK raises
its own matching typed error. Provider errors keep the upstream body for diagnosis but never
print it in `str()`: bodies can echo prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class GatewayError(Exception):
    """Root of the tree. `status` is the HTTP status a server answers with."""

    status: int = 500
    retryable: bool = False
    error_type: str = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_openai(self) -> dict[str, Any]:
        """The error object OpenAI's clients parse: `{"error": {message, type, param, code}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(GatewayError):
    """The configuration is wrong; the message names the file, the key path and the problem."""

    status = 500
    error_type = "configuration_error"

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.path = path


class InvalidRequestError(GatewayError):
    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class ModelNotFoundRequestError(InvalidRequestError):
    status = 404
    code = "model_not_found"


class NotFoundError(InvalidRequestError):
    """An admin API object (key, team, budget, credential) that does not exist."""

    status = 404
    code = "not_found"


class KeyNotFoundError(NotFoundError):
    code = "key_not_found"


class TeamNotFoundError(NotFoundError):
    code = "team_not_found"


class CredentialNotFoundError(NotFoundError):
    code = "credential_not_found"


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


class ProviderError(GatewayError):
    """The upstream failed. Carries what it said so operators can diagnose it."""

    status = 502
    error_type = "api_error"
    code = "upstream_error"

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
    status = 503
    retryable = True
    error_type = "api_error"
    code = "circuit_open"


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
    "ContentFilteredError",
    "ContextLengthExceededError",
    "ForbiddenError",
    "GatewayError",
    "GuardrailViolation",
    "InvalidRequestError",
    "ModelNotFoundError",
    "ModelNotFoundRequestError",
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
    "RateLimitExceeded",
    "RateLimitedError",
    "RequestTooLargeError",
    "ToolCallRejected",
    "UnauthorizedError",
]
