"""The console's static files, read once into memory: bytes, gzip, ETag and content type.

The table is built from the package's `static/` folder when the app is created, so a request
can only ever name a file that was in it: the URL path is a dict key, never joined to a
filesystem path, and traversal has nothing to reach. Files are small (the whole console is
well under a megabyte), so holding them and their gzip form costs little and serves each
request without I/O. Vendored libraries carry their version in the file name and are cached
as immutable; everything else is revalidated with its ETag (a 304 costs one round trip).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).with_name("static")

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".txt": b"text/plain; charset=utf-8",
    ".json": b"application/json",
}
_COMPRESSIBLE = frozenset({".html", ".js", ".css", ".svg", ".txt", ".json"})
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: bytes
    content_type: bytes
    cache_control: bytes


def load_assets(root: Path = STATIC) -> dict[str, Asset]:
    """Relative URL path (`app.js`, `pages/keys.js`) → asset, for every servable file."""
    table: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in _TYPES:
            continue
        rel = path.relative_to(root).as_posix()
        body = path.read_bytes()
        zipped = None
        if path.suffix in _COMPRESSIBLE and len(body) > 256:
            zipped = gzip.compress(body, compresslevel=9, mtime=0)
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        cache = IMMUTABLE if rel.startswith("vendor/") else REVALIDATE
        table[rel] = Asset(body, zipped, etag, _TYPES[path.suffix], cache)
    return table


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    """Whether `Accept-Encoding` allows gzip (a `q=0` refuses it)."""
    if not accept_encoding:
        return False
    for part in accept_encoding.lower().split(b","):
        coding, _, params = part.strip().partition(b";")
        if coding.strip() in (b"gzip", b"*"):
            q = params.strip()
            return not (q.startswith(b"q=") and q[2:].strip() in (b"0", b"0.0", b"0.00",
                                                                   b"0.000"))
    return False
