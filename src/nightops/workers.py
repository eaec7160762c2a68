"""Run the service's slow jobs off the request thread, on a bounded pool.

A request thread (Slack HTTP handler, Socket Mode listener) answers at once; the job that
actually starts or stops a collection runs here, and reports progress and the result
through callbacks the adapter provides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from nightops_core.responses import Job, Outcome
from nightops_core.service import Service

__all__ = ["Workers"]

log = logging.getLogger("nightops.workers")

Deliver = Callable[[Outcome], None]


class Workers:
    """A pool that runs :class:`~nightops_core.responses.Job` s with
    :meth:`Service.run_job`, delivering each progress update and the final outcome."""

    def __init__(self, service: Service, *, max_workers: int = 8) -> None:
        self.service = service
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="nightops-job")

    def submit(self, outcome: Outcome, deliver: Deliver) -> list[Future[None]]:
        """Run every job of ``outcome``; ``deliver`` gets progress and final outcomes
        (from a worker thread), then the outcomes of any jobs those produce."""
        return [self._pool.submit(self._run, job, deliver) for job in outcome.jobs]

    def _run(self, job: Job, deliver: Deliver) -> None:
        try:
            final = self.service.run_job(job, progress=deliver)
            deliver(final)
            for follow_up in self.submit(final, deliver):
                follow_up.result()
        except Exception:  # a worker must survive any bug; the operation stays journaled
            log.exception("job %s failed; it will be reconciled at the next start", job)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs; with ``wait``, let running ones finish."""
        self._pool.shutdown(wait=wait)
