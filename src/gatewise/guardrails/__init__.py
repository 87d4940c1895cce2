"""Guardrails: PII masking, prompt-injection defence, tool-call constraints, output checks."""
