"""`rds-ha lab up|fail|down` (issue 19): a newcomer's local AWS, kept between commands, where a failover
completes. Real processes: the lab's server in the background, each rds-ha command a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rds_ha.local.procs import alive

RDS_HA = str(Path(sys.executable).parent / "rds-ha")


def rds_ha(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RDS_HA_"))}
    return subprocess.run([RDS_HA, *args], env=clean | (env or {}), capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603


def lab_env(folder: Path) -> dict[str, str]:
    lines = (folder / "env").read_text().splitlines()
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


def status(env: dict[str, str]) -> dict[str, Any]:
    done = rds_ha("status", "orders", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_lab_up_then_a_failed_primary_is_failed_over_by_the_lab_then_down(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    up = rds_ha("lab", "up", "--dir", str(folder), "--promote-seconds", "2", "--replica-seconds", "3", "--tick", "2")
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert f"source {folder / 'env'}" in up.stdout
        env = lab_env(folder)
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        before = status(env)
        assert before["primary"] == "orders-db" and before["verdict"].startswith("healthy: ")
        again = rds_ha("lab", "up", "--dir", str(folder))
        assert again.returncode == 2 and "already running" in again.stderr

        assert rds_ha("lab", "fail", "orders-db", "--dir", str(folder)).returncode == 0
        deadline, now = time.monotonic() + 90, status(env)
        while (now["primary"] == "orders-db" or now["workflow"] is not None) and time.monotonic() < deadline:
            time.sleep(1)
            now = status(env)
        assert now["primary"] in {"orders-db-r1", "orders-db-r2"} and now["workflow"] is None, now
        assert [f["id"] for f in now["fenced"]] == ["orders-db"]
        assert now["writer"]["targets"] and now["writer"]["targets"][0].startswith(now["primary"] + ".")
        history = rds_ha("history", "orders", "--json", env=env)
        assert "failover_completed" in [h["kind"] for h in json.loads(history.stdout)]
        assert "EventBridge -> FailoverFunction" in (folder / "lab.log").read_text()
    finally:
        down = rds_ha("lab", "down", "--dir", str(folder))
    assert down.returncode == 0 and "lab down" in down.stdout
    assert not alive(json.loads((folder / "lab.json").read_text())["pid"])
    assert (folder / "orders.yaml").exists() and (folder / "lab.log").exists()  # kept for the newcomer
    assert "no lab is running" in rds_ha("lab", "down", "--dir", str(folder)).stdout
