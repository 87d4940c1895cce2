"""The template engine: Jinja2's `SandboxedEnvironment` with `StrictUndefined`.

Why Jinja2, sandboxed: it is the engine prompt authors already know (Hugging Face chat
templates, LangChain, Promptfoo use it), it is maintained, and its sandbox is the part other
projects rely on to render text they did not write. The sandbox refuses attribute access to
internals (`{{ ''.__class__.__mro__ }}` is a `SecurityError`, never a walk to `os`), and
`StrictUndefined` makes a misspelt or missing variable an error rather than an empty string
that silently changes the prompt. On top of that:

- `*` and `**` are checked before they run, so `{{ 'x' * 10**9 }}` cannot allocate a gigabyte
  (the sandbox bounds `range` only);
- every rendering is capped (`MAX_RENDERED_CHARS`);
- any failure while rendering, whatever Python raises underneath (`{{ 1 / 0 }}`), becomes an
  `InvalidRequestError` (400) that says which template and field failed, never a 500.

Jinja2 is imported when the first template is compiled, so `import gatewise` stays fast. One
`TemplateEngine` per gateway; compiled templates are cached on it by source text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gatewise.errors import PromptRenderError

if TYPE_CHECKING:
    from jinja2 import Template

MAX_RENDERED_CHARS = 200_000
_MARKUP = re.compile(r"\{[{%#]")
MAX_OPERAND = 100_000  # the largest repeat count or exponent `*` / `**` accept
_CACHE_MAX = 4096


__all__ = ["MAX_RENDERED_CHARS", "PromptRenderError", "TemplateEngine"]


def _sandbox() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import SandboxedEnvironment

    class _Bounded(SandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            for value in (left, right):
                if isinstance(value, int) and abs(value) > MAX_OPERAND:
                    raise SecurityError(f"'{operator}' with an operand above {MAX_OPERAND}")
            if operator == "*":
                size = next((len(v) for v in (left, right) if isinstance(v, str | list | tuple)),
                            None)
                count = next((v for v in (left, right) if isinstance(v, int)), 1)
                if size is not None and size * count > MAX_RENDERED_CHARS:
                    raise SecurityError("a repeated value longer than a prompt may be")
            return super().call_binop(context, operator, left, right)

    return _Bounded(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class TemplateEngine:
    """Compiles and renders template text; compiled templates are cached by source."""

    def __init__(self) -> None:
        self._env: Any = None
        self._compiled: dict[str, Template] = {}
        self._lock = threading.Lock()

    def compile(self, source: str, *, where: str) -> Template:
        """The compiled template; a syntax error is a `PromptRenderError` naming `where`."""
        found = self._compiled.get(source)
        if found is not None:
            return found
        with self._lock:
            if self._env is None:
                self._env = _sandbox()
            from jinja2 import TemplateSyntaxError

            try:
                template: Template = self._env.from_string(source)
            except TemplateSyntaxError as exc:
                raise PromptRenderError(f"{where}: template syntax error on line {exc.lineno}: "
                                        f"{exc.message}", param=where) from None
            if len(self._compiled) >= _CACHE_MAX:
                self._compiled.clear()
            self._compiled[source] = template
            return template

    def check(self, source: str, *, where: str) -> None:
        """Compiles `source` now (config loading and the admin API refuse a broken template
        before anyone uses it)."""
        self.compile(source, where=where)

    def render(self, source: str, variables: Mapping[str, Any], *, where: str) -> str:
        if not _MARKUP.search(source):  # plain text: nothing to render (the common field)
            return source
        template = self.compile(source, where=where)
        from jinja2 import TemplateError, UndefinedError

        try:
            # One merged dict as the context's parent (`shared`): what `Template.render`
            # builds, without its per-call copying (most of a short rendering's cost).
            ctx = template.new_context({**self._env.globals, **variables}, shared=True)
            text: str = self._env.concat(template.root_render_func(ctx))
        except UndefinedError as exc:
            raise PromptRenderError(f"{where}: {exc.message}", param=where) from None
        except TemplateError as exc:
            raise PromptRenderError(f"{where}: refused: {exc.message}", param=where) from None
        except RecursionError:
            raise PromptRenderError(f"{where}: the template recurses too deeply",
                                    param=where) from None
        except Exception as exc:  # whatever a filter or operator raised: the template's fault
            raise PromptRenderError(f"{where}: rendering failed ({type(exc).__name__})",
                                    param=where) from None
        if len(text) > MAX_RENDERED_CHARS:
            raise PromptRenderError(f"{where}: the rendered text is longer than "
                                    f"{MAX_RENDERED_CHARS} characters", param=where)
        return text
