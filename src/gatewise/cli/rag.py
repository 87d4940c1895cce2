"""`gatewise rag ingest | search | ask | delete | collections`: knowledge bases from the
command line.

Like the other admin commands these run in process on a gateway built from the config (no
server, no key): `gw.rag` is the same `Knowledge` facade the HTTP routes call, over the same
store, so what the CLI ingests a server with the same config searches. The caller is the
unrestricted local operator; `--team` picks the team whose collections the command means
(a collection ingested with `--team red` is owned by `red`, and names resolve as they would
for a `red` key).

Ingestion is resumable: every document is stored in a transaction of its own as soon as it
is embedded, and a document whose digest (its text and chunking settings) is already stored
is skipped, so running the same command again after Ctrl-C or a crash picks up where it
stopped. A document's id is its path from the folder holding the PATH named on the command
line (`docs/` → `docs/guide/install.md`; `docs/guide/install.md` → `install.md`), so a
re-run from another working directory still finds it; `--id-prefix` puts a prefix before it.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatewise.cli.rag_progress import Bar, Tally
from gatewise.errors import CollectionNotFoundError, GatewayError, InvalidRequestError
from gatewise.pipeline.core import Identity

# Documents handed to the ingestor at once: enough text for full embedding batches, few
# enough that the bar moves and an interrupted run loses at most one group's work.
_GROUP_CHARS = 400_000
_GROUP_DOCS = 128


def add_parsers(sub: Any) -> None:
    r = sub.add_parser("rag", help="knowledge bases: ingest documents, search, ask with "
                       "citations")
    rs = r.add_subparsers(dest="action", required=True)

    i = rs.add_parser("ingest", help="load, chunk, embed and store files (resumable)")
    i.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    _common(i)
    i.add_argument("--chunker", choices=("fixed", "sentence", "recursive", "code", "semantic"),
                   help="for a new collection (default: rag.chunker)")
    i.add_argument("--id-prefix", default="", help="put before every document id")
    i.add_argument("--recursive", "-r", action="store_true",
                   help="walk sub-folders of a folder (default: its own files only)")
    i.add_argument("--glob", "-g", action="append", default=[], metavar="PATTERN",
                   help="only files whose name or path matches (repeatable): '*.md'")
    i.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="a metadata field on every document (repeatable)")
    i.add_argument("--description", default="", help="for a new collection")
    i.add_argument("--no-progress", action="store_true")

    s = rs.add_parser("search", help="hybrid search: the best chunks with their scores")
    s.add_argument("query")
    _common(s)
    s.add_argument("-k", type=int, default=None, help="how many hits (default: rag.default_k)")
    s.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata equality (repeatable; a JSON value: page=3, draft=false)")
    s.add_argument("--mode", choices=("hybrid", "vector", "bm25"), default="hybrid")
    s.add_argument("--mmr", type=float, default=None,
                   help="diversity: 0 (most diverse) .. 1 (pure relevance)")
    s.add_argument("--rerank", action="store_true", help="re-rank with rag.rerank_model")
    s.add_argument("--json", action="store_true", help="print JSON")

    a = rs.add_parser("ask", help="answer from a collection, with its citations")
    a.add_argument("question")
    _common(a)
    a.add_argument("--model", "-m", help="alias or provider/model (default: config default)")
    a.add_argument("-k", type=int, default=None, help="chunks retrieved")
    a.add_argument("--filter", "-f", action="append", default=[], metavar="KEY=VALUE")
    a.add_argument("--no-stream", action="store_true")
    a.add_argument("--max-tokens", type=int, default=400,
                   help="cap on the answer's length (default 400; a small local model may ramble)")
    a.add_argument("--json", action="store_true", help="print the answer and citations as JSON")

    d = rs.add_parser("delete", help="delete one document, or the whole collection")
    _common(d)
    d.add_argument("--document", "-d", action="append", default=[], metavar="ID",
                   help="a document id (repeatable); without it the collection goes")
    d.add_argument("--yes", "-y", action="store_true",
                   help="do not ask before deleting a whole collection")

    c = rs.add_parser("collections", help="list the collections")
    c.add_argument("--config", "-c")
    c.add_argument("--team", help="as this team sees them (default: every collection)")
    c.add_argument("--json", action="store_true", help="print JSON")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", "-C", required=True, help="name, or owner/name")
    p.add_argument("--config", "-c")
    p.add_argument("--team", help="the team that owns (or reads) the collection")


async def run(args: argparse.Namespace) -> int:
    from gatewise.gateway import Gateway

    gw = Gateway(args.config)
    try:
        if args.action == "ingest":
            return await _ingest(gw, args)
        if args.action == "search":
            return await _search(gw, args)
        if args.action == "ask":
            return await _ask(gw, args)
        if args.action == "delete":
            return await _delete(gw, args)
        return await _collections(gw, args)
    except CollectionNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except InvalidRequestError as exc:
        where = f"{exc.param}: " if exc.param else ""
        print(f"error: {where}{exc}", file=sys.stderr)
        return 2
    finally:
        await gw.aclose()


def identity_for(team: str | None) -> Identity:
    """Without `--team`, the local operator: unrestricted (it holds the config and the
    state), so it sees and changes every collection. With `--team`, a key of that team
    allowed to read and write knowledge bases: names resolve as for that team, its own and
    shared collections are visible, and only its own can change."""
    if not team:
        return Identity(key_id="cli")
    return Identity(team=team, key_id="cli", role="member",
                    permissions=frozenset({"rag:read", "rag:write"}))


# -- ingest -------------------------------------------------------------------------------------

def document_ids(paths: Sequence[str], *, recursive: bool, globs: Sequence[str],
                 prefix: str = "") -> Iterator[tuple[Path, str]]:
    """Each file to ingest with its stable id (see the module docstring), sorted within a
    folder, hidden entries and types no loader reads skipped (a file named directly is
    always taken: if no loader reads it, it fails with the reason)."""
    from gatewise.rag.loaders import find_files

    seen: set[str] = set()
    for arg in paths:
        root = Path(arg)
        if not root.exists():
            raise InvalidRequestError(f"no such file or folder: {arg}", param="PATH")
        base = root.resolve().parent
        for path in find_files([root]):
            if root.is_dir():
                rel_to_root = path.relative_to(root)
                if not recursive and len(rel_to_root.parts) > 1:
                    continue
                if globs and not any(fnmatch.fnmatch(path.name, g)
                                     or fnmatch.fnmatch(rel_to_root.as_posix(), g)
                                     for g in globs):
                    continue
            doc_id = prefix + path.resolve().relative_to(base).as_posix()
            if doc_id in seen:
                continue  # named twice (a file and its folder): ingest it once
            seen.add(doc_id)
            yield path, doc_id


def parse_pairs(items: Sequence[str], param: str) -> dict[str, Any]:
    """`key=value` pairs; a value that parses as JSON (numbers, booleans, null, lists) is
    taken as that, anything else as a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidRequestError(f"expected KEY=VALUE, got {item!r}", param=param)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key] = value
    return out


async def ensure_collection(gw: Any, identity: Identity, name: str, *, chunker: str | None,
                            description: str = "") -> Any:
    """The collection, created (owned by `--team`, or by no team) when it does not exist."""
    try:
        found = await gw.rag.resolve(identity, name)
    except CollectionNotFoundError:
        if "/" in name:
            raise
        created = await gw.rag.create_collection(identity, name, chunker=chunker,
                                                 description=description, team=identity.team)
        print(f"created collection {_label(created)} (chunker {created.chunker}, "
              f"embedder {created.embedder})", file=sys.stderr)
        return created
    if chunker and chunker != found.chunker:
        print(f"warning: {_label(found)} chunks with {found.chunker!r}; --chunker applies to "
              "new collections only", file=sys.stderr)
    return found


async def _ingest(gw: Any, args: argparse.Namespace) -> int:
    identity = identity_for(args.team)
    meta = parse_pairs(args.meta, "--meta")
    files = list(document_ids(args.paths, recursive=args.recursive, globs=args.glob,
                              prefix=args.id_prefix))
    if not files:
        print("error: no files to ingest (folders are read for the types a loader knows; "
              "see --recursive and --glob)", file=sys.stderr)
        return 2
    collection = await ensure_collection(gw, identity, args.collection, chunker=args.chunker,
                                         description=args.description)
    tally = Tally(total=len(files))
    bar = None if args.no_progress else Bar(tally)
    if bar is not None:
        bar(force=True)
    try:
        for group, failures in _groups(files, meta):
            for doc_id, reason in failures:
                tally.failed += 1
                tally.errors.append((doc_id, reason))
            if group:
                report = await gw.rag.ingest(
                    identity, collection.name if not collection.owner
                    else f"{collection.owner}/{collection.name}", group,
                    progress=None if bar is None else _progress(bar))
                _add(tally, report)
            if bar is not None:
                bar.partial(0)
    except (asyncio.CancelledError, KeyboardInterrupt):
        if bar is not None:
            bar.close()
        print(f"interrupted: {tally.summary()}\nrun the same command again to resume "
              "(stored documents are skipped); finishing the batch under way...",
              file=sys.stderr)
        raise
    if bar is not None:
        bar.close()
    print(tally.summary())
    for doc_id, reason in tally.errors[:50]:
        print(f"  failed {doc_id}: {reason}", file=sys.stderr)
    if len(tally.errors) > 50:
        print(f"  ... and {len(tally.errors) - 50} more", file=sys.stderr)
    return 1 if tally.failed else 0


def _groups(files: Sequence[tuple[Path, str]], meta: Mapping[str, Any]
            ) -> Iterator[tuple[list[Any], list[tuple[str, str]]]]:
    """Loaded documents in groups of bounded size, with the files that failed to load."""
    from gatewise.rag.loaders import load_path

    group: list[Any] = []
    failures: list[tuple[str, str]] = []
    chars = 0
    for path, doc_id in files:
        try:
            doc = load_path(path, document_id=doc_id, metadata=meta or None)
        except GatewayError as exc:
            failures.append((doc_id, exc.message))
            continue
        except OSError as exc:
            failures.append((doc_id, f"cannot read {path}: {exc.strerror or exc}"))
            continue
        group.append(doc)
        chars += len(doc.text)
        if chars >= _GROUP_CHARS or len(group) >= _GROUP_DOCS:
            yield group, failures
            group, failures, chars = [], [], 0
    if group or failures:
        yield group, failures


def _progress(bar: Bar) -> Any:
    """The ingestor's progress callback (`IngestProgress`, after each document): the
    documents done and chunks stored so far in this group move the bar."""

    def update(p: Any) -> None:
        bar.partial(int(getattr(p, "chunks", 0) or 0), int(getattr(p, "done", 0) or 0))

    return update


def _add(tally: Tally, report: Any) -> None:
    """Adds one group's `IngestReport` (lists of ids per outcome) to the run's tally."""
    tally.added += len(report.added)
    tally.replaced += len(report.replaced)
    tally.unchanged += len(report.unchanged)
    tally.chunks += int(report.chunks)
    for failed in report.failed:
        tally.failed += 1
        tally.errors.append((failed.id, failed.reason or "failed"))


# -- search -------------------------------------------------------------------------------------

async def _search(gw: Any, args: argparse.Namespace) -> int:
    identity = identity_for(args.team)
    filters = parse_pairs(args.filter, "--filter") or None
    hits = await gw.rag.search(identity, args.collection, args.query, k=args.k,
                               filters=filters, mmr=args.mmr, rerank=args.rerank,
                               mode=args.mode)
    if args.json:
        print(json.dumps({"data": [hit_json(h) for h in hits]}, indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no results")
        return 0
    for h in hits:
        where = location(h.chunk.metadata)
        scores = "  ".join(f"{k} {v:.3f}" for k, v in h.scores.items())
        print(f"{h.rank}. {h.chunk.document_id}{f' · {where}' if where else ''}  "
              f"[score {h.score:.4f}{f'; {scores}' if scores else ''}]")
        print(f"   {snippet(h.chunk.text)}")
    return 0


def hit_json(h: Any) -> dict[str, Any]:
    c = h.chunk
    return {"rank": h.rank, "score": h.score, "scores": dict(h.scores), "chunk_id": c.id,
            "document_id": c.document_id, "text": c.text, "tokens": c.tokens,
            "metadata": dict(c.metadata)}


def location(meta: Mapping[str, Any]) -> str:
    """Where a chunk sits, as a reader would look for it: section, page, lines."""
    parts = []
    if meta.get("section"):
        parts.append(str(meta["section"]))
    if meta.get("page") is not None:
        parts.append(f"p. {meta['page']}")
    if meta.get("start_line") is not None:
        end = meta.get("end_line")
        parts.append(f"lines {meta['start_line']}-{end}" if end is not None
                     else f"line {meta['start_line']}")
    return " · ".join(parts)


def snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


# -- ask ----------------------------------------------------------------------------------------

async def _ask(gw: Any, args: argparse.Namespace) -> int:
    identity = identity_for(args.team)
    filters = parse_pairs(args.filter, "--filter") or None
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    kw: dict[str, Any] = {"collection": args.collection, "model": args.model, "k": args.k,
                          "filters": filters, "identity": identity, **params}
    if args.no_stream or args.json:
        result = await gw.answer(args.question, **kw)
        completion = result.completion
        citations = list(getattr(completion, "citations", None) or [])
        rag = getattr(completion, "rag", None)
        if args.json:
            print(json.dumps({"answer": result.content or "", "citations": citations,
                              "rag": rag if isinstance(rag, dict) else None}, indent=2,
                             ensure_ascii=False))
            return 0
        print(result.content or "")
    else:
        stream = await gw.answer(args.question, stream=True, **kw)
        citations = []
        rag = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                sys.stdout.write(chunk.choices[0].delta.content)
                sys.stdout.flush()
            found = getattr(chunk, "citations", None)
            if isinstance(found, list) and found:
                citations = found
            extra = getattr(chunk, "rag", None)
            if isinstance(extra, dict):
                rag = extra
        print()
        if isinstance(rag, dict) and rag.get("grounded") is False:
            print("warning: the answer is not supported by the retrieved sources",
                  file=sys.stderr)
    print_citations(citations)
    return 0


def print_citations(citations: Sequence[Mapping[str, Any]]) -> None:
    if not citations:
        return
    print("\nSources:")
    for i, c in enumerate(citations, 1):
        number = c.get("index", c.get("number", i))
        source = c.get("source") or c.get("document_id") or c.get("chunk_id") or "?"
        title = c.get("title")
        where = location(c)
        line = f"[{number}] {source}"
        if title and title != source:
            line += f" — {title}"
        if where:
            line += f" · {where}"
        print(line)


# -- delete, collections ------------------------------------------------------------------------

async def _delete(gw: Any, args: argparse.Namespace) -> int:
    identity = identity_for(args.team)
    if args.document:
        for doc_id in args.document:
            removed = await gw.rag.delete_document(identity, args.collection, doc_id)
            print(f"deleted document {doc_id} ({removed} chunks)")
        return 0
    found = await gw.rag.resolve(identity, args.collection)
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: deleting a whole collection needs --yes (or a terminal to confirm)",
                  file=sys.stderr)
            return 2
        answer = await asyncio.to_thread(
            input, f"delete collection {_label(found)} and every document in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    removed = await gw.rag.delete_collection(identity, args.collection)
    print(f"deleted collection {_label(found)} ({removed} chunks)")
    return 0


async def _collections(gw: Any, args: argparse.Namespace) -> int:
    identity = identity_for(args.team)
    rows = await gw.rag.list_collections(identity)
    store = await gw.rag.store()
    counts = [await _documents(store, c.id) for c in rows]
    if args.json:
        print(json.dumps({"data": [{
            "name": c.name, "owner": c.owner, "id": c.id, "documents": n,
            "chunker": c.chunker, "embedder": c.embedder, "dimension": c.dimension,
            "shared_with": list(c.shared_with), "description": c.description,
            "created": c.created} for c, n in zip(rows, counts, strict=True)]}, indent=2))
        return 0
    if not rows:
        print("no collections")
        return 0
    head = ("collection", "documents", "chunker", "embedder", "shared with", "description")
    lines = [head] + [(_label(c), str(n), c.chunker, c.embedder, ", ".join(c.shared_with) or "-",
                       snippet(c.description, 50)) for c, n in zip(rows, counts, strict=True)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    return 0


async def _documents(store: Any, collection_id: str, cap: int = 100_000) -> int:
    n, after = 0, ""
    while n < cap:
        page = await store.list_documents(collection_id, after=after, limit=1000)
        n += len(page)
        if len(page) < 1000:
            break
        after = page[-1].id
    return n


def _label(c: Any) -> str:
    return f"{c.owner}/{c.name}" if c.owner else c.name
