"""How an evaluation item's answer is scored: each check of `eval_set.Checks` gives a score in
0..1 and a pass. Pure functions over the answer's text and tool calls; the two that need a
model (meaning similarity, the judge) take the model's output as an argument, so
`evaluate.py` decides how those are computed.

Normalisation is deliberately narrow: case, surrounding whitespace and quotes, a final
period. Anything looser would make a sloppy answer pass; the set's items say what they
accept (alternatives in `contains`, a regex) rather than the scorer guessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gatewise.quality.eval_set import Checks
from gatewise.types.jsonschema import first_problem

# Cosine anchors for all-MiniLM-L6-v2 (measured: unrelated sentences score about -0.1..0.1,
# a paraphrase of an instruction 0.6..0.9): 0.2 maps to 0 and 0.7 to 1.
SIM_LOW, SIM_HIGH = 0.2, 0.7
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"(?<![\d.])(10|[0-9])(?:\.\d+)?(?:\s*/\s*10)?")


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    score: float
    passed: bool
    note: str = ""


def normalise(text: str) -> str:
    t = _SPACES.sub(" ", text).strip().strip("\"'`").strip()
    t = t[:-1] if t.endswith(".") else t
    return t.casefold()


def score_exact(answer: str, want: str) -> CheckResult:
    ok = normalise(answer) == normalise(want)
    return CheckResult("exact", float(ok), ok)


def score_contains(answer: str, wanted: tuple[tuple[str, ...], ...]) -> CheckResult:
    low = answer.casefold()
    found = [any(alt.casefold() in low for alt in alts) for alts in wanted]
    missing = [alts[0] for alts, f in zip(wanted, found, strict=True) if not f]
    return CheckResult("contains", sum(found) / len(found), all(found),
                       f"missing: {', '.join(missing)}" if missing else "")


def score_absent(answer: str, unwanted: tuple[str, ...]) -> CheckResult:
    low = answer.casefold()
    present = [u for u in unwanted if u.casefold() in low]
    return CheckResult("absent", float(not present), not present,
                       f"present: {', '.join(present)}" if present else "")


def score_regex(answer: str, pattern: re.Pattern[str]) -> CheckResult:
    ok = pattern.search(answer) is not None
    return CheckResult("regex", float(ok), ok)


def score_max_words(answer: str, limit: int) -> CheckResult:
    n = len(answer.split())
    ok = 0 < n <= limit
    return CheckResult("max_words", float(ok), ok, "" if ok else f"{n} words")


def parse_json_answer(answer: str) -> Any:
    """The answer as JSON, allowing one code fence around it; raises ValueError."""
    text = answer.strip()
    m = _FENCE.match(text)
    return json.loads(m.group(1) if m else text)


def score_schema(answer: str, schema: dict[str, Any]) -> CheckResult:
    try:
        value = parse_json_answer(answer)
    except ValueError:
        return CheckResult("schema", 0.0, False, "not JSON")
    problem = first_problem(value, schema)
    return CheckResult("schema", float(problem is None), problem is None, problem or "")


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, str) and isinstance(got, str):
        return normalise(got) == normalise(want)
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(float(got) - float(want)) <= 1e-9 * max(1.0, abs(float(want)))
    return bool(got == want)


def score_tool(calls: list[tuple[str, str]], name: str, arguments: dict[str, Any]) -> CheckResult:
    """`calls`: (name, arguments JSON) of the answer's tool calls; the first one is judged."""
    if not calls:
        return CheckResult("tool", 0.0, False, "no tool call")
    got_name, raw = calls[0]
    if got_name != name:
        return CheckResult("tool", 0.0, False, f"called {got_name}")
    if not arguments:
        return CheckResult("tool", 1.0, True)
    try:
        args = json.loads(raw) if raw else {}
    except ValueError:
        return CheckResult("tool", 0.5, False, "arguments are not JSON")
    if not isinstance(args, dict):
        return CheckResult("tool", 0.5, False, "arguments are not an object")
    wrong = [k for k, v in arguments.items() if k not in args or not _same(args[k], v)]
    share = (len(arguments) - len(wrong)) / len(arguments)
    return CheckResult("tool", 0.5 + 0.5 * share, not wrong,
                       f"wrong or missing: {', '.join(wrong)}" if wrong else "")


def score_similar(cosine: float, minimum: float) -> CheckResult:
    scaled = min(1.0, max(0.0, (cosine - SIM_LOW) / (SIM_HIGH - SIM_LOW)))
    return CheckResult("similar", scaled, cosine >= minimum, f"cosine {cosine:.3f}")


def parse_judge(text: str) -> float | None:
    """A judge's 0-10 rating as 0..1 (the first number it gives); None if it gave none."""
    m = _NUMBER.search(text)
    return None if m is None else int(m.group(1)) / 10.0


def score_judge(text: str) -> CheckResult:
    rating = parse_judge(text)
    if rating is None:
        return CheckResult("judge", 0.0, False, "the judge gave no rating")
    return CheckResult("judge", rating, rating >= 0.7, f"{rating * 10:g}/10")


def score_text_checks(checks: Checks, text: str, calls: list[tuple[str, str]]) -> list[CheckResult]:
    """Every check that needs no model."""
    out: list[CheckResult] = []
    if checks.exact is not None:
        out.append(score_exact(text, checks.exact))
    if checks.contains:
        out.append(score_contains(text, checks.contains))
    if checks.absent:
        out.append(score_absent(text, checks.absent))
    if checks.regex is not None:
        out.append(score_regex(text, checks.regex))
    if checks.max_words is not None:
        out.append(score_max_words(text, checks.max_words))
    if checks.schema is not None:
        out.append(score_schema(text, checks.schema))
    if checks.tool_name is not None:
        out.append(score_tool(calls, checks.tool_name, checks.tool_arguments))
    return out


JUDGE_PROMPT = (
    "You grade an AI assistant's answer. Rubric: {rubric}\n\n"
    "Question:\n{question}\n\nAnswer:\n{answer}\n\n"
    "How well does the answer meet the rubric? Reply with one integer from 0 (not at all) "
    "to 10 (fully), and nothing else.")
