"""The gate in front of the model: one job at a time in its own thread, each bounded in time,
refused when the queue is full, stopped when the server stops."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from lm.errors import LMError
from lm.runtime import checkpoint
from lm.serve.gate import Busy, Gate, Overrun
from lm.settings import named


def _gate(queue: int = 4, seconds: float = 30.0) -> Gate:
    return Gate(queue=queue, seconds=seconds, stopping=threading.Event())


def _until_stopped() -> None:
    """Model work: steps that each ask whether to go on."""
    while True:
        threading.Event().wait(0.005)
        checkpoint()


def test_work_runs_in_the_model_thread_with_the_caller_s_context_and_field_names():
    gate = _gate()
    request = contextvars.ContextVar("request", default="none")

    def work() -> tuple[str, str, str]:
        return threading.current_thread().name, request.get(), named("max_tokens")

    async def call() -> tuple[str, str, str]:
        request.set("this one")
        return await gate.run(work)

    thread, seen, spelled = asyncio.run(call())
    gate.close()
    assert thread.startswith("lm-model") and seen == "this one"
    assert spelled == "max_tokens"  # errors of the shared code name JSON fields, not flags
    assert named("max_tokens") == "--max-tokens"  # outside the gate: flags again


def test_the_queue_counts_the_running_job_and_tells_how_many_wait():
    gate, release = _gate(queue=1), threading.Event()

    async def burst() -> list[object]:
        tasks = [asyncio.create_task(gate.run(release.wait, 5)) for _ in range(3)]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    first, second, third = asyncio.run(burst())
    gate.close()
    assert first is True and second is True  # one running, one waiting: queue=1 allows it
    assert isinstance(third, Busy) and third.retry_after == 1
    assert str(third) == ("the server is busy (2 requests waiting for the model): retry in a "
                          "moment")
    assert gate.waiting == 0


def test_work_past_its_time_is_stopped_and_answered_503():
    gate = _gate(seconds=0.05)
    with pytest.raises(Overrun) as overrun:
        asyncio.run(gate.run(_until_stopped))
    gate.close()
    assert overrun.value.retry_after == 1
    assert str(overrun.value) == ("the request ran past the server's 0.05 s limit (out of "
                                  "time): ask for less (fewer samples, tokens or beams), or "
                                  "start lm serve with a higher --limit-seconds")


def test_work_stops_when_the_server_stops_and_none_starts_after():
    gate = _gate(seconds=12.5)

    def stop_then_go_on() -> None:
        gate.stopping.set()  # SIGTERM arrives mid-generation
        _until_stopped()

    with pytest.raises(Overrun) as mid:
        asyncio.run(gate.run(stop_then_go_on))
    assert str(mid.value) == "the server is shutting down: retry on its next start"
    assert mid.value.retry_after == 13  # the limit, rounded up
    with pytest.raises(Overrun) as after:
        asyncio.run(gate.run(lambda: "never runs"))
    assert str(after.value) == "the server is shutting down: retry on its next start"
    assert after.value.retry_after == 5
    gate.close()


def test_errors_of_the_work_reach_the_caller():
    gate = _gate()

    def refuse() -> None:
        raise LMError(f"{named('top_k')} is wrong")

    with pytest.raises(LMError, match="^top_k is wrong$"):
        asyncio.run(gate.run(refuse))
    gate.close()


def test_close_cancels_the_waiting_work_without_waiting_for_the_running_one():
    gate, release, ran = _gate(), threading.Event(), []
    safety = threading.Timer(5, release.set)  # the test never hangs, whatever close does
    safety.start()

    def running() -> str:
        release.wait()
        ran.append("running")
        return "done"

    async def scenario() -> list[object]:
        first = asyncio.create_task(gate.run(running))
        second = asyncio.create_task(gate.run(ran.append, "waiting"))
        await asyncio.sleep(0.05)
        gate.close()
        assert ran == []  # close returned while the running job still runs
        release.set()
        return await asyncio.gather(first, second, return_exceptions=True)

    first, second = asyncio.run(scenario())
    safety.cancel()
    assert first == "done" and isinstance(second, asyncio.CancelledError)
    assert ran == ["running"]
    gate.close()  # closing twice is harmless
    assert asyncio.run(gate.run(lambda: 7)) == 7  # and a closed gate opens again
    gate.close()
