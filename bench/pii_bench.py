"""PII detection: recall on the seeded canary set, per entity type and message role, and cost in
milliseconds per KB of prompt text, on one core.

Recall (issue 11). The canary set (`tests/pii_canaries.py`: 590 values, names hand-written for
fourteen cultures, not drawn from the names layer's own source) puts each value in a natural
sentence of one role: system, user, assistant (text or tool-call arguments), tool, retrieved
context. A value counts as masked when `mask_request` (what `PIIMiddleware` runs) leaves none of
it in the request: the findings of the string that holds it cover every character. Modes:

- patterns: the default pattern recognizers (no model): names are out of its reach;
- spaCy: the small model (PERSON, LOCATION) and the patterns, without the names layer;
- spaCy+names: the same with the names layer (`guardrails/pii/names.py`), the `ner` default.

Cost. Texts: a bank-call transcript with personal data and one without (about 1.2 KB each), and
the canary messages (short, every one carrying a value: the worst case). Modes:

- baseline: one pass of a few plain compiled regexes — the cheapest scanner, the ratio's
  denominator;
- patterns, patterns+mask: `PIIDetector.find` without a model, and `mask_request` around it;
- spaCy+names: `PIIDetector.find` with NER (the `ner: true` guard).

Targets: recall ≥ 0.99 per pattern entity type and ≥ 0.95 for PERSON in every role; ≤ 20 ms/KB
with the patterns (issue 5), ≤ 30 ms/KB with names (issue 11).

    .venv/bin/python bench/pii_bench.py [--rounds 30] [--misses]

Prints the tables; exit status 0 when every target is met. Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pii_canaries import ROLES, Canary, canaries, conversation

from gatewise.guardrails.pii import PIIDetector, PIIVault, build_analyzer, mask_request
from gatewise.guardrails.pii.masking import _texts_of
from gatewise.types.validation import chat_request_from_dict

TARGET_MS_PER_KB = 20.0
TARGET_NAMES_MS_PER_KB = 30.0
TARGET_PATTERN_RECALL = 0.99
TARGET_NAME_RECALL = 0.95

WITH_PII = """Agent: Thank you for calling, this is Sarah. Can I take your full name please?
Customer: Yes, it's John Smith. I'm calling about a charge I don't recognise.
Agent: I'm sorry to hear that, Mr Smith. Can you confirm the e-mail address on the account?
Customer: It's john.smith@example.com, and my phone is +44 20 7123 4567.
Agent: Thanks. Which card was charged?
Customer: The card ending 1111, the full number is 4111 1111 1111 1111, expiry next March.
Agent: I can see two payments of 49.99 on the 3rd. Were both made by you?
Customer: Only one. The second one came from an IP I don't know, 203.0.113.54 I think.
Agent: I'll block the card and raise a dispute. Where should the refund go?
Customer: To my savings account, IBAN GB82 WEST 1234 5698 7654 32.
Agent: And for the US account we hold, can you confirm your social security number?
Customer: Sure, my SSN is 536-22-8726. My wife Maria Garcia is on that account too.
Agent: Thank you. The dispute reference will be e-mailed to you within two working days.
Customer: Great, and can you send a copy to maria.garcia@example.org as well?
Agent: Of course. Is there anything else I can help you with today?
Customer: No, that's everything. Thanks for your help, Sarah.
"""

WITHOUT_PII = """Agent: Thank you for calling, how can I help you today?
Customer: Hi, I'd like to understand the fees on the premium current account.
Agent: Certainly. The premium account costs a monthly fee and includes travel insurance.
Customer: Does the travel insurance cover winter sports and trips outside Europe?
Agent: Winter sports are included; worldwide cover is an optional upgrade at extra cost.
Customer: And what about overdraft charges? I had one last year and it was expensive.
Agent: We changed the overdraft pricing in spring: there's now a single annual rate.
Customer: Is there a fee-free buffer before interest starts being charged?
Agent: Yes, a small buffer applies, after which the annual rate is charged daily.
Customer: That sounds better. Can I switch accounts online or do I need a branch?
Agent: You can switch in the mobile app under Accounts, then Change account type.
Customer: Will my card number and direct debits stay the same after switching?
Agent: Yes, nothing changes for your card, standing orders or direct debits.
Customer: Perfect. I'll do it this evening. Thanks for explaining everything so clearly.
Agent: You're welcome. Have a lovely evening and thank you for banking with us.
"""

_BASELINE = (re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"), re.compile(r"\d[\d \-]{6,}\d"),
             re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}\b"))


def baseline(text: str) -> int:
    return sum(len(r.findall(text)) for r in _BASELINE)


def measure(fn: Callable[[str], object], text: str, rounds: int) -> float:
    """Median ms per KB over `rounds` calls (after one warm-up call)."""
    fn(text)
    kb = len(text.encode()) / 1024
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(text)
        samples.append((time.perf_counter() - t0) * 1000 / kb)
    return statistics.median(samples)


def masked(detector: PIIDetector, c: Canary) -> bool:
    """Whether `mask_request` leaves nothing of `c.value` in the request it sends on."""
    req = chat_request_from_dict({"model": "m", "messages": conversation([c])})
    out = mask_request(req, detector.find, PIIVault())
    body = json.dumps([msg for msg in json.loads(_encode(out.request))["messages"]], ensure_ascii=False)
    if c.value in body or json.dumps(c.value)[1:-1] in body:
        return False
    for m in req.messages:
        for text in _texts_of(m):
            i = text.find(c.value)
            if i < 0:
                continue
            spans = detector.find(text)
            if not all(any(f.start <= k < f.end for f in spans)
                       for k in range(i, i + len(c.value)) if not text[k].isspace()):
                return False
    return True


def _encode(req: object) -> bytes:
    import msgspec

    return msgspec.json.encode(req)


def recall_table(detectors: dict[str, PIIDetector], items: list[Canary], show_misses: bool) -> bool:
    entities = list(dict.fromkeys(c.entity for c in items))
    print(f"\nRecall on the canary set ({len(items)} values; roles: {', '.join(ROLES)})")
    head = f"{'entity':<15}{'mode':<13}{'n':>5}{'all':>7}" + "".join(f"{r:>10}" for r in ROLES)
    print(head + "  target")
    ok = True
    misses: list[tuple[str, Canary]] = []
    for entity in entities:
        mine = [c for c in items if c.entity == entity]
        for mname, det in detectors.items():
            if entity != "PERSON" and mname != "spaCy+names":
                continue
            hits = {id(c): masked(det, c) for c in mine}
            if mname == "spaCy+names":
                misses += [(mname, c) for c in mine if not hits[id(c)]]
            row = f"{entity:<15}{mname:<13}{len(mine):>5}{sum(hits.values()) / len(mine):>7.3f}"
            worst = 1.0
            for role in ROLES:
                rs = [c for c in mine if c.role == role]
                r = sum(hits[id(c)] for c in rs) / len(rs) if rs else float("nan")
                worst = min(worst, r)
                row += f"{r:>10.3f}"
            target = ""
            if mname == "spaCy+names":
                if entity == "PERSON":
                    passed = worst >= TARGET_NAME_RECALL
                    target = f"≥ {TARGET_NAME_RECALL} per role {'ok' if passed else 'MISSED'}"
                else:
                    passed = sum(hits.values()) / len(mine) >= TARGET_PATTERN_RECALL
                    target = f"≥ {TARGET_PATTERN_RECALL} {'ok' if passed else 'MISSED'}"
                ok &= passed
            print(row + "  " + target)
    print(f"missed by spaCy+names: {len(misses)}")
    if show_misses:
        for _, c in misses:
            print(f"  {c.entity:<13} {c.role:<9} {c.value!r} in {c.text[:90]!r}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--misses", action="store_true", help="list the canaries spaCy+names missed")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, as the target says
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    t0 = time.perf_counter()
    patterns = PIIDetector(build_analyzer(use_ner=False))
    build_patterns = time.perf_counter() - t0
    t0 = time.perf_counter()
    ner = PIIDetector(build_analyzer(use_ner=True))
    build_ner = time.perf_counter() - t0
    spacy_only = PIIDetector(build_analyzer(use_ner=True, names=False))
    items = canaries()
    canary_texts = "\n".join(c.text for c in items)

    def masked_request(text: str) -> object:
        req = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": text}]})
        return mask_request(req, patterns.find, PIIVault())

    def per_message(find: Callable[[str], object]) -> Callable[[str], object]:
        texts = [c.text for c in items]

        def run(_: str) -> object:
            return [find(t) for t in texts]
        return run

    modes: dict[str, Callable[[str], object]] = {
        "baseline regex": baseline, "patterns": patterns.find, "patterns+mask": masked_request,
        "spaCy+names": ner.find}
    texts = {"with PII": WITH_PII, "without PII": WITHOUT_PII, "canary msgs": canary_texts}
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(3):  # interleaved rounds: drift on a shared machine hits every mode alike
        for tname, text in texts.items():
            for mname, fn in modes.items():
                if tname == "canary msgs":
                    fn = per_message(fn)
                rounds = 1 if tname == "canary msgs" else args.rounds // 3 or 1
                results.setdefault((mname, tname), []).append(measure(fn, text, rounds))

    print(f"PII detection on one core, ms per KB (texts: {len(WITH_PII.encode())} and"
          f" {len(WITHOUT_PII.encode())} bytes; canary messages: {len(items)}, "
          f"{len(canary_texts.encode()) // len(items)} bytes each on average;"
          f" build: patterns {build_patterns:.2f} s, spaCy+names {build_ner:.2f} s)")
    print(f"{'mode':<16}{'text':<14}{'ms/KB':>9}{'x baseline':>12}  target")
    ok = True
    for mname in modes:
        for tname in texts:
            v = statistics.median(results[(mname, tname)])
            base = statistics.median(results[("baseline regex", tname)])
            target = ""
            limit = {"patterns": TARGET_MS_PER_KB, "patterns+mask": TARGET_MS_PER_KB,
                     "spaCy+names": TARGET_NAMES_MS_PER_KB}.get(mname)
            if limit is not None:
                passed = v <= limit
                ok &= passed
                target = f"≤ {limit:g} {'ok' if passed else 'MISSED'}"
            print(f"{mname:<16}{tname:<14}{v:>9.3f}{v / base:>12.0f}  {target}")
    ok &= recall_table({"patterns": patterns, "spaCy": spacy_only, "spaCy+names": ner}, items, args.misses)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
