"""The cluster's lease: which run may change a cluster now, and for how long.

A run may change a cluster only while it holds the cluster's lease (a DynamoDB item written
conditionally, like Patroni's leader key). Holding it at the start is not enough: a run can stall
(a slow AWS call, its retries, a starved Lambda) and resume after its lease expired and another run
took it. So the lease is checked where it matters, at the moment a change is sent to AWS:

- every HTTP attempt of a mutating AWS call (RDS, Route 53, CloudWatch alarms) is sent only while this
  run's lease has at least ``ATTEMPT_SECONDS + CLOCK_SKEW_SECONDS`` left, renewing it first when it has
  less; a lease that cannot be renewed (another run holds it, or it expired) stops the run with
  `LeaseLostError` before the request leaves;
- an attempt reaches AWS within ``ATTEMPT_SECONDS`` (botocore's connect and read timeouts bound it), so
  whatever this run sends lands before another run can take the lease, even with clocks
  ``CLOCK_SKEW_SECONDS`` apart;
- a run renews its lease as it goes (before each step, and each poll of a wait), so a live run keeps it
  and a dead one loses it within ``LEASE_SECONDS``.

Changes that need more than this are made to fail when stale by AWS itself: Route 53 batches that
DELETE the exact record they replace, state writes guarded by a version, deletion protection on a
promoted primary, and a re-read of an instance right before it is deleted.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..adapters.aws import ATTEMPT_SECONDS
from ..adapters.state import StateTable
from ..core.clock import Clock, utc
from ..core.errors import LeaseBusyError, LeaseLostError
from ..core.models import LeaseView

# How long a lease lasts from its last renewal: a crashed run holds a cluster no longer than this.
LEASE_SECONDS = 90
# ... and while a write fence freezes the old primary's writes and the writer has not moved: a run that dies
# then holds the cluster (and the frozen writes) no longer than this before reconcile may lift or finish it.
# It is renewed every 2 s or so meanwhile (the looks are 0.5 s apart).
FROZEN_LEASE_SECONDS = 30
# How far the clocks of two runs (Lambda hosts, an operator's laptop) may disagree. Lambda's clock is
# kept by the Amazon Time Sync Service (well under a second); 5 s leaves room for a laptop's NTP.
CLOCK_SKEW_SECONDS = 5
# A run renews its lease before a step when less than this is left (few writes, and never too late).
RENEW_BELOW_SECONDS = LEASE_SECONDS // 2
# An attempt of a mutating call is sent only with at least this much of the lease left.
SEND_MARGIN_SECONDS = ATTEMPT_SECONDS + CLOCK_SKEW_SECONDS
assert RENEW_BELOW_SECONDS > SEND_MARGIN_SECONDS, "a step must start with more lease than one attempt needs"
assert FROZEN_LEASE_SECONDS > SEND_MARGIN_SECONDS, "a renewed lease must outlast one attempt"


@dataclass
class Lease:
    """One run's hold on one cluster: until when, by this run's clock."""

    cluster: str
    owner: str
    expires_at: datetime
    # How long each renewal extends it (LEASE_SECONDS, or FROZEN_LEASE_SECONDS while writes are frozen).
    seconds: int = LEASE_SECONDS

    def remaining(self, now: datetime) -> float:
        return (self.expires_at - now).total_seconds()


def _whole_seconds(at: datetime) -> int:
    return int(at.timestamp())


def owner_name() -> str:
    """Who is taking a lease, as `status` shows its holder: the Lambda function, or the CLI's user,
    host and process (so that an operator can tell whose command holds a cluster)."""
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if function:
        return f"{function}:{uuid.uuid4().hex[:12]}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli {user}@{socket.gethostname()} pid {os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """The leases this process holds, per thread (reconcile holds one cluster's at a time, and may
    re-enter it while it scales or syncs the cluster)."""

    def __init__(self, table: StateTable, clock: Clock, seconds: int = LEASE_SECONDS) -> None:
        self.table, self.clock, self.seconds = table, clock, seconds
        self._local = threading.local()

    def _held(self) -> dict[str, Lease]:
        held: dict[str, Lease] = self._local.__dict__.setdefault("leases", {})
        return held

    def held(self, cluster: str) -> Lease | None:
        return self._held().get(cluster)

    @contextlib.contextmanager
    def hold(self, cluster: str, wait: float) -> Iterator[Lease]:
        """The cluster's lease for this block, waiting up to `wait` seconds for another run to let go."""
        held = self._held()
        if cluster in held:
            yield held[cluster]
            return
        owner = owner_name()
        give_up = self.clock.now() + timedelta(seconds=wait)
        # From the moment the conditional write is sent, the lease may be ours: an interruption (a signal, a crash
        # of this thread) anywhere after it releases it too, not only one inside the block.
        sent = False
        try:
            while True:
                now = self.clock.now()
                sent = True
                if self.table.acquire_lease(cluster, owner, now, self.seconds):
                    break
                sent = False
                if now >= give_up:
                    view = self.view(cluster)
                    who = f"{view.owner} until {utc(view.until)}" if view else "another run"
                    raise LeaseBusyError(f"cluster {cluster} is being acted on by {who} (rds-ha status {cluster} shows the lease)")
                self.clock.sleep(1.0)
            lease = Lease(cluster, owner, datetime.fromtimestamp(_whole_seconds(now) + self.seconds, UTC), self.seconds)
            held[cluster] = lease
            yield lease
        finally:
            held.pop(cluster, None)
            if sent:
                self._release(cluster, owner)

    def _release(self, cluster: str, owner: str) -> None:
        """Let go of the lease, even when the letting go itself is interrupted (a signal landing in this very call:
        the CLI then says the lease is released, so it must be): once more, then the interruption goes on."""
        try:
            self.table.release_lease(cluster, owner)
        except BaseException:
            with contextlib.suppress(Exception):
                self.table.release_lease(cluster, owner)
            raise

    def view(self, cluster: str) -> LeaseView | None:
        """The cluster's lease as the table holds it (any run's, expired or not)."""
        holder = self.table.lease_holder(cluster)
        return LeaseView(holder[0], datetime.fromtimestamp(holder[1], UTC)) if holder else None

    def break_(self, cluster: str, owner: str) -> bool:
        """Delete the lease if `owner` still holds it (a conditional delete: a lease taken since is left alone)."""
        return self.table.release_lease(cluster, owner)

    def renew(self, cluster: str) -> Lease:
        """Extend this run's lease (a conditional write: still ours and not expired), or LeaseLostError."""
        lease = self.held(cluster)
        if lease is None:
            raise LeaseLostError(f"cluster {cluster}: this run holds no lease on it; nothing is changed")
        now = self.clock.now()
        if lease.remaining(now) <= 0 or not self.table.renew_lease(cluster, lease.owner, now, lease.seconds):
            raise LeaseLostError(
                f"cluster {cluster}: this run's lease expired at {lease.expires_at.isoformat(timespec='seconds')} and may be another run's now; "
                "it stops before changing anything more"
            )
        lease.expires_at = datetime.fromtimestamp(_whole_seconds(now) + lease.seconds, UTC)
        return lease

    def ensure(self, cluster: str, frozen: bool | None = None) -> Lease:
        """Before a step or a poll: the lease, renewed when less than RENEW_BELOW_SECONDS is left. `frozen`
        (a look that knows): writes are frozen now, and the lease lasts FROZEN_LEASE_SECONDS from each renewal
        (renewed at once, so a run that dies from here on holds the frozen writes no longer), or no more."""
        lease = self.held(cluster)
        if lease is not None and frozen is not None:
            lease.seconds = FROZEN_LEASE_SECONDS if frozen else self.seconds
        if lease is not None:
            left = lease.remaining(self.clock.now())
            # Enough left (a short lease: renewed in the last 2 s), and no more than one renewal gives (a long one shortened).
            if min(RENEW_BELOW_SECONDS, lease.seconds - 2) <= left <= lease.seconds + 1:
                return lease
        return self.renew(cluster)

    def before_send(self, service: str, operation: str) -> None:
        """Before each HTTP attempt of a mutating AWS call made by this thread: its lease must outlast
        the attempt (renewed if short), or the attempt is not sent. A thread holding no lease (apply,
        the CLI's setup) is not a run acting on a cluster and is let through."""
        held = self._held()
        if not held:
            return
        lease = list(held.values())[-1]
        if lease.remaining(self.clock.now()) < SEND_MARGIN_SECONDS:
            try:
                self.renew(lease.cluster)
            except LeaseLostError as exc:
                raise LeaseLostError(f"{exc} ({service} {operation} not sent)") from exc
