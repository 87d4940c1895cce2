"""Stopping a task that talks to a store: cancel-safe even when the store's client is not.

redis-py (and other clients) can swallow a cancel that lands inside one of their reads: the
read just returns, or fails with the client's own timeout, and the task carries on as if it
had never been asked to stop. A shutdown that cancels such a task once and awaits it can then
wait forever (a maintenance job's loop did, for the whole of a test server's 15 s join).
So: `stop_task` cancels again until the task ends, within a bound, and a loop that calls such
a client asks `cancel_was_lost()` after the call and ends itself.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("gatewise.storage.tasks")


async def stop_task(task: asyncio.Task[None], what: str) -> None:
    """Cancels `task` and waits for it to end, cancelling again if a cancel was lost; gives up
    after about 2 s rather than hang a shutdown."""
    for _ in range(20):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("%s failed", what, exc_info=task.exception())
            return
    log.warning("%s did not stop on cancel", what)


def cancel_was_lost() -> bool:
    """True in a task that was asked to stop but is still running: a client swallowed the
    cancel (see `stop_task`), so a loop should end now rather than go round again."""
    me = asyncio.current_task()
    return me is not None and me.cancelling() > 0
