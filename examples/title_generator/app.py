"""Epic titles for two teams with their own quotas, on gatewise's library API.

    python examples/title_generator/app.py                    # offline: the embedded model
    python examples/title_generator/app.py --config my.yaml   # your models (and budgets)

What it shows, team by team (quotas: `gatewise.yaml` budgets, `teams.yaml` rate limits):

1. `platform` asks for a title, then for the same description again: the second one comes
   from the cache (`cached`, cost 0). A similar description (other words, same meaning) is
   answered from the cache too, by meaning (`semantic_hit`), when the local embedder is
   installed (the `semantic` extra). Regenerate skips the cache and asks the model again.
2. `growth` may send 2 requests a minute: its third title in a row is refused with a clear
   message (a 429 over HTTP), and nothing is charged for it.
3. `research` has a daily budget of 100 tokens: too small for one title, refused up front
   (a 402 over HTTP) before the model is asked.

Every call is a chat completion of the built-in prompt `title` through the whole gateway
(keys, rate limits, budgets, guardrails, cache, ledger): see `gatewise.titles`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from anywhere

import gatewise

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "gatewise.yaml"
TEAMS = HERE / "teams.yaml"

SSO = ("Enterprise customers keep asking for single sign-on. Let admins of enterprise "
       "workspaces sign in with single sign-on through their identity provider, and enforce "
       "it for every member of the workspace.")
SSO_SIMILAR = ("Enterprise customers keep asking for single sign-on. Enterprise workspace "
               "administrators should be able to log in using single sign-on from their "
               "company identity provider, and enforce it for every member of the workspace.")
GROWTH = [
    "Send a weekly email digest of new comments to people who follow a project.",
    "Offer a 14-day free trial of the team plan from the pricing page.",
    "Show a checklist that walks new users through creating their first project.",
]
RESEARCH = "Find out why onboarding completion dropped after the last release."


@dataclass(slots=True)
class Step:
    """One request of the demo and what came of it."""

    team: str
    action: str  # generate | repeat | similar | regenerate
    title: str | None = None
    cache: str | None = None  # hit | semantic_hit | miss
    tokens: int = 0
    cost_usd: float | None = None
    refused: str | None = None  # rate_limit | budget: the quota that said no
    message: str | None = None

    def line(self) -> str:
        who = f"{'[' + self.team + ']':<11}{self.action:<11}"
        if self.refused is not None:
            return f"{who} refused ({self.refused.replace('_', ' ')}): {self.message}"
        cost = "n/a" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        return f"{who} {self.cache:<12} {self.title!r}  ({self.tokens} tokens, {cost})"


def load_teams(path: Path) -> dict[str, gatewise.Identity]:
    """Each team's identity with its rate limit (`teams.yaml`)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {name: gatewise.Identity(team=name, user=f"{name}-demo",
                                    team_rpm=(spec or {}).get("rpm"))
            for name, spec in (data.get("teams") or {}).items()}


async def ask(gw: gatewise.Gateway, team: str, identity: gatewise.Identity, action: str,
              description: str, **kw: Any) -> Step:
    """One title; a quota refusal is part of the story, not a crash."""
    try:
        out = await gw.titles.agenerate(description, identity=identity, **kw)
    except gatewise.RateLimitExceeded as exc:
        return Step(team, action, refused="rate_limit", message=exc.message)
    except gatewise.BudgetExceededError as exc:
        return Step(team, action, refused="budget", message=exc.message)
    usage = out.usage
    return Step(team, action, title=out.title, cache=out.cache,
                tokens=usage.total_tokens if usage else 0, cost_usd=out.cost_usd)


async def run_demo(gw: gatewise.Gateway, teams: dict[str, gatewise.Identity],
                   out: Callable[[str], None] = print) -> list[Step]:
    """The demo's requests in order (see the module docstring); each step printed as it ends."""
    steps: list[Step] = []

    async def step(team: str, action: str, description: str, **kw: Any) -> None:
        s = await ask(gw, team, teams[team], action, description, **kw)
        steps.append(s)
        out(s.line())

    feature = {"style": "concise", "category": "feature", "max_length": 60}
    await step("platform", "generate", SSO, **feature)
    await step("platform", "repeat", SSO, **feature)
    await step("platform", "similar", SSO_SIMILAR, **feature)
    await step("platform", "regenerate", SSO, cache={"mode": "no-cache"}, **feature)
    for description in GROWTH:
        await step("growth", "generate", description, style="detailed", max_length=90)
    await step("research", "generate", RESEARCH, category="research")
    return steps


async def main_async(config: Path, teams_file: Path) -> int:
    gw = gatewise.Gateway(config)
    try:
        steps = await run_demo(gw, load_teams(teams_file))
    finally:
        await gw.aclose()
    served = [s for s in steps if s.refused is None]
    cached = sum(1 for s in served if s.cache in ("hit", "semantic_hit"))
    refused = sum(1 for s in steps if s.refused is not None)
    print(f"\n{len(served)} titles ({cached} from the cache), {refused} refused by a quota")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, default=CONFIG,
                        help="gatewise config (default: the example's, the embedded model)")
    parser.add_argument("--teams", type=Path, default=TEAMS,
                        help="teams and their requests per minute (default: teams.yaml)")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.config, args.teams))


if __name__ == "__main__":
    raise SystemExit(main())
