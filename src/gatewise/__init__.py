"""gatewise: one secure, observable, resilient front door to every large language model.

    import gatewise
    gw = gatewise.Gateway()                  # offline: the embedded local model
    print(gw.chat_sync("Say hi").content)

Names are loaded on first use, so `import gatewise` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Gateway": "gatewise.gateway",
    "ChatResult": "gatewise.pipeline.results",
    "ChatStream": "gatewise.pipeline.results",
    "EmbedResult": "gatewise.pipeline.results",
    "CallInfo": "gatewise.pipeline.results",
    "Identity": "gatewise.pipeline.core",
    "load_config": "gatewise.config.loader",
    "ChatRequest": "gatewise.types.requests",
    "ChatCompletion": "gatewise.types.responses",
    "ChatCompletionChunk": "gatewise.types.stream",
    "Usage": "gatewise.types.responses",
    "EmbeddingRequest": "gatewise.types.embeddings",
    "EmbeddingResponse": "gatewise.types.embeddings",
    "ToolRegistry": "gatewise.tools",
    "McpServer": "gatewise.tools",
    "run_tools": "gatewise.tools",
    "fit_messages": "gatewise.accounting.context",
    "TokenEstimate": "gatewise.accounting.estimate",
    "CostEstimate": "gatewise.accounting.estimate",
    "Title": "gatewise.titles",
    "TitleStream": "gatewise.titles",
}
_ERRORS = (
    "GatewayError", "ConfigError", "InvalidRequestError", "ModelNotFoundRequestError",
    "ProviderError", "ProviderConnectionError", "ProviderTimeoutError", "ProviderResponseError",
    "AuthenticationError", "PermissionDeniedError", "ModelNotFoundError", "BadRequestError",
    "ContextLengthExceededError", "ContentFilteredError", "RateLimitedError",
    "QuotaExhaustedError",
    "ProviderServerError", "ProviderOverloadedError", "PolicyError", "BudgetExceededError",
    "RateLimitExceeded", "CircuitOpenError", "GuardrailViolation", "PIIViolation",
    "PromptInjectionDetected", "ToolCallRejected", "OutputCheckFailed", "AllTargetsFailedError",
    "UnauthorizedError", "ForbiddenError", "NotFoundError", "KeyNotFoundError",
    "TeamNotFoundError", "CredentialNotFoundError", "ConversationNotFoundError",
    "SecretBoxError", "CredentialRotationError",
    "BudgetStoreUnavailable", "ConflictError", "NotConfiguredError",
    "PromptNotFoundError", "PromptVariableError", "MissingPromptVariableError",
    "PromptRenderError", "CollectionNotFoundError", "DocumentNotFoundError",
    "UnsupportedDocumentError", "EmptyDocumentError", "IngestionFailedError",
)
for _name in _ERRORS:
    _EXPORTS[_name] = "gatewise.errors"

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from gatewise.accounting.context import fit_messages as fit_messages
    from gatewise.accounting.estimate import CostEstimate as CostEstimate
    from gatewise.accounting.estimate import TokenEstimate as TokenEstimate
    from gatewise.config.loader import load_config as load_config
    from gatewise.errors import *
    from gatewise.gateway import Gateway as Gateway
    from gatewise.pipeline.core import Identity as Identity
    from gatewise.pipeline.results import CallInfo as CallInfo
    from gatewise.pipeline.results import ChatResult as ChatResult
    from gatewise.pipeline.results import ChatStream as ChatStream
    from gatewise.pipeline.results import EmbedResult as EmbedResult
    from gatewise.titles import Title as Title
    from gatewise.titles import TitleStream as TitleStream
    from gatewise.tools import McpServer as McpServer
    from gatewise.tools import ToolRegistry as ToolRegistry
    from gatewise.tools import run_tools as run_tools
    from gatewise.types.embeddings import EmbeddingRequest as EmbeddingRequest
    from gatewise.types.embeddings import EmbeddingResponse as EmbeddingResponse
    from gatewise.types.requests import ChatRequest as ChatRequest
    from gatewise.types.responses import ChatCompletion as ChatCompletion
    from gatewise.types.responses import Usage as Usage
    from gatewise.types.stream import ChatCompletionChunk as ChatCompletionChunk


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gatewise' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
