"""A small pure-Python reader for the flat Parquet files some corpora ship as data.

Why not pyarrow: it is a 40 MB dependency for reading three files of a few hundred kilobytes at
corpus-build time (`corpus.corpus()` caches the result), and gatewise's core dependencies stay
few. So this reads exactly what those files use and refuses the rest with `ParquetError`:

- the footer (`FileMetaData`) in Thrift's compact protocol, read generically into field-id maps;
- top-level leaf columns, required or optional (definition levels of bit width 1); nested
  columns (lists, maps) are skipped, not read;
- BOOLEAN, INT32, INT64, FLOAT, DOUBLE and BYTE_ARRAY columns (UTF-8 annotated ones as `str`);
- PLAIN, PLAIN_DICTIONARY / RLE_DICTIONARY and the RLE/bit-packed hybrid;
- data pages v1 and v2 and dictionary pages, UNCOMPRESSED, SNAPPY (raw block format,
  decompressed here) or GZIP pages.

Spec: https://github.com/apache/parquet-format (`parquet.thrift`, `Encodings.md`) and the Snappy
format description (`format_description.txt` in google/snappy). Nothing is imported from the
files read; a malformed file raises `ParquetError`, never anything else.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Value = bool | int | float | str | bytes | None

_MAGIC = b"PAR1"
# Physical types (parquet.thrift `Type`).
_BOOLEAN, _INT32, _INT64, _INT96, _FLOAT, _DOUBLE, _BYTE_ARRAY = 0, 1, 2, 3, 4, 5, 6
# Encodings.
_PLAIN, _PLAIN_DICTIONARY, _RLE, _RLE_DICTIONARY = 0, 2, 3, 8
# Page types.
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
# Codecs.
_UNCOMPRESSED, _SNAPPY, _GZIP = 0, 1, 2
_REQUIRED, _OPTIONAL = 0, 1
_UTF8 = 0  # ConvertedType UTF8


class ParquetError(ValueError):
    """The file is not Parquet, or uses a feature this reader does not implement."""


# --- Thrift compact protocol ---------------------------------------------------------------------

class _Thrift:
    """Reads compact-protocol values into plain Python: a struct is `{field id: value}`, a list a
    `list`, a map a `dict`; which field means what is the caller's business (`parquet.thrift`)."""

    def __init__(self, data: bytes, at: int = 0) -> None:
        self.data, self.at = data, at

    def byte(self) -> int:
        if self.at >= len(self.data):
            raise ParquetError("truncated thrift data")
        b = self.data[self.at]
        self.at += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 70:
                raise ParquetError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise ParquetError("truncated thrift data")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def value(self, kind: int) -> Any:
        if kind in (1, 2):  # bool inside a struct is in the field header; in a list, one byte
            return kind == 1
        if kind == 3:
            return struct.unpack("<b", self.take(1))[0]
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            return struct.unpack("<d", self.take(8))[0]
        if kind == 8:
            return self.take(self.varint())
        if kind in (9, 10):
            return self.list()
        if kind == 11:
            return self.map()
        if kind == 12:
            return self.struct()
        raise ParquetError(f"unknown thrift type {kind}")

    def list(self) -> list[Any]:
        header = self.byte()
        size, kind = header >> 4, header & 0x0F
        if size == 15:
            size = self.varint()
        if kind in (1, 2):
            return [self.byte() == 1 for _ in range(size)]
        return [self.value(kind) for _ in range(size)]

    def map(self) -> dict[Any, Any]:
        size = self.varint()
        if size == 0:
            return {}
        kinds = self.byte()
        return {self.value(kinds >> 4): self.value(kinds & 0x0F) for _ in range(size)}

    def struct(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        field = 0
        while True:
            header = self.byte()
            if header == 0:
                return out
            delta, kind = header >> 4, header & 0x0F
            field = field + delta if delta else self.zigzag()
            out[field] = self.value(kind)


# --- Snappy ------------------------------------------------------------------------------------

def snappy_decompress(data: bytes) -> bytes:
    """Raw Snappy (the block format Parquet pages use, not the framed one)."""
    src = _Thrift(data)
    size = src.varint()
    out = bytearray()
    while src.at < len(data):
        tag = src.byte()
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                n = int.from_bytes(src.take(n - 59), "little")
            out += src.take(n + 1)
            continue
        if kind == 1:
            length, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | src.byte()
        elif kind == 2:
            length, offset = (tag >> 2) + 1, int.from_bytes(src.take(2), "little")
        else:
            length, offset = (tag >> 2) + 1, int.from_bytes(src.take(4), "little")
        if offset == 0 or offset > len(out):
            raise ParquetError("snappy copy out of range")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:  # an overlapping copy repeats the last `offset` bytes
            for i in range(length):
                out.append(out[start + i])
    if len(out) != size:
        raise ParquetError("snappy length mismatch")
    return bytes(out)


def _decompress(codec: int, data: bytes, size: int) -> bytes:
    if codec == _UNCOMPRESSED:
        out = data
    elif codec == _SNAPPY:
        out = snappy_decompress(data)
    elif codec == _GZIP:
        try:
            out = zlib.decompress(data, 47)  # gzip or zlib header
        except zlib.error as exc:
            raise ParquetError(f"bad gzip page: {exc}") from exc
    else:
        raise ParquetError(f"compression codec {codec} not supported")
    if len(out) != size:
        raise ParquetError("page size mismatch")
    return out


# --- encodings ---------------------------------------------------------------------------------

def rle_hybrid(data: bytes, bit_width: int, count: int) -> list[int]:
    """`count` values of the RLE / bit-packed hybrid encoding (definition levels, dictionary
    indices), without its length prefix."""
    src = _Thrift(data)
    width_bytes = (bit_width + 7) // 8
    mask = (1 << bit_width) - 1
    out: list[int] = []
    while len(out) < count:
        header = src.varint()
        if header & 1:  # bit-packed: groups of 8 values, least significant bit first
            groups = header >> 1
            packed = int.from_bytes(src.take(groups * bit_width), "little")
            out += [(packed >> (i * bit_width)) & mask for i in range(groups * 8)]
        else:
            out += [int.from_bytes(src.take(width_bytes), "little")] * (header >> 1)
    return out[:count]


def _plain(data: bytes, kind: int, count: int) -> list[Value]:
    if kind == _BYTE_ARRAY:
        out: list[Value] = []
        at = 0
        for _ in range(count):
            if at + 4 > len(data):
                raise ParquetError("truncated byte array")
            n = int.from_bytes(data[at:at + 4], "little")
            out.append(data[at + 4:at + 4 + n])
            at += 4 + n
        return out
    if kind == _BOOLEAN:
        bits = int.from_bytes(data[:(count + 7) // 8], "little")
        return [bool((bits >> i) & 1) for i in range(count)]
    fmt = {_INT32: "i", _INT64: "q", _FLOAT: "f", _DOUBLE: "d"}.get(kind)
    if fmt is None:
        raise ParquetError(f"physical type {kind} not supported")
    width = struct.calcsize(fmt)
    if len(data) < width * count:
        raise ParquetError("truncated plain values")
    return list(struct.unpack(f"<{count}{fmt}", data[:width * count]))


# --- pages and columns -------------------------------------------------------------------------

class _Column:
    def __init__(self, element: dict[int, Any]) -> None:
        self.name = element.get(4, b"").decode("utf-8")
        self.kind = int(element.get(1, -1))
        self.optional = element.get(3, _REQUIRED) == _OPTIONAL
        logical = element.get(10) or {}
        self.text = element.get(6) == _UTF8 or 1 in logical  # LogicalType STRING is field 1
        if element.get(3) not in (None, _REQUIRED, _OPTIONAL):
            raise ParquetError(f"repeated column {self.name!r} not supported")


def _page_values(column: _Column, encoding: int, body: bytes, count: int,
                 dictionary: list[Value] | None) -> list[Value]:
    if encoding == _PLAIN:
        return _plain(body, column.kind, count)
    if encoding in (_PLAIN_DICTIONARY, _RLE_DICTIONARY):
        if dictionary is None or not body:
            raise ParquetError("dictionary-encoded page without a dictionary")
        try:
            return [dictionary[i] for i in rle_hybrid(body[1:], body[0], count)]
        except IndexError as exc:
            raise ParquetError("dictionary index out of range") from exc
    raise ParquetError(f"encoding {encoding} not supported")


def _with_nulls(values: list[Value], levels: list[int] | None) -> list[Value]:
    if levels is None:
        return values
    it = iter(values)
    return [next(it) if level else None for level in levels]


def _read_column(data: bytes, column: _Column, meta: dict[int, Any]) -> list[Value]:
    codec, total = int(meta.get(4, 0)), int(meta.get(5, 0))
    at = min(x for x in (meta.get(11), meta.get(9)) if x is not None)
    dictionary: list[Value] | None = None
    out: list[Value] = []
    while len(out) < total:
        reader = _Thrift(data, at)
        header = reader.struct()
        kind, size, stored = int(header.get(1, -1)), int(header.get(2, 0)), int(header.get(3, 0))
        raw = reader.take(stored)
        at = reader.at
        if kind == _DICTIONARY_PAGE:
            dictionary = _plain(_decompress(codec, raw, size), column.kind, int(header[7][1]))
        elif kind == _DATA_PAGE:
            out += _data_page_v1(column, header[5], _decompress(codec, raw, size), dictionary)
        elif kind == _DATA_PAGE_V2:
            out += _data_page_v2(column, header[8], raw, codec, size, dictionary)
        else:
            raise ParquetError(f"page type {kind} not supported")
    return out


def _data_page_v1(column: _Column, header: dict[int, Any], page: bytes,
                  dictionary: list[Value] | None) -> list[Value]:
    count = int(header[1])
    levels = None
    if column.optional:
        n = int.from_bytes(page[:4], "little")
        levels = rle_hybrid(page[4:4 + n], 1, count)
        page = page[4 + n:]
    present = count if levels is None else sum(levels)
    return _with_nulls(_page_values(column, int(header[2]), page, present, dictionary), levels)


def _data_page_v2(column: _Column, header: dict[int, Any], raw: bytes, codec: int, size: int,
                  dictionary: list[Value] | None) -> list[Value]:
    count, def_len, rep_len = int(header[1]), int(header.get(5, 0)), int(header.get(6, 0))
    if rep_len:
        raise ParquetError("repetition levels not supported")
    levels = rle_hybrid(raw[:def_len], 1, count) if column.optional else None
    body = raw[def_len:]
    if header.get(7, True):
        body = _decompress(codec, body, size - def_len)
    present = count if levels is None else sum(levels)
    return _with_nulls(_page_values(column, int(header[4]), body, present, dictionary), levels)


def _text(column: _Column, values: list[Value]) -> list[Value]:
    if not column.text:
        return values
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
    except UnicodeDecodeError as exc:
        raise ParquetError(f"column {column.name!r} is not UTF-8") from exc


def _leaves(schema: list[dict[int, Any]]) -> list[_Column | None]:
    """One entry per column chunk (per leaf of the schema tree, in order): the column when it
    is a top-level leaf, None for a leaf inside a nested group (a list, a map), which is
    skipped, not read."""
    if not schema:
        raise ParquetError("empty schema")
    out: list[_Column | None] = []
    pending = [int(schema[0].get(5, 0))]  # children still to read at each open depth
    for element in schema[1:]:
        if not pending:
            raise ParquetError("schema has more elements than its root declares")
        pending[-1] -= 1
        children = int(element.get(5, 0))
        if children:
            pending.append(children)
        else:
            out.append(_Column(element) if len(pending) == 1 else None)
        while pending and pending[-1] == 0 and len(pending) > 1:
            pending.pop()
    return out


def read_columns(data: bytes, names: Sequence[str] | None = None) -> dict[str, list[Value]]:
    """The named top-level columns (every one when None) of a Parquet file, in row order."""
    if len(data) < 12 or data[:4] != _MAGIC or data[-4:] != _MAGIC:
        raise ParquetError("not a Parquet file")
    footer_len = int.from_bytes(data[-8:-4], "little")
    if footer_len > len(data) - 12:
        raise ParquetError("footer length out of range")
    meta = _Thrift(data[-8 - footer_len:-8]).struct()
    columns = _leaves(meta.get(2) or [])
    flat = [c.name for c in columns if c is not None]
    wanted = flat if names is None else list(names)
    missing = set(wanted) - set(flat)
    if missing:
        raise ParquetError(f"no flat column {sorted(missing)}")
    out: dict[str, list[Value]] = {name: [] for name in wanted}
    try:
        for group in meta.get(4) or []:
            for column, chunk in zip(columns, group[1], strict=True):
                if column is not None and column.name in out:
                    out[column.name] += _text(column, _read_column(data, column, chunk[3]))
    except (KeyError, TypeError, ValueError, StopIteration, struct.error) as exc:
        if isinstance(exc, ParquetError):
            raise
        raise ParquetError(f"malformed Parquet: {exc!r}") from exc
    return out


def read_rows(path: Path, names: Sequence[str]) -> list[dict[str, Value]]:
    """The rows of a Parquet file, each a dict of the named top-level columns."""
    columns = read_columns(path.read_bytes(), names)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ParquetError("columns of different lengths")
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
