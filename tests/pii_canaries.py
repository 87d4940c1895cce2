"""The seeded PII canary set: personal data placed in natural sentences in every message role.

Deterministic (a fixed seed, no clock, no network): `canaries()` returns the same list on every
machine. `python -m tests.pii_canaries > canaries.jsonl` writes it out for reading.

- PERSON: given + family names from many cultures, written out by hand below (NOT taken from
  faker, whose lists the names layer is built from, so the names layer is not scored on its own
  source); pairs are drawn within a culture.
- pattern entities: e-mail addresses (from the names), phone numbers of several countries
  (kept only when the numbering plan says they are valid), Luhn-valid card numbers, IBANs with
  correct check digits for ten countries, IPv4 and IPv6 addresses, US SSNs of valid ranges,
  UK NHS numbers (mod-11 check digit), UK National Insurance numbers and bitcoin addresses
  (base58check), written in their usual formats.
- roles: `system` (a system prompt), `user`, `assistant` (history: text, or tool-call arguments),
  `tool` (a tool result, often JSON) and `context` (a retrieved document, sent as a second text
  part of a user message). Each canary sits in one message of one role; `message()` builds it.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import asdict, dataclass
from typing import Any

SEED = 11
ROLES = ("system", "user", "assistant", "tool", "context")

# Hand-written, culture by culture: (given names, family names).
NAMES: dict[str, tuple[list[str], list[str]]] = {
    "south_asian": (["Priya", "Arjun", "Lakshmi", "Venkatesh", "Anjali", "Rohan", "Sunita", "Karthik",
                     "Meenakshi", "Farhan", "Tahmina", "Dilshan", "Harpreet", "Nandini"],
                    ["Raghunathan", "Subramanian", "Iyer", "Chatterjee", "Deshpande", "Krishnamurthy",
                     "Banerjee", "Qureshi", "Chowdhury", "Jayasuriya", "Perera", "Nair", "Sandhu",
                     "Venkataraman"]),
    "chinese": (["Wei", "Xiaoling", "Jianhua", "Mei", "Haoran", "Yuting"],
                ["Zhang", "Liu", "Huang", "Zhou", "Xu", "Guo"]),
    "japanese": (["Haruto", "Yuki", "Sakura", "Takeshi", "Aiko", "Ren"],
                 ["Watanabe", "Nakamura", "Yamamoto", "Takahashi", "Kobayashi", "Fujita"]),
    "korean": (["Min-jun", "Seo-yeon", "Hyun-woo", "Ji-ho", "Eun-ji", "Dong-hyun"],
               ["Kim", "Park", "Choi", "Jung", "Kang", "Yoon"]),
    "vietnamese": (["Thanh", "Linh", "Minh", "Huong", "Quang", "Thuy"],
                   ["Nguyen", "Tran", "Pham", "Hoang", "Vu", "Dang"]),
    "slavic": (["Nadia", "Dmitri", "Katarzyna", "Bogdan", "Svetlana", "Miroslav", "Olena", "Zoran",
                "Agnieszka", "Yaroslav"],
               ["Petrovic", "Kowalczyk", "Ivanova", "Novak", "Shevchenko", "Horvat", "Dvorak",
                "Wisniewski", "Jovanovic", "Sokolov"]),
    "arabic": (["Ahmed", "Fatima", "Yousef", "Layla", "Omar", "Mariam", "Khalid", "Noor", "Rania", "Tariq"],
               ["Al-Farsi", "Haddad", "Mansour", "El-Sayed", "Nasser", "Khoury", "Abdullah", "Hamdan",
                "Al-Rashid", "Saleh"]),
    "african": (["Oluwaseun", "Chiamaka", "Kwame", "Wanjiru", "Tendai", "Abebe", "Nomvula", "Emeka",
                 "Amara", "Kofi"],
                ["Adebayo", "Okonkwo", "Mensah", "Kamau", "Moyo", "Tesfaye", "Dlamini", "Okafor",
                 "Mwangi", "Boateng"]),
    "latin_american": (["Mateus", "Valentina", "Joaquín", "Camila", "Thiago", "Ximena", "Alejandro",
                        "Luciana", "Renata", "Rodrigo"],
                       ["Oliveira", "Gutiérrez", "Fernández", "Ramírez", "Souza", "Castillo", "Mendoza",
                        "Quispe", "Carvalho", "Villanueva"]),
    "european": (["Siobhan", "Lukas", "Margaux", "Henrik", "Giulia", "Pieter", "Ingrid", "Francesca",
                  "Aurélien", "Annelies"],
                 ["O'Sullivan", "Müller", "Lefèvre", "Johansson", "Rossi", "de Vries", "Andersen",
                  "Bianchi", "Lindqvist", "Moreau"]),
    "turkish_persian": (["Emre", "Elif", "Darius", "Shirin", "Mehmet", "Zeynep"],
                        ["Y\u0131lmaz", "Demir", "Hosseini", "Karimi", "Ayd\u0131n", "Tehrani"]),
    "anglo": (["Megan", "Gareth", "Harriet", "Colin", "Bethany", "Declan"],
              ["Thornton", "Whitfield", "Ashworth", "Pemberton", "Hargreaves", "Blackburn"]),
    "hebrew_greek": (["Yael", "Avi", "Nikos", "Eleni", "Noam", "Stavros"],
                     ["Cohen", "Levy", "Papadopoulos", "Georgiou", "Friedman", "Konstantinou"]),
    "southeast_asian": (["Budi", "Siti", "Maricel", "Rizal", "Dewi", "Arnel"],
                        ["Santoso", "Wijaya", "Bautista", "Dela Cruz", "Hidayat", "Villareal"]),
}

LABELS = {
    "PERSON": "name", "EMAIL_ADDRESS": "e-mail address", "PHONE_NUMBER": "phone number",
    "CREDIT_CARD": "card number", "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP address",
    "US_SSN": "social security number", "UK_NHS": "NHS number",
    "UK_NINO": "National Insurance number", "CRYPTO": "bitcoin wallet",
}
COUNTS = {"PERSON": 260, "EMAIL_ADDRESS": 40, "PHONE_NUMBER": 40, "CREDIT_CARD": 40, "IBAN_CODE": 40,
          "IP_ADDRESS": 40, "US_SSN": 40, "UK_NHS": 30, "UK_NINO": 30, "CRYPTO": 30}

# Sentences per role. {v} is the value, {l} its label, {n} a name (for the other sentences).
NAME_TEMPLATES = {
    "system": ["You are assisting {v}, a premium client of the bank.",
               "The customer on this call is {v}. Be polite and verify identity first.",
               "{v} has an open complaint; do not promise a refund before review.",
               "Account holder: {v}\nSegment: retail\nLanguage: English",
               "Address the user as {v} and keep answers short."],
    "user": ["Hi, my name is {v} and I need help with a transfer.",
             "{v} here, I'm calling about my mortgage.",
             "Can you check whether {v} is still listed as a joint holder?",
             "Please send the statement to my wife, {v}.",
             "This is about the account of {v}, my late father."],
    "assistant": ["Thanks, {v}. I have found your account.",
                  "I've updated the address for {v} as requested.",
                  "{v} was added as a beneficiary yesterday.",
                  "Certainly. The card for {v} will arrive within five working days.",
                  "JSON:{\"customer_name\": \"{v}\", \"reason\": \"address change\"}"],
    "tool": ["JSON:{\"id\": 4821, \"name\": \"{v}\", \"status\": \"active\"}",
             "customer: {v}\ntier: gold\nopened: 2019-04-02",
             "Found 1 match: {v} (joint account, opened 2016).",
             "JSON:{\"results\": [{\"holder\": \"{v}\", \"balance\": 1520.33}]}",
             "{v} | savings | 2 cards | no arrears"],
    "context": ["Case notes, 12 March: {v} phoned to dispute a charge from an online retailer.",
                "From the CRM record: {v} prefers contact by letter.",
                "Meeting minutes. Present: {v}, branch manager. Agreed to waive the fee.",
                "Complaint summary\n{v}\nOverdraft charged twice in February.",
                "The loan application submitted by {v} was approved on review."],
}
VALUE_TEMPLATES = {
    "system": ["The verified {l} for this customer is {v}.",
               "Customer profile. {l}: {v}. Risk: low.",
               "Never read out the {l} {v} in full."],
    "user": ["My {l} is {v}, can you update it?",
             "Please use {v} for this.",
             "I think {v} is the {l} you have on file, right?"],
    "assistant": ["I have noted {v} as your {l}.",
                  "The {l} on record is {v}.",
                  "JSON:{\"field\": \"{l}\", \"value\": \"{v}\"}"],
    "tool": ["JSON:{\"customer\": \"{n}\", \"{k}\": \"{v}\"}",
             "{l}: {v}\nverified: true",
             "lookup ok; {l} {v} matches the account"],
    "context": ["Policy note: the customer's {l} ({v}) was confirmed on the last call.",
                "Extract from the application form: {l} {v}, signed by the applicant.",
                "Ticket 5531. The {l} supplied was {v}; it matched our records."],
}


@dataclass(frozen=True, slots=True)
class Canary:
    entity: str
    value: str
    role: str
    text: str           # the message text (for `assistant` with JSON: tool-call arguments)
    as_arguments: bool  # `text` is an assistant tool call's JSON arguments


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    prefix, length, groups = rng.choice([("4", 16, (4, 4, 4, 4)),
                                         ("5" + str(rng.randint(1, 5)), 16, (4, 4, 4, 4)),
                                         ("3" + rng.choice("47"), 15, (4, 6, 5)), ("6011", 16, (4, 4, 4, 4))])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    number = body + _luhn_digit(body)
    sep = rng.choice([" ", "-", ""])
    out, i = [], 0
    for g in groups:
        out.append(number[i:i + g])
        i += g
    return sep.join(out)


IBAN_BBAN = {"GB": "AAAA" + "9" * 14, "DE": "9" * 18, "FR": "9" * 23, "ES": "9" * 20, "NL": "AAAA" + "9" * 10,
             "IT": "A" + "9" * 22, "BE": "9" * 12, "AT": "9" * 16, "PL": "9" * 24, "CH": "9" * 17}


def _iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_BBAN))
    bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") if c == "A" else rng.choice("0123456789")
                   for c in IBAN_BBAN[country])
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(digits) % 97
    iban = f"{country}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban


def _phone(rng: random.Random) -> str:
    import phonenumbers

    shapes = [
        lambda: f"+44 7{rng.randint(400, 999)} {rng.randint(100000, 999999)}",
        lambda: f"020 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        lambda: (f"({rng.choice([212, 415, 617, 312, 206])}) "
                 f"{rng.randint(200, 989)}-{rng.randint(1000, 9999)}"),
        lambda: f"+1 {rng.choice([646, 213, 404, 512])} {rng.randint(200, 989)} {rng.randint(1000, 9999)}",
        lambda: f"+91 9{rng.randint(1000, 9999)} {rng.randint(10000, 99999)}",
        lambda: f"+49 30 {rng.randint(1000000, 9999999)}",
        lambda: "+33 6 " + " ".join(str(rng.randint(10, 99)) for _ in range(4)),
        lambda: f"+234 803 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        lambda: f"+55 11 9{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        lambda: f"+81 3-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
    ]
    while True:
        text = rng.choice(shapes)()
        region = None if text.startswith("+") else ("GB" if text.startswith("0") else "US")
        if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
            return text


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return "2001:db8:" + ":".join(f"{rng.randint(0, 0xffff):x}" for _ in range(6))


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _nhs(rng: random.Random) -> str:
    while True:
        body = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * (10 - i) for i, d in enumerate(body)) % 11
        if check == 11:
            check = 0
        if check != 10:
            digits = "".join(map(str, body)) + str(check)
            return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def _nino(rng: random.Random) -> str:
    while True:  # HMRC: no D, F, I, Q, U, V; no O second; these pairs are never allocated
        first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
        second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
        if first + second not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            break
    digits = "".join(rng.choice("0123456789") for _ in range(6))
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {rng.choice('ABCD')}"
    return f"{first}{second}{digits}{rng.choice('ABCD')}"


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _crypto(rng: random.Random) -> str:
    payload = bytes([0 if rng.random() < 0.7 else 5]) + bytes(rng.randrange(256) for _ in range(20))
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def _ascii(s: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and (c.isalnum() or c in ".-"))


def _person(rng: random.Random) -> str:
    culture = rng.choice(sorted(NAMES))
    given, family = NAMES[culture]
    return f"{rng.choice(given)} {rng.choice(family)}"


def _email(rng: random.Random) -> str:
    given, family = _person(rng).split(" ", 1)
    domain = rng.choice(["example.com", "mail.example.org", "corp.example.co.uk", "gmail.com", "outlook.com",
                         "proton.me", "yahoo.co.in", "web.de", "example.com.br", "uni-example.ac.za"])
    local = rng.choice([f"{given}.{family}", f"{given[0]}{family}", f"{family}{rng.randint(1, 99)}"])
    return f"{_ascii(local).lower()}@{domain}"


GENERATORS = {"PERSON": _person, "EMAIL_ADDRESS": _email, "PHONE_NUMBER": _phone, "CREDIT_CARD": _card,
              "IBAN_CODE": _iban, "IP_ADDRESS": _ip, "US_SSN": _ssn, "UK_NHS": _nhs, "UK_NINO": _nino,
              "CRYPTO": _crypto}


def canaries(seed: int = SEED) -> list[Canary]:
    rng = random.Random(seed)
    out: list[Canary] = []
    for entity, count in COUNTS.items():
        seen: set[str] = set()
        i = 0
        while len(seen) < count:
            value = GENERATORS[entity](rng)
            if value in seen:
                continue
            seen.add(value)
            role = ROLES[i % len(ROLES)]
            i += 1
            templates = NAME_TEMPLATES[role] if entity == "PERSON" else VALUE_TEMPLATES[role]
            template = rng.choice(templates)
            as_args = template.startswith("JSON:") and role == "assistant"
            text = template.removeprefix("JSON:")
            filled = (text.replace("{v}", value).replace("{l}", LABELS[entity])
                      .replace("{k}", LABELS[entity].replace(" ", "_").replace("-", ""))
                      .replace("{n}", "the customer"))
            out.append(Canary(entity, value, role, filled, as_args))
    return out


def message(c: Canary, index: int = 0) -> dict[str, Any]:
    """The OpenAI chat message carrying `c` (the `tool` role answers call `call_<index>`)."""
    if c.role == "system":
        return {"role": "system", "content": c.text}
    if c.role == "user":
        return {"role": "user", "content": c.text}
    if c.role == "context":
        return {"role": "user", "content": [
            {"type": "text", "text": "Answer from the retrieved document below."},
            {"type": "text", "text": f"<document>\n{c.text}\n</document>"}]}
    if c.role == "tool":
        return {"role": "tool", "tool_call_id": f"call_{index}", "content": c.text}
    if c.as_arguments:
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{index}", "type": "function", "function": {"name": "update_customer",
                                                                     "arguments": c.text}}]}
    return {"role": "assistant", "content": c.text}


def conversation(items: list[Canary]) -> list[dict[str, Any]]:
    """A valid chat holding every canary of `items`: each tool result follows an assistant
    tool call with its id, and the conversation ends with a user turn."""
    msgs: list[dict[str, Any]] = []
    for i, c in enumerate(items):
        if c.role == "tool":
            msgs.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]})
        msgs.append(message(c, i))
    msgs.append({"role": "user", "content": "Please summarise what you know so far."})
    return msgs


if __name__ == "__main__":
    for c in canaries():
        sys.stdout.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
