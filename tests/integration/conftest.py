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


@pytest.fixture
def cli_on_sim_clock(aws: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The CLI acting through the test's service: its clock is simulated, so --wait takes no time."""
    from rds_ha.cli import main as cli

    monkeypatch.setattr(cli, "service_factory", lambda settings: aws.service)
    return aws
