"""One module-level Powertools Logger for the package, and EMF metrics with the cluster as dimension."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "rds-ha"
logger = Logger(service="rds-ha")


def emit(name: str, cluster: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """One EMF metric with the cluster as its dimension (reconcile handles several clusters per run)."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="cluster", value=cluster)
