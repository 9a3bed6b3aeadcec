"""Benchmark: rds-ha's own overhead in a failover, on moto (in-process), and the handler's cold import.

What it measures (AWS's own durations, promotion minutes and DNS propagation, are not rds-ha's and
are not measured here):
  - alarm delivered -> PromoteReadReplica sent: the decision path (config, lease, idempotency,
    topology read, lag query, plan, fence, reader change);
  - alarm delivered -> writer record changed, with promotion made instant by the fidelity layer;
  - AWS API calls per failover, by operation;
  - cold import of the failover handler module in a fresh interpreter.

Run: .venv/bin/python bench/failover_latency.py [runs] [other instances in the account]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-east-1",  # noqa: S105
    RDS_HA_TABLE="rds-ha-bench",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="ERROR",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from rds_ha.adapters.aws import AwsClients  # noqa: E402
from rds_ha.app import App, Settings  # noqa: E402
from rds_ha.core.config import parse_config  # noqa: E402
from rds_ha.handlers import failover, runtime  # noqa: E402
from rds_ha.local import moto_fidelity, samples, sandbox  # noqa: E402
from rds_ha.local.clock import SimClock  # noqa: E402
from rds_ha.local.context import LocalContext  # noqa: E402
from tests.builders import CONFIG, create_table_from_template  # noqa: E402


def one_run(noise: int = 0) -> tuple[float, float, Counter[str]]:
    with mock_aws():
        clock = SimClock()
        moto_fidelity.install(moto_fidelity.Fidelity(clock=clock))
        clients = AwsClients()
        moto_fidelity.answer_test_dns(clients.session)  # the writer move is verified with TestDNSAnswer
        create_table_from_template(clients, "rds-ha-bench")
        svc = App(clients, Settings.from_env(), clock=clock)
        runtime.use(svc)
        failover.reset()
        zone = sandbox.create_cluster(clients, clock.now(), {"orders-db-r1": ("us-east-1b", 12.0), "orders-db-r2": ("us-east-1c", 2.0)}, alarm_state="ALARM")
        for n in range(noise):  # other databases in the same account and region
            clients.client("rds", "us-east-1").create_db_instance(
                DBInstanceIdentifier=f"other-{n}",
                Engine="mysql",
                DBInstanceClass="db.t3.micro",
                AllocatedStorage=20,
                MasterUsername="u",
                MasterUserPassword="bench-only-1",  # noqa: S106
            )
        text = CONFIG.format(min=2, zone=zone, max_lag=30, cooldown=600, extra_failover="", alarms="orders-primary-down", extra="")
        svc.apply(parse_config(text).clusters, "bench", "bench")
        calls: Counter[str] = Counter()
        marks: dict[str, float] = {}

        def seen(event_name: str, **_: Any) -> None:
            op = event_name.split(".")[-1]
            calls[op] += 1
            if op == "PromoteReadReplica" and "promote" not in marks:
                marks["promote"] = time.perf_counter()
                calls["(before promote)"] = sum(v for k, v in calls.items() if not k.startswith("(")) - 1
            if op == "ChangeResourceRecordSets" and "promote" in marks:
                marks.setdefault("writer", time.perf_counter())

        for service, region in (("rds", "us-east-1"), ("route53", "us-east-1"), ("cloudwatch", "us-east-1"), ("dynamodb", None), ("sns", "us-east-1")):
            clients.client(service, region).meta.events.register("before-call", seen)
        event = samples.alarm_event("eventbridge", clock.now())
        start = time.perf_counter()
        result = failover.handler(event, LocalContext(function_name="FailoverFunction"))
        assert result["outcome"] == "complete", result
        runtime.reset()
        failover.reset()
        return marks["promote"] - start, marks["writer"] - start, calls


def cold_import() -> float:
    code = "import time; t=time.perf_counter(); import rds_ha.handlers.failover; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)  # noqa: S603
    return float(out.stdout.strip())


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    noise = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    one_run()  # warm-up: moto's own first-use costs
    promote, writer, calls = [], [], Counter[str]()
    for _ in range(runs):
        p, w, c = one_run(noise)
        promote.append(p * 1000)
        writer.append(w * 1000)
        calls = c
    imports = [cold_import() * 1000 for _ in range(5)]
    print(f"runs: {runs} (moto {__import__('moto').__version__}, in-process), {noise} other instances in the account")
    print(f"alarm -> PromoteReadReplica sent:  median {statistics.median(promote):.0f} ms, p90 {statistics.quantiles(promote, n=10)[-1]:.0f} ms")
    print(f"alarm -> writer record changed:    median {statistics.median(writer):.0f} ms, p90 {statistics.quantiles(writer, n=10)[-1]:.0f} ms")
    before = calls.pop("(before promote)")
    print(f"AWS calls per failover: {sum(calls.values())} ({', '.join(f'{k} {v}' for k, v in sorted(calls.items()))})")
    print(f"AWS calls made before PromoteReadReplica: {before}")
    print(f"cold import of the failover handler: median {statistics.median(imports):.0f} ms over 5 fresh interpreters")


if __name__ == "__main__":
    main()
