"""Where gatewise keeps files it can rebuild (the user cache), read from the environment here
because environment reads live in `gatewise.config` only.

`GATEWISE_CACHE_DIR` wins; otherwise `$XDG_CACHE_HOME/gatewise`, otherwise `~/.cache/gatewise`
(the XDG base-directory default). Nothing is created here: the writer creates what it writes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def user_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user cache directory for gatewise (`env` defaults to the process environment)."""
    env = os.environ if env is None else env
    explicit = env.get("GATEWISE_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "gatewise"


def write_private(path: Path, data: bytes) -> None:
    """Writes a rebuildable file atomically and privately: a 0600 temporary file beside `path`
    (its folder created 0700), then `os.replace`, so a reader never sees half a file and other
    users of the machine never read it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
