"""A seeded cooperative scheduler: operations run in threads, but only one at a time, switched at every
AWS call, in an order drawn from the seed. At each switch it may let simulated time pass (a slow call:
leases expire), make the call fail (AWS past its retries), stop the operation there for good (its process
dies: no `finally` runs, its lease stays until it expires) or interrupt it (SIGTERM: it unwinds, releasing
what it holds). After every step, with every thread parked, the world moves on (`tick`) and the invariants
are checked on moto's own state.

The same seed gives the same schedule: a violation is reproduced by its seed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from rds_ha.local.clock import SimClock

# Real seconds a step may take before the scheduler calls it a deadlock.
STEP_TIMEOUT = 30.0


class DeadlockError(AssertionError):
    """Some operation neither reached its next AWS call nor finished."""


@dataclass
class Worker:
    name: str
    run: Callable[[], Any]
    thread: threading.Thread | None = None
    go: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    waiting: bool = False
    done: bool = False
    fault: bool = False
    # Its process died at a call: never scheduled again, its thread parked for good.
    dead: bool = False
    terminate: bool = False
    # SIGTERM was delivered once (a process gets one; its handler then unwinds it).
    signalled: bool = False
    outcome: Any = None
    error: BaseException | None = None
    calls: int = 0


@dataclass
class Stats:
    steps: int = 0
    delays: int = 0
    delayed_seconds: float = 0.0
    faults: int = 0
    deaths: int = 0
    signals: int = 0


_MUTATING = ("Create", "Delete", "Modify", "Promote", "Put", "Change", "Add", "Remove", "Register", "Deregister", "Stop", "Update", "Copy")


def _mutating(operation: str) -> bool:
    return operation.startswith(_MUTATING)


class Terminated(BaseException):  # noqa: N818 - a signal, as the CLI's Interrupted is
    """SIGTERM delivered at an AWS call: the operation unwinds (its `finally` blocks run), as the CLI's does."""


class Scheduler:
    def __init__(
        self,
        seed: int,
        clock: SimClock,
        delay_p: float = 0.12,
        fault_p: float = 0.04,
        max_delay: float = 150.0,
        die_p: float = 0.0,
        term_p: float = 0.0,
        landed_p: float = 0.0,
        tick: Callable[[random.Random], None] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.delay_p, self.fault_p, self.max_delay = delay_p, fault_p, max_delay
        # die_p, term_p: at a call, before it is sent; landed_p: right after a mutating call landed (AWS took it,
        # the run never learns), each ending in a death or a SIGTERM alike.
        self.die_p, self.term_p, self.landed_p, self.tick = die_p, term_p, landed_p, tick
        self.workers: dict[int, Worker] = {}
        self.cond = threading.Condition()
        self.stats = Stats()

    # -- called in the workers' threads, before each AWS call ------------------------------------------------
    def before_call(self, model: Any = None, **_: Any) -> None:
        me = self.workers.get(threading.get_ident())
        if me is None:  # the checking thread, or a thread the scheduler does not run
            return
        with self.cond:
            me.waiting = True
            self.cond.notify_all()
        me.go.acquire()
        me.calls += 1
        if me.terminate:
            me.terminate = False
            raise Terminated("SIGTERM")
        if me.fault:
            me.fault = False
            name = model.name if model is not None else "call"
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected by the interleaving test"}}, name)

    def after_call(self, model: Any = None, http_response: Any = None, **_: Any) -> None:
        """Right after a mutating call AWS took: the process may die there, or be signalled, before it records it."""
        me = self.workers.get(threading.get_ident())
        if me is None or model is None or not _mutating(model.name) or http_response is None or http_response.status_code >= 300:
            return
        roll = self.rng.random()
        if roll < self.landed_p / 2:
            self.stats.deaths += 1
            with self.cond:
                me.dead = me.done = True
                self.cond.notify_all()
            threading.Event().wait()  # parked for good: no `finally` of this run ever runs
        if roll < self.landed_p and not me.signalled:
            me.signalled = True
            self.stats.signals += 1
            raise Terminated(f"SIGTERM right after {model.name}")

    def attach(self, clients: Any) -> None:
        """Park before every call of every client made so far (the test makes them all before it starts)."""
        for client in list(clients._clients.values()):
            client.meta.events.register("before-call", self.before_call)
            client.meta.events.register("after-call", self.after_call)

    # -- the schedule ------------------------------------------------------------------------------------
    def run(self, workers: list[Worker], check: Callable[[], None]) -> None:
        for w in workers:

            def body(w: Worker = w) -> None:
                try:
                    w.go.acquire()  # starts when first scheduled
                    w.outcome = w.run()
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    w.error = exc
                finally:
                    with self.cond:
                        w.done = True
                        self.cond.notify_all()

            w.thread = threading.Thread(target=body, name=w.name, daemon=True)
            w.thread.start()
            assert w.thread.ident is not None
            self.workers[w.thread.ident] = w
            w.waiting = True
        chosen: Worker | None = None
        burst = 0
        while True:
            with self.cond:
                if not self.cond.wait_for(lambda: all(w.done or w.waiting for w in workers), timeout=STEP_TIMEOUT):
                    stuck = [w.name for w in workers if not (w.done or w.waiting)]
                    raise DeadlockError(f"no progress within {STEP_TIMEOUT}s: {', '.join(stuck)}")
                ready = [w for w in workers if w.waiting and not w.done]
            if self.tick is not None:
                self.tick(self.rng)
            check()
            if not ready:
                return
            # Runs of one operation while the others stay parked: a parked run is a frozen or slow Lambda.
            if chosen is None or chosen not in ready or burst <= 0:
                chosen = self.rng.choice(ready)
                burst = self.rng.choice((1, 1, 2, 5, 30))
            burst -= 1
            if chosen.calls and self.rng.random() < self.die_p:
                # Its process dies at this call: it is never resumed (no `finally`, no release).
                with self.cond:
                    chosen.dead = chosen.done = True
                self.stats.deaths += 1
                chosen = None
                continue
            if chosen.calls and not chosen.signalled and self.rng.random() < self.term_p:
                chosen.terminate = chosen.signalled = True
                self.stats.signals += 1
            if self.rng.random() < self.delay_p:
                seconds = self.rng.uniform(5, self.max_delay)
                self.clock.advance(seconds)
                self.stats.delays += 1
                self.stats.delayed_seconds += seconds
            if chosen.calls and self.rng.random() < self.fault_p:
                chosen.fault = True
                self.stats.faults += 1
            self.stats.steps += 1
            with self.cond:
                chosen.waiting = False
            chosen.go.release()
