"""The autopay job as the scheduler runs it: often (a run goes on while work is due), never two
runs at once, and told to stop taking autopays once the scheduler is paused — the first thing
`bot.jobs.stop_scheduler` does."""

from __future__ import annotations

from apscheduler.triggers.interval import IntervalTrigger

from bot.jobs import AUTOPAY_EVERY, run_autopays, start_scheduler
from tests.flows.conftest import Harness


async def test_the_autopay_job_is_frequent_single_and_stops_with_the_scheduler(
    harness: Harness,
) -> None:
    assert harness.app is not None
    scheduler = start_scheduler(harness.app)
    try:
        [job] = [job for job in scheduler.get_jobs() if job.func is run_autopays]
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval.total_seconds() == AUTOPAY_EVERY == 5
        assert job.max_instances == 1
        stopping = job.kwargs["stopping"]
        assert stopping() is False
        scheduler.pause()
        assert stopping() is True
    finally:
        scheduler.shutdown(wait=False)
    assert stopping() is True
