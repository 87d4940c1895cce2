"""Prompt templates (sandboxed Jinja2, versioned, from config, prompt files or the admin API),
few-shot example sets chosen by similarity within a token budget, structured-output and role
framing as template features, and model-specific formatting applied per deployment.

Built by `Prompts` (`build.py`) once per gateway; see `middleware.py` for where it meets a call.
"""

from __future__ import annotations

from gatewise.prompts.build import Prompts
from gatewise.prompts.fewshot import Example, FewShotSelector
from gatewise.prompts.formats import FormatTable, ModelFormat
from gatewise.prompts.render import RenderedPrompt
from gatewise.prompts.spec import (
    MissingPromptVariableError,
    PromptNotFoundError,
    PromptSpec,
    PromptVariableError,
)

__all__ = ["Example", "FewShotSelector", "FormatTable", "MissingPromptVariableError",
           "ModelFormat", "PromptNotFoundError", "PromptSpec", "PromptVariableError", "Prompts",
           "RenderedPrompt"]
