"""PII guardrail: offline Presidio detection, reversible per-conversation masking, and
streaming-safe unmasking. Importing this package does not import Presidio or spaCy; the
analyzer is built on first use, in a worker thread."""

from gatewise.guardrails.pii.engine import (
    DEFAULT_ENTITIES,
    NER_ENTITIES,
    CustomRecognizer,
    Finding,
    PIIDetector,
    build_analyzer,
)
from gatewise.guardrails.pii.masking import (
    MaskOutcome,
    PIIAction,
    StreamUnmasker,
    mask_request,
    unmask_completion,
    unmask_json_text,
    unmask_text,
)
from gatewise.guardrails.pii.middleware import PIIMiddleware, PIIPolicy
from gatewise.guardrails.pii.vault import PIIVault

__all__ = [
    "DEFAULT_ENTITIES",
    "NER_ENTITIES",
    "CustomRecognizer",
    "Finding",
    "MaskOutcome",
    "PIIAction",
    "PIIDetector",
    "PIIMiddleware",
    "PIIPolicy",
    "PIIVault",
    "StreamUnmasker",
    "build_analyzer",
    "mask_request",
    "unmask_completion",
    "unmask_json_text",
    "unmask_text",
]
