"""The SQL side of each cluster's write fence (switchover.fence), built on first use: the database drivers
load only when a fenced switchover runs."""

from __future__ import annotations

from typing import Any

from ..adapters.aws import AwsClients
from ..adapters.credentials import CredentialSource
from ..core.config import ClusterConfig
from ..core.models import Instance
from ..core.ports import FencePort
from ..probe.model import Credentials, EngineError


class Unreachable:
    """The fence's SQL where this process does not reach the databases (a Lambda): every look says so."""

    def _refuse(self, instance: Instance) -> Any:
        raise EngineError("config", f"this process does not reach the databases (RDS_HA_FENCE_SQL=0): {instance.id} not asked")

    frozen = seal = replayed = overrides = unblock = _refuse


class Fences:
    def __init__(self, clients: AwsClients, reach: bool = True) -> None:
        self._credentials = CredentialSource(clients)
        self._built: dict[str, FencePort] = {}
        self.reach = reach

    def of(self, cfg: ClusterConfig) -> FencePort | None:
        fence = cfg.switchover.fence
        if fence is None:
            return None
        if not self.reach:
            return Unreachable()
        key = fence.model_dump_json()
        if key not in self._built:
            from ..probe.fence import SqlFence

            connection = fence.connection()

            def credentials(instance: Instance) -> Credentials:
                return self._credentials.get(connection, instance.region, instance.endpoint or "", instance.port or 0)

            self._built[key] = SqlFence(fence, credentials)
        return self._built[key]
