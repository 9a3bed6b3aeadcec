"""The AWS contract check (tests/contract.py) refuses what it exists to refuse: a parameter sent with no reviewed
entry, an entry whose botocore text changed since it was read, and an entry that quotes nothing or names neither
what enforces it nor why nothing need."""

from __future__ import annotations

from ..contract import documentation, load_ledger, problems, table, text_hash


def test_a_parameter_sent_with_no_entry_fails_the_check() -> None:
    sent = [("rds:ModifyDBInstance", "ApplyImmediately"), ("rds:ModifyDBInstance", "StorageType")]
    found = problems(sent, load_ledger(), whole=False)
    assert found == ["rds:ModifyDBInstance StorageType: sent, and no entry in tests/contract_ledger.yaml (read AWS's text for it first)"], found


def test_an_entry_whose_botocore_text_changed_is_read_again() -> None:
    text = documentation("rds", "PromoteReadReplica", "BackupRetentionPeriod")
    assert text is not None
    entry = {"doc": "000000000000", "rule": "Must be a value from 0 to 35.", "none": "the old primary's own retention"}
    found = problems([("rds:PromoteReadReplica", "BackupRetentionPeriod")], {"rds:PromoteReadReplica": {"BackupRetentionPeriod": entry}}, whole=False)
    assert found == [
        f"rds:PromoteReadReplica BackupRetentionPeriod: botocore's text changed (hash {text_hash(text)}, the entry read 000000000000): read it again"
    ]


def test_an_entry_must_quote_a_rule_and_say_what_holds_it() -> None:
    text = documentation("sns", "Publish", "Subject")
    assert text is not None
    entry = {"doc": text_hash(text), "rule": "", "enforced": "x", "none": "y"}
    found = problems([("sns:Publish", "Subject")], {"sns:Publish": {"Subject": entry}}, whole=False)
    assert len(found) == 2 and "quotes no rule" in found[0] and "one of the two" in found[1], found


def test_a_whole_run_names_the_entries_nothing_sends_any_more() -> None:
    ledger = {"rds:PromoteReadReplica": {"@status backing-up": {"source": "u", "rule": "r", "none": "n"}}}
    assert problems([], ledger, whole=True) == ["rds:PromoteReadReplica @status backing-up: in the ledger, but the suite no longer sends it (remove the entry)"]
    assert problems([], ledger, whole=False) == []


def test_every_entry_of_the_ledger_is_complete_and_read_against_this_botocore() -> None:
    ledger = load_ledger()
    sent = [(op, param) for op, params in ledger.items() for param in params]
    assert problems(sent, ledger, whole=False) == []
    assert table(sent, ledger).splitlines()[-1] == f"{len(sent)} (operation, parameter) pairs sent, {len(sent)} reviewed, 0 unreviewed"
