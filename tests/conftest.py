"""Shared fixtures: a moto account with the state table built from template.yaml's own schema."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# Credentials and region before anything creates a boto3 session; moto before boto3 clients.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",  # noqa: S105 - moto's fake credentials
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    RDS_HA_TABLE="rds-ha-test",
    POWERTOOLS_METRICS_NAMESPACE="rds-ha",
    POWERTOOLS_DEV="false",
    COLUMNS="250",  # CLI output is asserted on content; keep Rich from wrapping it
)
os.environ.pop("AWS_ENDPOINT_URL", None)

import moto  # noqa: E402,F401
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from rds_ha.adapters.aws import AwsClients  # noqa: E402
from rds_ha.app import App, Settings  # noqa: E402
from rds_ha.handlers import failover as failover_handler  # noqa: E402
from rds_ha.handlers import runtime  # noqa: E402
from rds_ha.local import moto_fidelity  # noqa: E402
from rds_ha.local.clock import SimClock  # noqa: E402

from . import contract  # noqa: E402
from .authz import Recorder, problems  # noqa: E402
from .builders import Sandbox, create_table_from_template  # noqa: E402

RECORDER = Recorder()
CONTRACT = contract.ContractRecorder()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability", action="store_true", help="run the long reliability proofs (make reliability)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--reliability"):
        return
    kept = [i for i in items if i.get_closest_marker("reliability") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        folder = Path(tempfile.mkdtemp(prefix="rds-ha-iam-calls-"))
        os.environ["RDS_HA_IAM_CALLS_DIR"] = str(folder)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    folder = Path(os.environ["RDS_HA_IAM_CALLS_DIR"])
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    RECORDER.dump(folder / f"calls-{worker}.json")
    CONTRACT.dump(folder / f"contract-{worker}.json")
    if hasattr(session.config, "workerinput"):
        return
    opts = session.config.option
    # "Granted but never called" is only meaningful when the whole suite ran and passed.
    narrowed = opts.keyword or opts.markexpr or getattr(opts, "deselect", None) or getattr(opts, "lf", False)
    narrowed = narrowed or session.config.args != session.config.getini("testpaths")
    whole = exitstatus == 0 and not narrowed
    writer = session.config.get_terminal_writer()
    found = problems(folder, check_unused=whole)
    if found:
        writer.line("\nleast-privilege check FAILED:\n  " + "\n  ".join(found), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    sent = contract.merge(folder)
    if whole:  # what `make contract` prints
        contract.SENT.parent.mkdir(exist_ok=True)
        contract.SENT.write_text(json.dumps(sent))
    unread = contract.problems(sent, contract.load_ledger(), whole=whole)
    if unread:
        writer.line(f"\nAWS contract check FAILED ({contract.LEDGER.relative_to(contract.ROOT)}):\n  " + "\n  ".join(unread), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def aws(clock: SimClock, monkeypatch: pytest.MonkeyPatch):
    """A fresh moto account with RDS fidelity patches and the state table."""
    import boto3

    made = boto3.session.Session.__init__

    def session_with_dns_answers(self: boto3.session.Session, *args: object, **kwargs: object) -> None:
        made(self, *args, **kwargs)  # type: ignore[arg-type]
        moto_fidelity.answer_test_dns(self)  # every session the code under test makes (the CLI's too)
        CONTRACT.register(self)  # every parameter rds-ha sends, whoever made the session

    monkeypatch.setattr(boto3.session.Session, "__init__", session_with_dns_answers)
    with mock_aws():
        fidelity = moto_fidelity.install(moto_fidelity.Fidelity(clock=clock))
        clients = AwsClients()
        RECORDER.register(clients.session)  # before any client exists: clients copy the session's hooks
        create_table_from_template(clients, os.environ["RDS_HA_TABLE"])
        svc = App(clients, Settings.from_env(), clock=clock)
        runtime.use(svc)
        failover_handler.reset()
        yield Sandbox(clients=clients, service=svc, clock=clock, fidelity=fidelity)
        runtime.reset()
        failover_handler.reset()
