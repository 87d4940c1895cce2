"""A tool the test pipelines' tool step calls (imported by path, as a pipeline YAML names it)."""

from __future__ import annotations

CALLS: list[dict[str, object]] = []


def lookup_order(order_id: str) -> dict[str, object]:
    CALLS.append({"order_id": order_id})
    return {"order": order_id, "status": "shipped"}
