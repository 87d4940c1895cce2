"""Accounting: token counting, prices and cost, the usage ledger, budgets and rate limits."""
