"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rds_ha.local.lab import PgLab

from ..builders import Sandbox
from ..servers import have_postgres
from .test_probe import _require


@pytest.fixture
def lab(aws: Sandbox) -> Iterator[PgLab]:
    """The local lab behind the sandbox's moto: real servers for its instances, stopped and removed after."""
    _require(have_postgres(), "PostgreSQL")
    lab = PgLab().install(aws.fidelity)
    try:
        yield lab
    finally:
        aws.fidelity.backing = None
        lab.close()
