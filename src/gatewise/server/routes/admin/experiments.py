"""`/admin/experiments/{experiment}/report`: an A/B experiment's per-variant numbers and its
significance tests (`gatewise.quality.experiment_report`), the same report as
`gatewise experiments report NAME`.

The report sums every team's requests, so it needs `usage:read` over every team: admins and
teamless viewers; a team-bound key is refused (403) rather than shown other teams' numbers.
"""

from __future__ import annotations

import time
from typing import Annotated

import msgspec

from gatewise.errors import NotFoundError
from gatewise.quality.experiment_report import experiment_report, parse_since
from gatewise.security.inputs import Query
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import STR, AdminRoute, Args, View, send_json
from gatewise.types.limits import END, TIME_BOUND_PATTERN

_NUM = {"type": ["number", "null"]}
_ARRAY = {"type": "array", "items": {"type": "object"}}


# A duration before now (`7d`, `12h`), or what the usage report takes: epoch seconds, a date,
# a date and time. Published as a pattern, so the document admits exactly what is accepted.
SINCE_PATTERN = r"^(?:[1-9][0-9]{0,5}[smhdw]" + END + "|" + TIME_BOUND_PATTERN[1:] + ")"
Since = Annotated[str, msgspec.Meta(
    max_length=40, pattern=SINCE_PATTERN,
    description="a duration (7d, 12h, 30m, 2w, 90s), epoch seconds, YYYY-MM-DD or "
                "YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM]")]


class ExperimentReportQuery(Query):
    since: Since | None = None

    def check(self) -> None:
        parse_since(self.since, 0.0)


async def report(ctx: RequestContext, a: Args) -> None:
    """Per variant: requests, error rate, mean quality and feedback, latency p50/p95, mean
    cost; each variant against the control on the experiment's metric."""
    q: ExperimentReportQuery = a.query
    require(ctx.identity, "usage:read", team=None)
    name = a.path["experiment"]
    gw = ctx.gateway
    exp = gw.config.config.experiments.get(name)
    if exp is None:
        raise NotFoundError(f"no experiment {name!r} in the configuration",
                            param="experiment")
    if gw.quality.recorder is not None:  # this replica's pending rows count too
        await gw.quality.recorder.flush()
    rep = await experiment_report(gw.quality.store, name, exp,
                                  since=parse_since(q.since, time.time()))
    await send_json(ctx, rep.to_json())


ROUTES = [
    AdminRoute("GET", "/admin/experiments/{experiment}/report", "usage:read", report,
               View(extra={"object": STR, "experiment": STR, "alias": STR, "metric": STR,
                           "control": STR, "since": _NUM, "until": _NUM,
                           "variants": _ARRAY, "comparisons": _ARRAY}),
               query=ExperimentReportQuery),
]
