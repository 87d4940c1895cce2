"""The template engine: Jinja2 sandboxed, strict about undefined names, bounded, and every
failure a 400 (`PromptRenderError`) that names the field, never a 500."""

from __future__ import annotations

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.prompts.engine import MAX_RENDERED_CHARS, PromptRenderError, TemplateEngine


@pytest.fixture
def engine() -> TemplateEngine:
    return TemplateEngine()


def test_variables_filters_and_loops_render(engine: TemplateEngine) -> None:
    text = engine.render("Hi {{ name|title }}:{% for i in items %} {{ i }}{% endfor %}",
                         {"name": "ada lovelace", "items": [1, 2]}, where="t")
    assert text == "Hi Ada Lovelace: 1 2"


def test_an_undefined_variable_is_an_error_naming_it(engine: TemplateEngine) -> None:
    with pytest.raises(PromptRenderError) as err:
        engine.render("Hi {{ nmae }}", {"name": "x"}, where="messages[0].content")
    assert err.value.status == 400
    assert "nmae" in err.value.message
    assert err.value.param == "messages[0].content"


@pytest.mark.parametrize("attack", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ x.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ x.__class__.__base__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ ''|attr('__class__') }}",
    "{{ ('{0.__class__}'|attr('format'))(1) }}",
])
def test_the_sandbox_refuses_internals(engine: TemplateEngine, attack: str) -> None:
    with pytest.raises(PromptRenderError) as err:
        engine.render(attack, {"x": "value"}, where="t")
    assert err.value.status == 400
    assert "<class" not in err.value.message


def test_a_format_string_cannot_reach_internals(engine: TemplateEngine) -> None:
    # str.format is the classic way around attribute checks; the sandbox checks it too.
    with pytest.raises(PromptRenderError):
        engine.render("{{ '{0.__class__.__mro__}'.format(x) }}", {"x": "v"}, where="t")


@pytest.mark.parametrize("bomb", ["{{ 'x' * 1000000000 }}", "{{ 9 ** 999999 }}",
                                  "{{ [1] * 10000000 }}", "{% for i in range(10**9) %}{% endfor %}"])
def test_resource_bombs_are_refused_before_they_run(engine: TemplateEngine, bomb: str) -> None:
    with pytest.raises(PromptRenderError):
        engine.render(bomb, {}, where="t")


def test_a_rendering_longer_than_a_prompt_may_be_is_refused(engine: TemplateEngine) -> None:
    with pytest.raises(PromptRenderError, match="longer than"):
        engine.render("{{ x }}{{ x }}", {"x": "a" * (MAX_RENDERED_CHARS // 2 + 1)}, where="t")


@pytest.mark.parametrize("source", ["{{ 1 / 0 }}", "{{ x + 1 }}", "{{ x.nope() }}"])
def test_whatever_python_raises_while_rendering_is_a_400(engine: TemplateEngine,
                                                         source: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        engine.render(source, {"x": "text"}, where="instructions")
    assert err.value.status == 400
    assert err.value.code == "prompt_render_error"


def test_a_syntax_error_names_the_line(engine: TemplateEngine) -> None:
    with pytest.raises(PromptRenderError, match="line 2"):
        engine.check("ok\n{% if %}", where="role")


def test_compiled_templates_are_reused(engine: TemplateEngine) -> None:
    assert engine.compile("{{ a }}", where="t") is engine.compile("{{ a }}", where="t")


def test_importing_gatewise_does_not_import_jinja2() -> None:
    import subprocess
    import sys

    code = "import sys, gatewise, gatewise.gateway; print('jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
