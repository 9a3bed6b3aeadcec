"""Benchmark: cold start of each Lambda handler module, in fresh interpreters, as a ratio against
`import boto3; boto3.client("rds")` measured in the same run (interleaved, so load affects both alike).

Run: .venv/bin/python bench/cold_start.py [runs]   (default 10)
"""

from __future__ import annotations

import statistics
import subprocess  # nosec B404 - runs this interpreter on fixed code
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = 'import boto3; boto3.client("rds", region_name="us-east-1")'
HANDLERS = ["failover", "reconcile", "scaling", "multi_az", "dns_sync", "health_probe"]
# The probe loads its drivers on its first sample: its real start includes them.
EXTRA = {"health_probe + drivers": "import rds_ha.handlers.health_probe, rds_ha.app.probe, psycopg, pymysql"}


def timed(code: str) -> float:
    """Wall ms of `code` in a fresh interpreter (the interpreter's own start excluded)."""
    probe = f"import time; t=time.perf_counter(); {code}; print((time.perf_counter()-t)*1000)"
    env = {"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "rds-ha", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, env=env)  # noqa: S603
    return float(out.stdout.strip())


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    samples: dict[str, list[float]] = {"baseline": [], **{h: [] for h in HANDLERS}, **{k: [] for k in EXTRA}}
    for _ in range(runs):
        samples["baseline"].append(timed(BASELINE))
        for handler in HANDLERS:
            samples[handler].append(timed(f"import rds_ha.handlers.{handler}"))
        for name, code in EXTRA.items():
            samples[name].append(timed(code))
    base = statistics.median(samples["baseline"])
    print(f"median of {runs} fresh interpreters each; baseline = {BASELINE}")
    print("| module | median ms | ratio to baseline |")
    print("| --- | --- | --- |")
    print(f"| baseline (boto3 + rds client) | {base:.0f} | 1.00 |")
    for handler in HANDLERS:
        median = statistics.median(samples[handler])
        print(f"| rds_ha.handlers.{handler} | {median:.0f} | {median / base:.2f} |")
    for name in EXTRA:
        median = statistics.median(samples[name])
        print(f"| rds_ha.handlers.{name} | {median:.0f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
