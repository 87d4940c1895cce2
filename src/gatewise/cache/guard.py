"""The semantic cache's false-hit guard: what two texts must share, beyond a close embedding,
before one's answer may serve the other.

Sentence embeddings place "cancel my order 1234" and "cancel my order 1243" (or "Is ibuprofen
safe with alcohol?" and "... unsafe ...") almost on top of each other: they share every word
but the one that decides the answer. So a candidate above the cosine threshold must also carry
the same

- **numbers** (digits and number words alike: "2-year" = "two-year"; order ids, amounts, dates);
- **negation**: as many negation cues (not, no, never, n't, without, none, cannot, ...), and no
  word of one text whose opposite (a small antonym table, or the word with a negating prefix:
  safe/unsafe, include/exclude, on/off) is in the other;
- **named targets**: capitalised words that are not ordinary sentence openers (France, Spain,
  iPhone, Vanguard), quoted strings, e-mail addresses, URLs, code identifiers (snake_case,
  camelCase, dotted.names, `backticked`), acronyms;

compared as sets, case-insensitively, with possessives and plurals folded. A guard that says no
costs one upstream call; a false hit serves a wrong answer, so it errs on the side of no.

Beyond those, a small edit of the content words (one to three added, dropped or swapped) is the
shape of a near miss ("pool" for "gym", "gift" for "gift card") and is refused. Content words
are compared by sense, not spelling: inflections are folded to a lemma ("cancelled",
"cancelling" = "cancel"; "quickest" = "quick") and words of one everyday synonym group count as
one ("purchase" = "buy", "switch" = "change", "set up" = "create"). The groups are strict
synonyms only, never co-hyponyms (pool/gym, chicken/beef, puppy/kitten are different things),
and a pair of antonyms is refused before synonyms are looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019\-]*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_QUOTED = re.compile(r"\"([^\"]{1,200})\"|“([^”]{1,200})”|`([^`]{1,200})`|(?<!\w)'([^']{1,200})'(?!\w)")
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_CODE = re.compile(r"\b(?:[a-z]+[A-Z]\w*|\w+_\w+|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\(?\)?)\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n\s*)([A-Za-z][\w'\u2019\-]*)")



def _split(words: str) -> list[str]:
    return words.split()


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(_split(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"))}
del _NUMBER_WORDS["one"]  # "one" is as often a pronoun ("a new one", "quick one")
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                      "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100",
                      "thousand": "1000", "million": "1000000", "billion": "1000000000",
                      "third": "3", "fourth": "4", "fifth": "5", "twice": "2", "dozen": "12"})

_NEGATIONS = frozenset(_split(
    "not no never none nothing nobody nowhere neither nor without cannot cant dont doesnt "
    "didnt isnt arent wasnt werent wont wouldnt shouldnt couldnt mustnt hasnt havent hadnt "
    "aint nope"))

# Pairs whose swap flips the answer; either side's inflections are folded by `_stem`.
_ANTONYMS: tuple[tuple[str, str], ...] = (
    ("open", "close"), ("open", "closed"), ("on", "off"), ("include", "exclude"),
    ("included", "excluded"), ("allow", "ban"), ("allowed", "banned"), ("allowed", "forbidden"),
    ("allow", "forbid"), ("allowed", "prohibited"), ("permit", "prohibit"), ("eat", "avoid"),
    ("do", "avoid"), ("add", "remove"), ("enable", "disable"), ("increase", "decrease"),
    ("increase", "reduce"), ("raise", "lower"), ("buy", "sell"), ("accept", "reject"),
    ("accept", "decline"), ("approve", "reject"), ("approve", "deny"), ("start", "stop"),
    ("start", "end"), ("begin", "end"), ("before", "after"), ("upgrade", "downgrade"),
    ("more", "less"), ("more", "fewer"), ("most", "least"), ("max", "min"),
    ("maximum", "minimum"), ("early", "late"), ("earliest", "latest"), ("import", "export"),
    ("login", "logout"), ("lock", "unlock"), ("win", "lose"), ("pass", "fail"),
    ("true", "false"), ("first", "last"), ("above", "below"), ("over", "under"),
    ("up", "down"), ("high", "low"), ("higher", "lower"), ("highest", "lowest"),
    ("cheap", "expensive"), ("cheapest", "dearest"), ("best", "worst"), ("better", "worse"),
    ("good", "bad"), ("safe", "dangerous"), ("hot", "cold"), ("fast", "slow"),
    ("faster", "slower"), ("long", "short"), ("longer", "shorter"), ("big", "small"),
    ("large", "small"), ("bigger", "smaller"), ("larger", "smaller"), ("in", "out"),
    ("inside", "outside"), ("import", "export"), ("deposit", "withdraw"),
    ("credit", "debit"), ("send", "receive"), ("give", "take"), ("join", "leave"),
    ("subscribe", "unsubscribe"), ("connect", "disconnect"), ("install", "uninstall"),
    ("mount", "unmount"), ("encrypt", "decrypt"), ("push", "pull"), ("read", "write"),
    ("input", "output"), ("inbound", "outbound"), ("incoming", "outgoing"),
    ("arrival", "departure"), ("arrive", "depart"), ("north", "south"), ("east", "west"),
    ("left", "right"), ("yes", "no"), ("always", "never"), ("all", "none"), ("with", "without"),
    ("plus", "minus"), ("positive", "negative"), ("legal", "illegal"), ("free", "paid"),
    ("public", "private"), ("online", "offline"), ("remember", "forget"), ("keep", "cancel"),
    ("keep", "delete"), ("keep", "remove"), ("save", "delete"), ("create", "delete"),
    ("show", "hide"), ("mute", "unmute"), ("block", "unblock"), ("follow", "unfollow"),
    ("pause", "resume"), ("activate", "deactivate"), ("attach", "detach"),
    ("charge", "refund"), ("pay", "refund"), ("borrow", "lend"), ("borrow", "repay"),
    ("rent", "buy"), ("man", "woman"), ("men", "women"), ("male", "female"),
    ("adult", "child"), ("adults", "children"), ("today", "tomorrow"), ("today", "yesterday"),
    ("weekday", "weekend"), ("weekdays", "weekends"), ("morning", "evening"),
    ("day", "night"), ("summer", "winter"), ("spring", "autumn"), ("domestic", "international"),
    ("local", "international"), ("local", "remote"), ("new", "old"), ("new", "used"),
    ("full", "empty"), ("full", "partial"), ("full", "part"), ("single", "return"),
)
_NEG_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non", "non-", "de", "anti")

# Words that carry no target of their own: function words, question words, pleasantries and
# fillers ("Hi, quick question: ..."). Any other word added, dropped or swapped is content.
_STOPWORDS = frozenset(_split(
    "a an the i me my mine myself we us our ours you your yours he him his she her hers it its "
    "they them their theirs this that these those there here what which who whom whose where "
    "when why how whats wheres whens hows whos is are am was were be been being do does did "
    "doing done can could will would shall should may might must has have had having get got "
    "getting gets to of in on at for from by with about as into onto than then so and or but "
    "if because while also too very really just only any some all each every one ones thing "
    "things way ways anything something someone anyone please pls kindly hi hiya hello hey "
    "dear thanks thank cheers cheer ta er sorry quick question wondering wonder um uh erm hmm ok okay "
    "well bother silly advance many much lot lots tell know let lets like want need able "
    "possible mind help assist whether yes yeah sure maybe again still now currently actually "
    "im ive id ill youre theyre whats thats theres heres its isnt arent etc"))
_FROM_TO = ("from", "to", "into")
# The stopwords as `_stem` folds them ("does" -> "doe"), without apostrophes ("i'd" -> "id").
_STOP_STEMS = _STOPWORDS | frozenset(
    w.rstrip("s") if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
    for w in _STOPWORDS) | frozenset(_split("available somewhere"))

def _stem(word: str) -> str:
    """A crude fold for comparing words: lower case, no possessive, no plural -s."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.strip("'-")
    if len(w) > 3 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w


# Everyday strict synonyms: each group is one sense for the content comparison (first member
# is its name). Words are stems (`_stem`), compared after `_lemma`.
_SYNONYMS: tuple[str, ...] = (
    "buy purchase", "fast quick rapid speedy", "change switch alter modify amend",
    "cancel end terminate", "dispute challenge contest", "submit send file lodge",
    "create setup establish", "get receive obtain", "street road", "grade result mark score",
    "register signup enrol enroll", "enable activate", "disable deactivate",
    "need require", "help assist", "find locate", "delete erase", "permit allow",
    "parcel package", "vaccine vaccination jab", "lock freeze", "unlock unfreeze",
    "park parking", "download export", "problem issue fault", "fix repair mend",
    "car vehicle", "flat apartment", "holiday vacation", "film movie", "shop store",
    "bill invoice", "money cash fund", "refund reimbursement", "job employment",
    "salary wage", "boss employer manager", "kid child", "staff employee worker",
    "customer client", "rubbish trash garbage", "luggage baggage", "booking reservation",
    "book reserve", "begin start", "big large", "small little", "cheap inexpensive affordable",
    "price cost", "forecast weather", "doctor gp", "mobile cellphone", "phone telephone",
    "email e-mail", "photo picture", "answer reply respond", "ask enquire inquire",
    "choose pick select", "show display", "stop halt", "try attempt", "use utilise utilize",
    "maybe perhaps", "correct right", "wrong incorrect", "sick ill", "home house",
    "shut close", "speak talk", "quit resign", "hire rent", "live reside",
    "warranty guarantee", "repay reimburse",
)
# Two-word verbs compared as one word ("set up" = "setup" = "create").
_PHRASES: dict[tuple[str, str], str] = {
    ("set", "up"): "setup", ("sign", "up"): "signup", ("log", "in"): "login",
    ("log", "out"): "logout", ("turn", "on"): "enable", ("turn", "off"): "disable",
    ("switch", "on"): "enable", ("switch", "off"): "disable", ("find", "out"): "learn",
    ("get", "back"): "recover", ("give", "back"): "return", ("send", "back"): "return",
    ("call", "off"): "cancel", ("pick", "up"): "collect", ("fill", "in"): "complete",
    ("fill", "out"): "complete",
}
_IRREGULAR = {
    "bought": "buy", "sent": "send", "got": "get", "gotten": "get", "paid": "pay",
    "made": "make", "took": "take", "taken": "take", "gave": "give", "given": "give",
    "went": "go", "gone": "go", "left": "leave", "lost": "lose", "won": "win", "sold": "sell",
    "told": "tell", "thought": "think", "found": "find", "kept": "keep", "held": "hold",
    "brought": "bring", "built": "build", "chosen": "choose", "chose": "choose",
    "children": "child", "people": "person", "men": "man", "women": "woman", "feet": "foot",
    "teeth": "tooth", "mice": "mouse", "better": "good", "best": "good", "worse": "bad",
    "worst": "bad",
}
_VOWELS = frozenset("aeiou")


def _lemma(stem: str) -> str:
    """A crude lemma of a folded word, for comparing content: -ing, -ed, -er/-est of short
    adjectives, doubled consonants and a dropped final e restored by rule ("cancelling" and
    "cancelled" = "cancel", "approved" = "approve", "quickest" = "quick")."""
    w = _IRREGULAR.get(stem, stem)
    if w != stem or len(w) <= 4:
        return w
    if w.endswith("ly") and len(w) > 5 and not w.endswith("ply"):
        return w[:-2]                               # "wirelessly" -> "wireless"
    for suffix in ("ing", "ed", "est", "er"):
        if not w.endswith(suffix) or len(w) - len(suffix) < 3:
            continue
        base = w[:-len(suffix)]
        if suffix in ("er", "est"):  # only a known adjective's degree: "order", "request" stay
            for adj in (base, base + "e", base[:-1], base[:-1] + "y"):
                if adj in _SENSE or adj in _OPPOSITE:
                    return adj
            return w
        if len(base) >= 4 and base[-1] == base[-2] and base[-1] not in "lsz":
            return base[:-1]                        # "stopped" -> "stop"
        if len(base) >= 6 and base.endswith("ll"):
            return base[:-1]                        # "cancelled" -> "cancel" ("called" stays)
        if base.endswith("i"):
            return base[:-1] + "y"                  # "applied" -> "apply"
        verb = suffix in ("ed", "ing")
        if verb and len(base) <= 4 and sum(c in _VOWELS for c in base) == 1 \
                and base[-1] not in _VOWELS and base[-2] in _VOWELS \
                and base[-3] not in _VOWELS and base[-1] not in "wxy":
            return base + "e"                       # "making" -> "make", "hoped" -> "hope"
        if (verb and base[-1] in "cguvz") or (verb and base[-1] == "s" and base[-2] != "s"):
            return base + "e"                       # "reduced", "charged", "approved", "closed"
        return base
    return w


_SENSE: dict[str, str] = {}
_GROUP: dict[str, tuple[str, ...]] = {}  # a sense's words (a typo of any is the sense)
for _group in _SYNONYMS:
    _members = tuple(_group.split())
    _GROUP[_members[0]] = _members
    for _m in _members:
        _SENSE.setdefault(_m, _members[0])
del _group, _members, _m


def _sense(stem: str) -> str:
    """What a content word means, for the comparison: its lemma's synonym group."""
    lemma = _lemma(stem)
    return _SENSE.get(lemma) or _SENSE.get(stem) or _SENSE.get(lemma + "e") or lemma


_OPPOSITE: dict[str, frozenset[str]] = {}
for _a, _b in _ANTONYMS:
    for _x, _y in ((_a, _b), (_b, _a)):
        _OPPOSITE[_stem(_x)] = _OPPOSITE.get(_stem(_x), frozenset()) | {_stem(_y)}
del _a, _b, _x, _y


@dataclass(frozen=True, slots=True)
class Features:
    """What must match between two texts for one to answer the other."""

    numbers: tuple[str, ...]                    # sorted multiset
    negations: int                              # how many negation cues
    targets: frozenset[str]                     # named targets, folded
    words: frozenset[str]                       # every word, folded
    content: frozenset[str]                     # senses of words less stopwords and fillers
    roles: tuple[tuple[str, frozenset[str]], ...]  # ("from", {"savings"}), ("to", {...})


def features(text: str) -> Features:
    targets: set[str] = set()
    rest = text
    for rx in (_URL, _EMAIL):
        for m in rx.finditer(rest):
            targets.add(m.group(0).lower().rstrip(".,;:!?)"))
        rest = rx.sub(" ", rest)
    for m in _QUOTED.finditer(rest):
        quoted = next(g for g in m.groups() if g is not None)
        targets.add(" ".join(quoted.lower().split()))
    for m in _CODE.finditer(rest):
        targets.add(m.group(0).lower())
    numbers = [n.replace(",", "") for n in _NUMBER.findall(rest)]
    openers = {m.start(1) for m in _SENTENCE_START.finditer(rest)}
    negations = 0
    words: set[str] = set()
    sequence: list[str] = []
    for m in _WORD.finditer(rest):
        raw = m.group(0)
        folded = raw.lower().replace("\u2019", "'")
        for part in folded.split("-"):
            if part in _NUMBER_WORDS:
                numbers.append(_NUMBER_WORDS[part])
        if folded.replace("'", "") in _NEGATIONS or folded.endswith("n't"):
            negations += 1
        stem = _stem(raw)
        words.add(stem)
        sequence.append(stem)
        if m.start() not in openers and _is_target(raw):
            targets.add(stem)
    senses: list[str | None] = []  # per word of `sequence`: its sense, None if no content
    i = 0
    while i < len(sequence):
        w = sequence[i]
        phrase = _PHRASES.get((w, sequence[i + 1])) if i + 1 < len(sequence) else None
        if phrase is not None:
            senses += [_SENSE.get(phrase, phrase), None]
            i += 2
            continue
        sense = None
        if w.replace("'", "") not in _STOP_STEMS and w not in _NUMBER_WORDS and len(w) > 1:
            sense = _sense(w)  # a synonym or inflection of a stopword is none ("needed")
            sense = None if sense in _STOP_STEMS else sense
        senses.append(sense)
        i += 1
    content = frozenset(x for x in senses if x is not None)
    roles: dict[str, set[str]] = {}
    for i, w in enumerate(sequence):
        if w in _FROM_TO:
            after = [x for x in senses[i + 1:i + 4] if x is not None][:1]
            if after:
                roles.setdefault("to" if w == "into" else w, set()).update(after)
    return Features(tuple(sorted(numbers)), negations, frozenset(targets), frozenset(words),
                    content, tuple((k, frozenset(v)) for k, v in sorted(roles.items())))


def _is_target(raw: str) -> bool:
    """A word that names something: capitalised mid-sentence, an acronym, or camel-cased."""
    if len(raw) > 1 and raw.isupper():
        return raw.lower() not in ("ok", "i'm", "i've", "i'd", "i'll")  # an acronym: ISA, NHS
    if any(c.isupper() for c in raw[1:]):
        return True                               # iPhone, McDonald, PayPal
    return raw[0].isupper() and _stem(raw).replace("'", "") not in _STOPWORDS


def _near(a: str, b: str) -> bool:
    """Typos and inflections: the same word for the guard (invioce/invoice, center/centre)."""
    if len(a) < 4 or len(b) < 4 or abs(len(a) - len(b)) > 2:
        return False
    if a[:5] == b[:5] and min(len(a), len(b)) >= 5:
        return True
    # one edit or one transposition apart
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    if len(long_) - len(short) != 1:
        return False
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _near_sense(a: str, b: str) -> bool:
    """A typo of a synonym group's word: "bagage" is "baggage", whose sense is "luggage"."""
    return any(_near(m, b) for m in _GROUP.get(a, ())) or \
        any(_near(a, m) for m in _GROUP.get(b, ()))


def _edit(a: frozenset[str], b: frozenset[str]) -> int:
    """How many content words one text adds, drops or swaps against the other (typos and
    inflections count as the same word)."""
    only_a, only_b = set(a - b), set(b - a)
    for w in list(only_a):
        match = next((x for x in only_b if _near(w, x) or _near_sense(w, x)), None)
        if match is not None:
            only_a.discard(w)
            only_b.discard(match)
    return len(only_a) + len(only_b)


def _opposed(a: frozenset[str], b: frozenset[str]) -> bool:
    only_a, only_b = a - b, b - a
    if not only_a and not only_b:
        return False
    for w in only_a:
        opposite = _OPPOSITE.get(w)
        if opposite is not None and opposite & only_b:
            return True
    for x, y in ((only_a, only_b), (only_b, only_a)):
        for w in x:
            for p in _NEG_PREFIXES:
                if w.startswith(p) and w[len(p):] in y:
                    return True
    return any(_opposed_compound(w, x) for w in only_a if "-" in w for x in only_b if "-" in x)


def _opposed_compound(a: str, b: str) -> bool:
    """Compounds that differ in one opposed part: "check-in"/"check-out", "full-time"/
    "part-time", "pre-tax"/"post-tax"."""
    pa, pb = a.split("-"), b.split("-")
    if len(pa) != len(pb):
        return False
    diff = [(x, y) for x, y in zip(pa, pb, strict=True) if x != y]
    return len(diff) == 1 and (diff[0][1] in _OPPOSITE.get(diff[0][0], ())
                               or {diff[0][0], diff[0][1]} == {"pre", "post"})


def _swapped(fa: Features, fb: Features) -> bool:
    """The same things in other roles: "from savings to current" and "from current to
    savings" (each side's word after "from"/"to" is a word of the other, in another role)."""
    ra, rb = dict(fa.roles), dict(fb.roles)
    for role in ra.keys() & rb.keys():
        if (ra[role] - rb[role]) & fb.content and (rb[role] - ra[role]) & fa.content:
            return True
    return False


# A reworded paraphrase changes many content words; a near miss changes one or two ("full-time"
# for "part-time", "gift" for "gift card"). A small edit of the content is the near-miss shape.
SMALL_EDIT = 3


def mismatch(a: str | Features, b: str | Features) -> str | None:
    """Why `b`'s answer may not serve `a` (None: the guard lets it). Symmetric."""
    fa = a if isinstance(a, Features) else features(a)
    fb = b if isinstance(b, Features) else features(b)
    if fa.numbers != fb.numbers:
        return "numbers"
    if fa.negations != fb.negations:
        return "negation"
    if not fa.targets <= (fb.words | fb.targets) or not fb.targets <= (fa.words | fa.targets):
        return "named targets"
    if _opposed(fa.words, fb.words) or _opposed(fa.content, fb.content):
        return "opposites"
    if _swapped(fa, fb):
        return "direction"
    if 0 < _edit(fa.content, fb.content) <= SMALL_EDIT:
        return "changed words"
    return None

