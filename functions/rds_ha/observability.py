"""One module-level Powertools Logger for the package, and EMF metrics with the cluster as dimension."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = "rds-ha"
logger = Logger(service="rds-ha")


def emit(name: str, cluster: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """One EMF record with the cluster as dimension (reconcile handles several clusters per run).

    Flushed at once, so a crash later in the run does not lose it; POWERTOOLS_METRICS_DISABLED
    silences it outside Lambda.
    """
    metric = EphemeralMetrics(namespace=NAMESPACE, service="rds-ha")
    metric.add_dimension(name="cluster", value=cluster)
    metric.add_metric(name=name, unit=unit, value=value)
    metric.flush_metrics()
