"""The cluster's RDS Proxy (cluster.proxy): its target group names the primary and nothing else.

A target group holds exactly one RDS instance (AWS::RDS::DBProxyTargetGroup), so a move deregisters
every other target before it registers the primary. Everything is derived from DescribeDBProxyTargets
as read for this decision: a crash between the two calls leaves an empty group, which the next plan fills.
"""

from __future__ import annotations

from ..actions import Action, MoveProxy
from ..models import PROXY_REGISTRABLE, WRITABLE, Instance, Topology


def proxy_move(topo: Topology, primary: Instance, register: bool, why: str) -> list[Action]:
    """The MoveProxy that leaves `primary` alone in the target group: every other target deregistered, and
    `primary` registered when `register` (it accepts writes, in the proxy's region). [] when nothing is
    to be done, there is no proxy, or its targets could not be read (nothing is moved blind)."""
    cfg, view = topo.cluster.proxy, topo.proxy
    if cfg is None or view is None or view.error is not None:
        return []
    stale = tuple(t.instance for t in view.targets if t.instance != primary.id)
    # (A writable primary RDS Proxy does not take yet, configuring its monitoring or log exports, is waited for.)
    takes = primary.status in WRITABLE and primary.status in PROXY_REGISTRABLE
    add = register and primary.region == topo.cluster.region and takes and view.target(primary.id) is None
    if not stale and not add:
        return []
    return [
        MoveProxy(reason=why, proxy=cfg.name, target_group=cfg.target_group, region=topo.cluster.region, deregister=stale, instance=primary.id if add else None)
    ]


def proxy_waiting(topo: Topology, primary: Instance) -> str | None:
    """Why the proxy does not serve `primary` yet (None: it does, or there is no proxy to wait for). A
    primary outside the proxy's region is never waited for: a proxy cannot reach another region."""
    cfg, view = topo.cluster.proxy, topo.proxy
    if cfg is None or view is None or primary.region != topo.cluster.region:
        return None
    if view.error is not None:
        return f"proxy {cfg.name}'s targets not read ({view.error})"
    target = view.target(primary.id)
    if target is None:
        return f"proxy {cfg.name} ({cfg.target_group}) does not target {primary.id} yet"
    if target.state != "AVAILABLE":
        return f"proxy {cfg.name}'s target {primary.id} is {target.health}"
    return None


def proxy_limitation(topo: Topology) -> str | None:
    """Why the proxy does not serve the recorded primary now (`rds-ha check`, status): its targets unread,
    another instance registered, or the primary's target not AVAILABLE. None: it serves the primary."""
    cfg, view, primary = topo.cluster.proxy, topo.proxy, topo.primary
    if cfg is None or view is None or primary is None:
        return None
    if primary.region != topo.cluster.region:
        return f"proxy {cfg.name} is in {topo.cluster.region} and the primary {primary.id} in {primary.region}: the proxy cannot follow it"
    others = [t.instance for t in view.targets if t.instance != primary.id]
    if view.error is None and others:
        return f"proxy {cfg.name} ({cfg.target_group}) targets {', '.join(others)}, not the primary {primary.id}"
    return proxy_waiting(topo, primary)
