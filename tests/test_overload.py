"""Overload is answered at once: past the in-flight bound 503, past a client's rate 429."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.overload import RateLimits, TokenBuckets, retry_after_header
from tests.maps_support import live_database_url, live_settings, report_body, token_for

INSIDE = (117.9705, 37.3805)


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3.0, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert buckets.take("b") == 0.0  # clients do not share a bucket
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    now[0] = 100.0
    assert [buckets.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # capped at the burst
    assert TokenBuckets(rate=0, burst=1).take("x") == 0.0  # 0: no limit
    assert retry_after_header(0.01) == "1" and retry_after_header(2.2) == "3"


def test_keys_and_users_have_separate_buckets() -> None:
    limits = RateLimits(per_key=1.0, per_user=1.0, burst_s=1.0, clock=lambda: 0.0)
    limits.check("keyhash", 7)
    limits.check(None, 7)  # the same owner signed in: the user's own bucket
    with pytest.raises(Exception) as caught:
        limits.check("keyhash", 7)
    assert type(caught.value).__name__ == "RateLimited"
    assert caught.value.retry_after == "1"  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    return live_database_url(), tmp_path_factory.mktemp("overload-state")


@pytest.mark.serial
def test_requests_past_the_bound_get_503_within_milliseconds(live: tuple) -> None:
    url, state = live
    app = create_app(live_settings(url, state, max_in_flight=2, rate_limit_per_user=0))
    headers = {"Authorization": f"Bearer {token_for(url, 'dispatcher')}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        # Slow requests: the database gate is closed, so admitted reports wait behind it.
        gate = client.portal.call(lambda: anyio.CapacityLimiter(1))
        app.state.db_limiter = gate
        client.portal.call(gate.acquire_on_behalf_of, "test")
        answers: list[httpx.Response] = []

        def post() -> None:
            answers.append(
                client.post("/api/v1/events", json=report_body(*INSIDE), headers=headers)
            )

        try:
            slow = [threading.Thread(target=post) for _ in range(2)]
            for t in slow:
                t.start()
            deadline = time.monotonic() + 10
            while client.portal.call(lambda: gate.statistics().tasks_waiting) < 2:
                assert time.monotonic() < deadline, "the slow requests never reached the gate"
                time.sleep(0.02)

            for _ in range(3):
                started = time.perf_counter()
                extra = client.post("/api/v1/events", json=report_body(*INSIDE), headers=headers)
                elapsed = time.perf_counter() - started
                assert extra.status_code == 503
                assert extra.headers["retry-after"] == "1"
                assert extra.headers["content-type"] == "application/problem+json"
                assert extra.json()["type"].endswith("/overloaded")
                assert elapsed < 0.25  # answered, not queued
            assert client.get("/healthz").status_code == 200  # health checks are never shed

        finally:
            client.portal.call(gate.release_on_behalf_of, "test")
        for t in slow:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in slow), "a slow request hung"
        assert len(answers) == 2 and {r.status_code for r in answers} <= {201, 202}
        # Capacity is back: the next report is admitted.
        again = client.post("/api/v1/events", json=report_body(*INSIDE), headers=headers)
        assert again.status_code in (201, 202), again.text


def test_a_user_over_the_rate_gets_429_with_retry_after(live: tuple) -> None:
    url, state = live
    app = create_app(live_settings(url, state, rate_limit_per_user=1.0, rate_limit_burst_s=2.0))
    headers = {"Authorization": f"Bearer {token_for(url, 'planner')}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        codes = [client.get("/api/v1/auth/me", headers=headers).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.get("/api/v1/auth/me", headers=headers)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["type"].endswith("/rate-limited")
        other = {"Authorization": f"Bearer {token_for(url, 'dispatcher')}"}
        assert client.get("/api/v1/auth/me", headers=other).status_code == 200


@pytest.mark.serial
def test_the_database_gate_refuses_a_job_that_would_wait_too_long() -> None:
    from api.errors import Overloaded
    from api.overload import DatabaseGate

    gate = DatabaseGate(1, max_wait_s=0.05)

    async def scenario() -> tuple[float, int]:
        held, done = anyio.Event(), anyio.Event()

        async def holder() -> None:
            async with gate:
                held.set()
                await done.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await held.wait()
            started = time.perf_counter()
            with pytest.raises(Overloaded):
                async with gate:
                    pass
            waited = time.perf_counter() - started
            done.set()
        async with gate:  # free again once the first job is done
            pass
        return waited, gate.refused

    waited, refused = anyio.run(scenario)
    assert 0.04 <= waited < 0.5 and refused == 1


def test_the_gate_measures_its_queue_in_time() -> None:
    """Queue delay: the oldest waiter's wait, or the jobs ahead times the mean hold time."""
    from api.overload import DatabaseGate

    now = [0.0]
    gate = DatabaseGate(1, max_wait_s=0, shed_after_s=0.05, clock=lambda: now[0])

    async def scenario() -> None:
        assert gate.queue_delay() == 0 and not gate.crowded() and gate.hold_s is None
        for _ in range(16):  # jobs of 10 ms one after the other: 100 tokens back per second
            async with gate:
                now[0] += 0.01
        assert gate.hold_s == pytest.approx(0.01)
        # The door admitted 5 requests, none at the gate yet: 4 are ahead of the 5th's token.
        assert gate.queue_delay(in_flight=5) == pytest.approx(0.05) and gate.crowded(5)
        assert not gate.crowded(4) and gate.queue_delay(in_flight=1) == 0
        held, done = anyio.Event(), anyio.Event()

        async def holder() -> None:
            async with gate:
                held.set()
                await done.wait()

        async def waiter() -> None:
            async with gate:
                pass

        async def until_waiting(n: int) -> None:
            with anyio.fail_after(5):
                while gate.waiting < n:
                    await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await held.wait()
            for _ in range(3):
                tg.start_soon(waiter)
            await until_waiting(3)
            # A newcomer would wait for 4 tokens at 100/s: 40 ms, under the 50 ms target.
            assert gate.queue_delay() == pytest.approx(0.04)
            assert not gate.crowded()
            tg.start_soon(waiter)
            await until_waiting(4)
            assert gate.queue_delay() == pytest.approx(0.05) and gate.crowded()
            done.set()
        assert gate.waiting == 0 and not gate.crowded()

        # No rate known (a fresh gate): the oldest waiter's wait is the measure.
        stuck = DatabaseGate(1, max_wait_s=0, shed_after_s=0.05, clock=lambda: now[0])
        held, done = anyio.Event(), anyio.Event()

        async def holder2() -> None:
            async with stuck:
                held.set()
                await done.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder2)
            await held.wait()
            tg.start_soon(_enter_and_leave, stuck)
            with anyio.fail_after(5):
                while stuck.waiting < 1:
                    await anyio.sleep(0)
            assert stuck.hold_s is None and not stuck.crowded()
            now[0] += 0.049
            assert not stuck.crowded()
            now[0] += 0.002
            assert stuck.queue_delay() == pytest.approx(0.051) and stuck.crowded()
            done.set()
        off = DatabaseGate(1, max_wait_s=0, shed_after_s=0, clock=lambda: now[0])
        assert not off.crowded()  # 0: shed by count only

    anyio.run(scenario)


async def _enter_and_leave(gate: object) -> None:
    async with gate:  # type: ignore[attr-defined]
        pass


def _door(app: object) -> object:
    from api.overload import InFlightLimit

    layer = app.middleware_stack  # type: ignore[attr-defined]
    while layer is not None and not isinstance(layer, InFlightLimit):
        layer = getattr(layer, "app", None)
    assert layer is not None, "no InFlightLimit in the middleware stack"
    return layer


@pytest.mark.serial
def test_the_door_sheds_while_the_database_queue_is_too_slow(live: tuple) -> None:
    """Under the count bound, a request is still shed at once when the queue is slow."""
    from api.overload import DatabaseGate

    url, state = live
    app = create_app(
        live_settings(url, state, max_in_flight=100, rate_limit_per_user=0, shed_queue_ms=50)
    )
    headers = {"Authorization": f"Bearer {token_for(url, 'dispatcher')}"}
    now = [1000.0]
    with TestClient(app, raise_server_exceptions=False) as client:
        gate = client.portal.call(
            lambda: DatabaseGate(1, max_wait_s=0, shed_after_s=0.05, clock=lambda: now[0])
        )
        app.state.db_limiter = gate
        door = _door(app)
        assert client.portal.call(gate.take_nowait)
        answers: list[httpx.Response] = []

        def post() -> None:
            answers.append(
                client.post("/api/v1/events", json=report_body(*INSIDE), headers=headers)
            )

        slow = threading.Thread(target=post)
        try:
            slow.start()
            deadline = time.monotonic() + 10
            while gate.waiting < 1:
                assert time.monotonic() < deadline, "the slow request never reached the gate"
                time.sleep(0.02)
            # One request waiting, for a moment only: the next one is admitted as usual.
            assert not gate.crowded()
            now[0] += 0.06  # it has now waited 60 ms: past the 50 ms target
            started = time.perf_counter()
            shed = client.post("/api/v1/events", json=report_body(*INSIDE), headers=headers)
            elapsed = time.perf_counter() - started
            assert shed.status_code == 503, shed.text
            assert shed.headers["retry-after"] == "1"
            assert shed.json()["type"].endswith("/overloaded")
            assert elapsed < 0.25
            assert door.shed_queue == 1  # type: ignore[attr-defined]
            assert client.get("/healthz").status_code == 200  # never shed
        finally:
            client.portal.call(gate.give_back)
        slow.join(timeout=30)
        assert not slow.is_alive() and answers[0].status_code in (201, 202), answers
        # The queue is empty again: reports are admitted.
        again = client.post("/api/v1/events", json=report_body(*INSIDE), headers=headers)
        assert again.status_code in (201, 202), again.text
        assert door.shed_queue == 1  # type: ignore[attr-defined]


def test_the_gate_hands_tokens_over_in_order_and_survives_cancelled_waiters() -> None:
    """A freed token goes to the oldest waiter; a cancelled waiter neither keeps nor loses one."""
    from api.overload import DatabaseGate

    gate = DatabaseGate(1, max_wait_s=0)
    order: list[str] = []

    async def scenario() -> None:
        assert gate.take_nowait() and not gate.take_nowait()

        async def job(name: str) -> None:
            async with gate:
                order.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(job, "first")
            with anyio.fail_after(5):
                while gate.waiting < 1:
                    await anyio.sleep(0)
            async with anyio.create_task_group() as inner:
                inner.start_soon(job, "cancelled")
                with anyio.fail_after(5):
                    while gate.waiting < 2:
                        await anyio.sleep(0)
                inner.cancel_scope.cancel()
            assert gate.waiting == 1
            tg.start_soon(job, "second")
            with anyio.fail_after(5):
                while gate.waiting < 2:
                    await anyio.sleep(0)
            gate.give_back()
        assert order == ["first", "second"]
        assert gate.borrowed == 0 and gate.take_nowait()  # every token came back
        gate.give_back()

    anyio.run(scenario)
