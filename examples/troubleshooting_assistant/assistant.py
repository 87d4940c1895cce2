"""A troubleshooting assistant over a folder of product documentation, with citations.

    python examples/troubleshooting_assistant/assistant.py            # offline, the bundled docs
    python examples/troubleshooting_assistant/assistant.py --docs ~/my-docs --config my.yaml

1. The folder is ingested into a knowledge-base collection (`orbit-docs`). Re-running is
   cheap: gatewise skips documents whose text did not change and replaces those that did.
2. Each question goes to the alias `support`, which `gatewise.yaml` binds to the collection
   (`rag.aliases`): the gateway retrieves (BM25 and vectors fused), builds the prompt from
   numbered sources and returns the answer with `citations`.
3. Follow-ups: the conversation is kept by the gateway (`conversation=`), so the model sees
   the earlier questions and answers. Retrieval searches the new question alone; when that
   finds nothing relevant and the question reads as a follow-up ("How long does it
   take?"), it is asked tied to the previous question ("... (follow-up to: ...)").
4. Nothing relevant in the knowledge base: the assistant says "I don't know: that is not in
   the knowledge base" without asking a model. Relevance is checked twice. First here, with
   a search: at least one passage must be close in meaning to the question
   (`relevance_floor`, the MiniLM cosine; on-topic questions score 0.3-0.7 on the bundled
   docs, off-topic ones below 0.2). The gateway's own floor counts any passage that shares
   a word with the question, and question words such as "what", "how" or "does" are words
   too, so "What is the capital of Australia?" would otherwise reach the model with the
   LED table as its source. Then the gateway's: nothing retrieved, or an answer its sources
   do not support, comes back as "not found in the knowledge base".
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from anywhere

import gatewise
from gatewise.errors import CollectionNotFoundError
from gatewise.rag.service import Upload

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "gatewise.yaml"
DOCS = HERE / "docs"
COLLECTION = "orbit-docs"
ALIAS = "support"
SUFFIXES = (".md", ".txt", ".html", ".pdf")
NOT_IN_KB = ("I don't know: that is not in the knowledge base. Try rephrasing, or contact "
             "support.")
# Words that make a question lean on the previous one.
_FOLLOW_UP = frozenset({"it", "that", "this", "those", "these", "they", "them", "there",
                        "also", "else", "then", "instead", "still"})


@dataclass(slots=True)
class IngestSummary:
    added: int
    replaced: int
    unchanged: int
    chunks: int


@dataclass(slots=True)
class Answer:
    text: str
    found: bool
    citations: list[dict[str, Any]] = field(default_factory=list)
    follow_up_of: str | None = None  # the earlier question a follow-up was tied to

    @property
    def sources(self) -> list[str]:
        """The cited documents, in citation order, without repeats."""
        return list(dict.fromkeys(str(c.get("document_id") or c.get("source"))
                                  for c in self.citations))


def read_folder(folder: Path) -> list[Upload]:
    """Every document under `folder`, its id the path inside the folder (`docs/vpn.md` and
    `faq/vpn.md` stay apart), so a re-run matches each file with its stored version."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no documents ({', '.join(SUFFIXES)}) under {folder}")
    return [Upload(p.read_bytes(), filename=p.name, id=p.relative_to(folder).as_posix())
            for p in files]


def is_follow_up(question: str) -> bool:
    words = {w.strip("?.,!;:'\"").lower() for w in question.split()}
    return bool(words & _FOLLOW_UP) or question.lower().startswith(("and ", "what if", "what about"))


class TroubleshootingAssistant:
    """One user's session: `await ingest(folder)` once, then `await ask(question)`."""

    def __init__(self, gateway: gatewise.Gateway, *, collection: str = COLLECTION,
                 model: str = ALIAS, conversation: str | None = None, max_tokens: int = 96,
                 identity: gatewise.Identity | None = None,
                 relevance_floor: float = 0.25, frequency_penalty: float = 0.0) -> None:
        """`frequency_penalty` curbs a small model's repetition, at a price: with 0.5 the
        embedded model strays from its sources and the gateway's groundedness check turns
        more answers into "not found" (measured on the bundled docs), so it is off."""
        self.gateway = gateway
        self.frequency_penalty = frequency_penalty
        self.relevance_floor = relevance_floor
        self.collection = collection
        self.model = model
        self.conversation = conversation or f"support-{uuid.uuid4().hex[:12]}"
        self.max_tokens = max_tokens
        self.identity = identity or gatewise.Identity()
        self.previous: str | None = None  # the last question the knowledge base answered

    async def ingest(self, folder: Path) -> IngestSummary:
        """Creates the collection if needed and (re-)ingests every document in `folder`;
        unchanged documents are skipped, so running this at every start is cheap."""
        rag = self.gateway.rag
        try:
            await rag.resolve(self.identity, self.collection)
        except CollectionNotFoundError:
            await rag.create_collection(self.identity, self.collection,
                                        description=f"documentation from {folder.name}/")
        uploads = await asyncio.to_thread(read_folder, folder)
        report = await rag.ingest(self.identity, self.collection, uploads)
        return IngestSummary(len(report.added), len(report.replaced), len(report.unchanged),
                             int(report.chunks))

    async def ask(self, question: str) -> Answer:
        question = question.strip()
        follow_up_of = None
        asked = question
        if not await self.relevant(question):
            if self.previous is None or not is_follow_up(question):
                return Answer(NOT_IN_KB, False)
            asked = f"{question} (follow-up to: {self.previous})"
            if not await self.relevant(asked):
                return Answer(NOT_IN_KB, False)
            follow_up_of = self.previous
        answer = await self._ask(asked)
        if answer.found:
            answer.follow_up_of = follow_up_of
            if follow_up_of is None:
                self.previous = question
        return answer

    async def relevant(self, question: str) -> bool:
        """Whether some passage is close in meaning to `question` (see the module's notes).
        A collection searched without vectors has only word matches to go by."""
        hits = await self.gateway.rag.search(self.identity, self.collection, question, k=3)
        sims = [h.scores["vector"] for h in hits if "vector" in h.scores]
        if not sims:
            return bool(hits)
        return max(sims) >= self.relevance_floor

    async def _ask(self, question: str) -> Answer:
        result = await self.gateway.chat(
            question, model=self.model, conversation=self.conversation,
            identity=self.identity, max_tokens=self.max_tokens, temperature=0,
            frequency_penalty=self.frequency_penalty)
        completion = result.completion
        rag = completion.rag if isinstance(completion.rag, dict) else {}
        text = (result.content or "").strip()
        if rag.get("not_found") or "not found in the knowledge base" in text.lower():
            return Answer(NOT_IN_KB, False)
        citations = [dict(c) for c in completion.citations or []]
        return Answer(text, True, citations)


def format_answer(answer: Answer) -> str:
    lines = [answer.text]
    if answer.follow_up_of:
        lines.append(f"  (read as a follow-up to: {answer.follow_up_of})")
    if answer.found and not answer.citations:
        lines.append("  (no source cited: the model's answer could not be tied to a passage)")
    for c in answer.citations:
        where = c.get("section") or c.get("title") or ""
        lines.append(f"  [{c.get('index', '?')}] {c.get('document_id')}"
                     + (f" — {where}" if where else ""))
    return "\n".join(lines)


async def run(config: Path, docs: Path) -> int:
    async with gatewise.Gateway.from_config(config) as gw:
        assistant = TroubleshootingAssistant(gw)
        summary = await assistant.ingest(docs)
        print(f"knowledge base '{assistant.collection}': {summary.added} added, "
              f"{summary.replaced} replaced, {summary.unchanged} unchanged "
              f"({summary.chunks} new chunks)", flush=True)
        await gw.warmup()
        print("Ask about the Orbit X2 (empty line or 'quit' ends).", flush=True)
        while True:
            line = await asyncio.to_thread(_read)
            if line is None or line.strip().lower() in ("", "quit", "exit"):
                return 0
            print(format_answer(await assistant.ask(line)), flush=True)


def _read() -> str | None:
    try:
        return input("you> ")
    except EOFError:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=CONFIG, help="gatewise config (default: %(default)s)")
    p.add_argument("--docs", type=Path, default=DOCS, help="documentation folder (default: %(default)s)")
    args = p.parse_args(argv)
    return asyncio.run(run(args.config, args.docs))


if __name__ == "__main__":
    sys.exit(main())
