"""An in-memory fake core-banking backend and the assistant's tool implementations.

The tools' JSON schemas and permissions live in `gatewise.yaml` (the gateway validates every
call a model makes against them, whoever runs the tool: this example's handler, or a LiveKit
agent talking to `gatewise serve`). This module implements them and enforces the bank's own
rules, in code, whatever a model or a prompt says:

- no account tool runs before `verify_identity` succeeded in this session (`NotVerified`);
- three wrong PINs lock verification for the session;
- a transfer moves only between the customer's own accounts, never more than the balance.

A tool that refuses raises `BankError`; the tool loop turns that into a tool result the model
reads, and the handler counts it as a failure (see `handler.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

TOOL_NAMES = ("verify_identity", "get_balance", "list_transactions", "freeze_card", "transfer")
ACCOUNT_PERMISSION = "bank:account"
MAX_PIN_ATTEMPTS = 3


class BankError(Exception):
    """The bank refused (a business rule, not a bug); the message is safe to show."""


class NotVerified(BankError):
    """An account tool was called before the caller was verified."""


@dataclass(slots=True)
class Transaction:
    date: str
    description: str
    amount: Decimal


@dataclass(slots=True)
class Account:
    balance: Decimal
    transactions: list[Transaction] = field(default_factory=list)


@dataclass(slots=True)
class Card:
    last4: str
    frozen: bool = False


@dataclass(slots=True)
class Customer:
    customer_id: str
    name: str
    pin: str
    accounts: dict[str, Account]
    cards: list[Card]


def _money(value: float | int | str | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def demo_customers() -> dict[str, Customer]:
    """Two customers to talk about; each call gets fresh copies, so sessions never share."""
    return copy.deepcopy({
        "C-1001": Customer("C-1001", "Jane Doe", "4321", {
            "checking": Account(_money("1520.40"), [
                Transaction("2026-12-01", "Grocery Market", _money("-54.20")),
                Transaction("2026-11-30", "Salary ACME GmbH", _money("2400.00")),
                Transaction("2026-11-29", "Rent December", _money("-950.00")),
                Transaction("2026-11-28", "Coffee Corner", _money("-3.80")),
            ]),
            "savings": Account(_money("8200.00"), [
                Transaction("2026-11-01", "Interest", _money("12.35")),
            ]),
        }, [Card("4821"), Card("0077")]),
        "C-2002": Customer("C-2002", "Omar Haddad", "9876", {
            "checking": Account(_money("310.00")), "savings": Account(_money("0.00"))},
            [Card("5512")]),
    })


class Bank:
    """The core-banking system: customers by id. Thread-safe enough for an example (the tool
    loop runs one tool at a time per session)."""

    def __init__(self, customers: Mapping[str, Customer] | None = None) -> None:
        self.customers = dict(customers) if customers is not None else demo_customers()

    def session(self) -> BankSession:
        return BankSession(self)


@dataclass(slots=True)
class BankSession:
    """One caller's session: who they proved to be, and the tools bound to them."""

    bank: Bank
    customer_id: str | None = None
    failed_pins: int = 0
    audit: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.customer_id is not None

    def _customer(self) -> Customer:
        if self.customer_id is None:
            raise NotVerified("the caller is not verified: call verify_identity first")
        return self.bank.customers[self.customer_id]

    # -- the tools (arguments already validated against gatewise.yaml's schemas) -------------
    def verify_identity(self, customer_id: str, pin: str) -> dict[str, Any]:
        if self.failed_pins >= MAX_PIN_ATTEMPTS:
            raise BankError("verification is locked after too many wrong PINs")
        customer = self.bank.customers.get(customer_id)
        if customer is None or customer.pin != pin:
            self.failed_pins += 1
            self.audit.append("verify_identity:failed")
            raise BankError("the customer id and PIN do not match")
        self.customer_id = customer_id
        self.failed_pins = 0
        self.audit.append(f"verify_identity:{customer_id}")
        return {"verified": True, "customer_id": customer_id,
                "first_name": customer.name.split()[0]}

    def get_balance(self, account: str) -> dict[str, Any]:
        acc = self._customer().accounts[account]
        return {"account": account, "balance": str(acc.balance), "currency": "EUR"}

    def list_transactions(self, account: str, limit: int) -> dict[str, Any]:
        acc = self._customer().accounts[account]
        return {"account": account, "transactions": [
            {"date": t.date, "description": t.description, "amount": str(t.amount)}
            for t in acc.transactions[:limit]]}

    def freeze_card(self, card_last4: str, reason: str) -> dict[str, Any]:
        card = next((c for c in self._customer().cards if c.last4 == card_last4), None)
        if card is None:
            raise BankError(f"no card ending in {card_last4} on this customer's profile")
        card.frozen = True
        self.audit.append(f"freeze_card:{card_last4}:{reason}")
        return {"card_last4": card_last4, "frozen": True, "reason": reason}

    def transfer(self, from_account: str, to_account: str, amount: float) -> dict[str, Any]:
        customer = self._customer()
        if from_account == to_account:
            raise BankError("the source and destination accounts are the same")
        value = _money(amount)
        if value <= 0:  # the schema says so too; the bank never trusts its callers
            raise BankError("the amount must be positive")
        source, dest = customer.accounts[from_account], customer.accounts[to_account]
        if value > source.balance:
            raise BankError(f"insufficient funds in {from_account}")
        source.balance -= value
        dest.balance += value
        source.transactions.insert(0, Transaction("today", f"Transfer to {to_account}", -value))
        dest.transactions.insert(0, Transaction("today", f"Transfer from {from_account}", value))
        self.audit.append(f"transfer:{from_account}->{to_account}:{value}")
        return {"from_account": from_account, "to_account": to_account, "amount": str(value),
                "currency": "EUR", "new_balance": str(source.balance)}

    def handlers(self) -> dict[str, Callable[..., dict[str, Any]]]:
        """Tool name → this session's implementation (called with the JSON arguments)."""
        return {name: getattr(self, name) for name in TOOL_NAMES}
