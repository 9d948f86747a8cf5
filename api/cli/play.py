"""``gridmap simulate --play``: the people of the closed loop, played through the HTTP API.

Watches the change feed as a dispatcher, and moves each new event along as its proper
account would: the assigned worker claims within minutes (a few return it), handles it
(sometimes with a photo; a few ask for a postponement), the dispatcher verifies (some fail
and go to rework), closes and rates some, approves or denies postponements, re-dispatches
returned reports and registers or voids quarantined ones. Delays are drawn in simulated
time, which runs ``speed`` times faster than the wall clock: at the default 600, one real
minute is ten simulated hours, so a few minutes of ``make demo`` show a week of work.
Every step is an ordinary API call; a 409 (someone else acted first) is simply dropped.
"""

from __future__ import annotations

import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

#: Simulated delays before each next step, in minutes (low, high), by the status seen.
DELAYS_MIN: dict[str, tuple[float, float]] = {
    "dispatched": (2, 20),
    "claimed": (10, 120),
    "postponed": (60, 180),
    "rework": (30, 90),
    "handled": (5, 60),
    "verified": (1, 10),
    "closed": (60, 24 * 60),
    "returned": (5, 30),
    "registered": (5, 30),
    "reported": (5, 30),
    "requested": (10, 60),  # a pending postponement request, for the dispatcher
}
RETURN_SHARE = 0.05
POSTPONE_SHARE = 0.05
PHOTO_SHARE = 0.4
FAIL_SHARE = 0.12
RATE_SHARE = 0.3
APPROVE_SHARE = 0.7


def _tiny_png(rng: np.random.Generator) -> bytes:
    """A valid 2×2 PNG with a random colour (Pillow is not needed to make one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    colour = bytes(int(c) for c in rng.integers(0, 256, size=3))
    raw = b"".join(b"\x00" + colour * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass
class _Tracked:
    status: str
    worker_no: str | None
    due: float  # simulated seconds since the start
    requested: bool = False
    grid: str | None = None


class Player:
    """Plays dispatchers and workers against one server."""

    def __init__(
        self,
        base: str,
        dispatcher_token: str,
        worker_tokens: dict[str, str],
        *,
        speed: float = 600.0,
        seed: int = 11,
        client: httpx.Client | None = None,
    ) -> None:
        self.client = client or httpx.Client(base_url=base, timeout=10.0)
        self.dispatcher = {"Authorization": f"Bearer {dispatcher_token}"}
        self.workers = {no: {"Authorization": f"Bearer {t}"} for no, t in worker_tokens.items()}
        self.speed = speed
        self.rng = np.random.default_rng(seed)
        self.started = time.monotonic()
        self.tracked: dict[int, _Tracked] = {}
        self.tally: dict[str, int] = {}
        self.photos_supported = True

    def sim_now(self) -> float:
        """Simulated seconds since the start."""
        return (time.monotonic() - self.started) * self.speed

    def _delay(self, status: str) -> float:
        low, high = DELAYS_MIN.get(status, (5, 30))
        return float(self.rng.uniform(low, high)) * 60

    def _act(self, event_id: int, headers: dict[str, str], action: str, **fields: Any) -> Any:
        resp = self.client.post(
            f"/api/v1/events/{event_id}/actions", json={"action": action, **fields}, headers=headers
        )
        key = f"{action} {resp.status_code}"
        self.tally[key] = self.tally.get(key, 0) + 1
        return resp.json() if resp.status_code == 200 else None

    def _photo(self, headers: dict[str, str]) -> list[str]:
        if not self.photos_supported or self.rng.random() > PHOTO_SHARE:
            return []
        files = {"file": ("site.png", _tiny_png(self.rng), "image/png")}
        try:
            resp = self.client.post("/api/v1/photos", files=files, headers=headers)
        except httpx.TransportError:
            return []
        if resp.status_code == 404:
            self.photos_supported = False  # a server without photo uploads
            return []
        if resp.status_code not in (200, 201):
            return []
        sha = resp.json().get("sha256")
        return [sha] if isinstance(sha, str) else []

    def watch(self, since: str) -> str:
        """Read the feed from ``since``; track every event that changed."""
        for _ in range(100):
            resp = self.client.get(
                "/api/v1/events/changes",
                params={"since": since, "limit": 1000},
                headers=self.dispatcher,
            )
            resp.raise_for_status()
            body = resp.json()
            for f in body["features"]:
                p = f["properties"]
                seen = self.tracked.get(f["id"])
                if seen is None or seen.status != p["status"]:
                    self.tracked[f["id"]] = _Tracked(
                        p["status"],
                        p.get("worker"),
                        self.sim_now() + self._delay(p["status"]),
                        grid=p.get("grid"),
                    )
            since = str(body["cursor"])
            if not body.get("more"):
                break
        return since

    def step(self) -> None:
        """Take every step whose simulated time has come."""
        now = self.sim_now()
        for event_id, t in list(self.tracked.items()):
            if t.due > now:
                continue
            answer = self._next(event_id, t)
            if answer is None:
                self.tracked.pop(event_id, None)
                continue
            status = "requested" if t.requested else answer["status"]
            self.tracked[event_id] = _Tracked(
                answer["status"],
                answer.get("worker_no"),
                now + self._delay(status),
                t.requested,
                answer.get("grid_code", t.grid),
            )

    def _next(self, event_id: int, t: _Tracked) -> Any:
        r = float(self.rng.random())
        worker = self.workers.get(t.worker_no or "")
        d = self.dispatcher
        if t.status == "dispatched" and worker:
            if r < RETURN_SHARE:
                return self._act(event_id, worker, "return", note="not our remit")
            return self._act(event_id, worker, "claim")
        if t.status == "claimed" and t.requested:
            t.requested = False
            decision = "approve_postponement" if r < APPROVE_SHARE else "deny_postponement"
            return self._act(event_id, d, decision)
        if t.status == "claimed" and worker:
            if r < POSTPONE_SHARE:
                until = datetime.now(UTC) + timedelta(days=2)
                answer = self._act(
                    event_id,
                    worker,
                    "request_postponement",
                    until=until.isoformat(),
                    note="waiting for parts",
                )
                t.requested = answer is not None
                return answer
            return self._handle(event_id, worker)
        if t.status in ("postponed", "rework") and worker:
            return self._handle(event_id, worker)
        if t.status == "handled":
            passed = r >= FAIL_SHARE
            note = None if passed else "still there on re-check"
            return self._act(
                event_id, d, "verify", passed=passed, **({"note": note} if note else {})
            )
        if t.status == "verified":
            return self._act(event_id, d, "close")
        if t.status == "closed" and r < RATE_SHARE:
            return self._act(event_id, d, "evaluate", rating=int(self.rng.integers(3, 6)))
        if t.status in ("returned", "registered"):
            if t.grid is None:  # outside every grid: nobody to dispatch to
                return self._act(event_id, d, "void", reason="out_of_scope")
            return self._act(event_id, d, "dispatch") or self._act(
                event_id, d, "void", reason="out_of_scope"
            )
        if t.status == "reported":
            return self._register_or_void(event_id)
        return None

    def _handle(self, event_id: int, worker: dict[str, str]) -> Any:
        photos = self._photo(worker)
        return self._act(event_id, worker, "handle", result="handled on site", photos=photos)

    def _register_or_void(self, event_id: int) -> Any:
        event = self.client.get(f"/api/v1/events/{event_id}", headers=self.dispatcher).json()
        if event.get("quarantine_reason") == "coordinates_swapped":
            lon, lat = event["reported_lat"], event["reported_lon"]
            return self._act(
                event_id, self.dispatcher, "register", location={"lon": lon, "lat": lat}
            )
        return self._act(event_id, self.dispatcher, "void", reason="invalid")

    def run(self, stop: threading.Event, *, quiet: bool = True) -> None:
        """Play until ``stop`` is set; new events only (the history is left as it is)."""
        cursor = self.watch("0")
        self.tracked.clear()
        last_report = time.monotonic()
        while not stop.is_set():
            try:
                cursor = self.watch(cursor)
                self.step()
            except (httpx.HTTPError, ValueError) as exc:
                if not quiet:  # quiet (the demo): the server going away at Ctrl-C is no news
                    print(f"simulate --play: {type(exc).__name__}; retrying", file=sys.stderr)
            if not quiet and time.monotonic() - last_report > 30:
                print(f"simulate --play: {dict(sorted(self.tally.items()))}", file=sys.stderr)
                last_report = time.monotonic()
            stop.wait(1.0)
