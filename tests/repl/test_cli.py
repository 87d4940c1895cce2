"""The `gatewise repl` command: registered in the CLI, Textual imported only when it runs (a
clear install hint without it), and pipeline files checked with the file and key named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gatewise.cli.main import main
from gatewise.cli.repl.pipeline import DEFAULT_PIPELINE, load_pipeline, parse_pipeline
from gatewise.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "repl" / "pipeline.yaml"


def test_without_textual_the_command_says_which_extra_to_install(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "textual", None)  # `import textual` raises ImportError
    assert main(["repl", "--offline"]) == 2
    assert "pip install 'gatewise[repl]'" in capsys.readouterr().err


def test_url_and_in_process_options_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repl", "--url", "http://127.0.0.1:4000", "--offline"]) == 2
    assert "--url" in capsys.readouterr().err


def test_the_cli_module_does_not_import_textual_until_the_command_runs() -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys; from gatewise.cli import main, repl;"
                          " print('textual' in sys.modules)"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_shipped_example_pipeline_loads() -> None:
    spec = load_pipeline(EXAMPLE)
    assert [s.name for s in spec.steps] == ["route", "tool", "answer"]
    assert spec.steps[1].tools == ["current_time", "word_count"]
    assert DEFAULT_PIPELINE.answer.name == "answer" and DEFAULT_PIPELINE.answer.model is None


@pytest.mark.parametrize(("data", "path"), [
    ({"steps": []}, "steps"),
    ({"steps": [{"name": "a"}, {"name": "a"}]}, "steps[1].name"),
    ({"steps": [{"name": "input"}]}, "steps[0].name"),
    ({"steps": [{"name": "a", "tools": ["nope"]}]}, "steps[0].tools"),
    ({"steps": [{"name": "a", "prompt": "{{ broken"}]}, "steps[0].prompt"),
])
def test_a_broken_pipeline_is_a_config_error_naming_the_key(data: object, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline(data, "p.yaml")
    assert path in str(err.value) and "p.yaml" in str(err.value)


def test_unknown_keys_and_bad_step_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown|Object contains unknown field"):
        parse_pipeline({"steps": [{"name": "a", "modle": "x"}]})
    with pytest.raises(ConfigError):
        parse_pipeline({"steps": [{"name": "two words"}]})
