"""Output checks: toxicity/profanity, fenced code that must parse, groundedness against the
supplied context; each can flag, block or trigger one retry."""

from gatewise.errors import OutputCheckFailed
from gatewise.guardrails.output.checks import (
    CodeCheck,
    Finding,
    GroundednessCheck,
    OutputCheck,
    ToxicityCheck,
    context_of,
    load_word_list,
)
from gatewise.guardrails.output.middleware import OutputCheckMiddleware

__all__ = [
    "CodeCheck",
    "Finding",
    "GroundednessCheck",
    "OutputCheck",
    "OutputCheckFailed",
    "OutputCheckMiddleware",
    "ToxicityCheck",
    "context_of",
    "load_word_list",
]
