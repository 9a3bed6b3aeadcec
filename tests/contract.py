"""The AWS contract ledger: every (operation, parameter) rds-ha sends to AWS in the suite, and every instance
status an RDS operation is called in, read against AWS's own words before it is relied on.

Each pair has an entry in `tests/contract_ledger.yaml`: the constraint that applies, quoted from the API reference
(botocore's service model carries it offline: `botocore/data/<service>/<version>/service-2.json`, each member's
`documentation`) or from a user guide with its address; and the fidelity rule or test that enforces it, or why no
rule applies. An entry stores a hash of botocore's text for its member: when AWS changes that text (a new botocore),
the entry is read again. The check (at the end of every whole run of the suite, beside the authorization check)
fails on a pair with no entry and on an entry whose text changed; `make contract` prints the table.

A call counts when rds-ha's code made it (a frame of the `rds_ha` package outside `rds_ha.local`, whose sandbox
and lab stand in for what a user or AWS does), not the tests' own arrangement of moto.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import botocore.session
import yaml

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "tests" / "contract_ledger.yaml"
# What the last whole run sent (make contract prints it).
SENT = ROOT / ".contract" / "sent.json"

_models: dict[str, Any] = {}


def _model(service: str) -> Any:
    if service not in _models:
        _models[service] = botocore.session.get_session().get_service_model(service)
    return _models[service]


def documentation(service: str, operation: str, parameter: str) -> str | None:
    """botocore's documentation of an operation's input member (None: no such member)."""
    shape = _model(service).operation_model(operation).input_shape
    member = shape.members.get(parameter) if shape is not None else None
    return None if member is None else str(member.documentation or "")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _ours() -> bool:
    """Is the call on the stack rds-ha's own (not a test's arrangement, nor the local sandbox standing in for AWS)?"""
    frame = sys._getframe(2)
    ours = False
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("rds_ha.local"):
            return False
        if name.startswith("rds_ha."):
            ours = True
        frame = frame.f_back  # type: ignore[assignment]
    return ours


def _status(service: str, operation: str, region: str, params: Mapping[str, Any]) -> str | None:
    """The status of the instance an RDS operation acts on (a new replica's source), as moto holds it when the call
    is made: RDS refuses many operations in many statuses, and says which in its user guides. Reads say nothing."""
    if service != "rds" or operation.startswith(("Describe", "List")):
        return None
    from moto.rds.models import rds_backends

    key = "SourceDBInstanceIdentifier" if operation == "CreateDBInstanceReadReplica" else "DBInstanceIdentifier"
    ident = params.get(key)
    if not isinstance(ident, str) or not ident:
        return None
    region = ident.split(":")[3] if ident.startswith("arn:") else region
    db = rds_backends["123456789012"][region].databases.get(ident.split(":")[-1])
    status = str(db.status) if db is not None else "not found"
    return f"source {status}" if key == "SourceDBInstanceIdentifier" else status


class ContractRecorder:
    """Listens to botocore's before-parameter-build on the tests' session: each (operation, parameter) rds-ha sends."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()

    def before_parameter_build(self, params: Mapping[str, Any] | None = None, model: Any = None, context: Any = None, **_: Any) -> None:
        if model is None or not _ours():
            return
        service = model.service_model.service_name
        operation = f"{service}:{model.name}"
        for name in params or {}:
            self.pairs.add((operation, name))
        try:
            status = _status(service, model.name, (context or {}).get("client_region") or "us-east-1", params or {})
        except Exception:  # noqa: BLE001 - never breaks the call; an unknown status is no pair
            status = None
        if status is not None:
            self.pairs.add((operation, f"@status {status}"))
        if not params:
            self.pairs.add((operation, "(no parameters)"))

    def register(self, session: Any) -> None:
        session.events.register("before-parameter-build", self.before_parameter_build)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(sorted(self.pairs)))


def merge(folder: Path) -> list[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for file in folder.glob("contract-*.json"):
        pairs |= {(a, b) for a, b in json.loads(file.read_text())}
    return sorted(pairs)


def load_ledger(path: Path = LEDGER) -> dict[str, dict[str, dict[str, str]]]:
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    return data or {}


def problems(sent: Iterable[tuple[str, str]], ledger: Mapping[str, Mapping[str, Mapping[str, str]]], whole: bool) -> list[str]:
    """Pairs sent without an entry, entries whose botocore text changed, entries that say nothing; with `whole`
    (the whole suite ran and passed), entries for pairs the suite no longer sends."""
    out = []
    sent = list(sent)
    for operation, parameter in sent:
        entry = ledger.get(operation, {}).get(parameter)
        if entry is None:
            out.append(f"{operation} {parameter}: sent, and no entry in {LEDGER.relative_to(ROOT)} (read AWS's text for it first)")
            continue
        out += _entry_problems(operation, parameter, entry)
    if whole:
        seen = set(sent)
        for operation, params in ledger.items():
            for parameter, entry in params.items():
                if (operation, parameter) not in seen and not entry.get("sent_by"):
                    out.append(f"{operation} {parameter}: in the ledger, but the suite no longer sends it (remove the entry)")
    return out


def _entry_problems(operation: str, parameter: str, entry: Mapping[str, str]) -> list[str]:
    out = []
    if not entry.get("rule"):
        out.append(f"{operation} {parameter}: the entry quotes no rule")
    if bool(entry.get("enforced")) == bool(entry.get("none")):
        out.append(f"{operation} {parameter}: the entry must name what enforces it (enforced) or why nothing need (none), one of the two")
    if not parameter.startswith(("@", "(")):
        service, name = operation.split(":")
        text = documentation(service, name, parameter)
        if text is None:
            out.append(f"{operation} {parameter}: botocore's model has no such parameter")
        elif entry.get("doc") != text_hash(text):
            out.append(f"{operation} {parameter}: botocore's text changed (hash {text_hash(text)}, the entry read {entry.get('doc')}): read it again")
    elif parameter.startswith("@") and not entry.get("source"):
        out.append(f"{operation} {parameter}: a status entry needs its source (a user guide's address)")
    return out


def table(sent: list[tuple[str, str]], ledger: Mapping[str, Mapping[str, Mapping[str, str]]]) -> str:
    lines = [f"{'operation':<42} {'parameter':<34} enforced by / why none"]
    reviewed = 0
    for operation, parameter in sent:
        entry = ledger.get(operation, {}).get(parameter)
        if entry is not None and not _entry_problems(operation, parameter, entry):
            reviewed += 1
            how = entry.get("enforced") or f"none: {entry.get('none')}"
        else:
            how = "UNREVIEWED"
        lines.append(f"{operation:<42} {parameter:<34} {how}")
    lines.append(f"{len(sent)} (operation, parameter) pairs sent, {reviewed} reviewed, {len(sent) - reviewed} unreviewed")
    return "\n".join(lines)


def main() -> None:
    if not SENT.exists():
        sys.exit(f"{SENT.relative_to(ROOT)} is missing: run the suite first (make test), which records what it sends")
    sent = [(a, b) for a, b in json.loads(SENT.read_text())]
    print(table(sent, load_ledger()))


if __name__ == "__main__":
    main()
