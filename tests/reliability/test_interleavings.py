"""Many seeds of the randomized interleavings (tests/integration/test_interleavings.py): make reliability.

RDS_HA_SEEDS sets how many; each prints its operations, steps, delays, faults, deaths, signals, failed promotions
and violations.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from ..builders import Sandbox
from ..integration.test_interleavings import FAST_SEEDS, run_seed

LONG_SEEDS = int(os.environ.get("RDS_HA_SEEDS", "200"))
pytestmark = pytest.mark.reliability
TOTALS: dict[str, int] = {"seeds": 0, "operations": 0, "steps": 0, "delays": 0, "faults": 0, "deaths": 0, "signals": 0, "failed_promotions": 0, "violations": 0}


@pytest.mark.parametrize("seed", range(FAST_SEEDS, FAST_SEEDS + LONG_SEEDS))
def test_many_random_interleavings_keep_one_primary(aws: Sandbox, seed: int, capsys: Any) -> None:
    report = run_seed(aws, seed)
    for key in ("steps", "delays", "faults", "deaths", "signals", "failed_promotions"):
        TOTALS[key] += report[key]
    TOTALS["seeds"] += 1
    TOTALS["operations"] += len(report["operations"])
    TOTALS["violations"] += len(report["violations"])
    with capsys.disabled():
        print(f"\ninterleavings seed {seed}: {json.dumps({k: v for k, v in report.items() if k != 'seed'})}")
        if TOTALS["seeds"] == LONG_SEEDS:
            print(f"\ninterleavings: {json.dumps(TOTALS)}")
    assert report["violations"] == [], report
