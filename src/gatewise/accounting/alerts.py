"""Spend alerts: a budget crossed 50/80/100 % (configurable) of its limit.

Each crossing becomes a log line, a metric increment and, when configured, a JSON POST to a
webhook: the alert's fields, plus `text`, a one-line summary for people (a Slack incoming
webhook requires `text` and shows it; generic receivers read the fields). The POST runs in
a task of its own so a slow or dead webhook never delays a request; its failures are logged
(without the URL: webhook URLs often embed a token).
Deduplication (once per budget, period and threshold, across replicas) is the caller's job
(`BudgetMiddleware` claims a counter first), so `crossed` always fires.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass

import msgspec

from gatewise.observability.metrics import Counter
from gatewise.transport.base import HttpRequest, Timeouts, Transport

log = logging.getLogger("gatewise.accounting")

_WEBHOOK_TIMEOUTS = Timeouts(total=10.0, connect=5.0, read=10.0)


@dataclass(frozen=True, slots=True)
class SpendAlert:
    budget_id: str
    scope: str               # key | team | user
    subject: str             # the key id / team id / user id (public ids, never secrets)
    period: str              # day | month | total
    period_start: float      # unix seconds (0 for total)
    unit: str                # usd | tokens
    threshold: float         # 0.5, 0.8, 1.0 ...
    spent: float
    limit: float
    hard: bool


def summary(alert: SpendAlert) -> str:
    """One line for people: public ids and amounts only (never a key or a URL)."""
    hard = " (hard limit)" if alert.hard else ""
    return (f"{alert.scope} {alert.subject} reached {round(alert.threshold * 100)}% of its "
            f"{alert.period} {alert.unit} budget ({alert.spent:.6g} of {alert.limit:.6g})"
            f"{hard}")


class SpendAlerts:
    def __init__(self, webhook: str | None, transport: Transport | None, *,
                 metrics_counter: Counter | None = None) -> None:
        self.webhook = webhook
        self.transport = transport
        self.metrics_counter = metrics_counter
        self._tasks: set[asyncio.Task[None]] = set()
        self._encode = msgspec.json.Encoder().encode

    def crossed(self, alert: SpendAlert) -> None:
        log.warning("spend alert: %s", summary(alert))
        if self.metrics_counter is not None:
            self.metrics_counter.inc((alert.scope, alert.period, f"{alert.threshold:g}"))
        if self.webhook and self.transport is not None:
            body = self._encode({"type": "gatewise.spend_alert", **asdict(alert),
                                 "text": f"gatewise spend alert: {summary(alert)}"})
            task = asyncio.get_running_loop().create_task(
                self._post(self.transport, self.webhook, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _post(transport: Transport, url: str, body: bytes) -> None:
        req = HttpRequest("POST", url, {"content-type": "application/json"}, body,
                          _WEBHOOK_TIMEOUTS)
        try:
            resp = await transport.send(req)
        except Exception as exc:
            log.warning("spend alert webhook failed: %s", type(exc).__name__)
            return
        if resp.status >= 300:
            log.warning("spend alert webhook answered HTTP %d", resp.status)

    async def aclose(self) -> None:
        """Waits for webhook posts still in flight (shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
