"""Route 53: read the record sets under one name, apply one change batch."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.actions import RecordChange
from ..core.errors import RecordConflictError
from ..core.models import Record
from .aws import AwsClients, translate

_ERRORS = (ClientError, BotoCoreError)
# Route 53's words when a batch's DELETE or CREATE does not match the zone (InvalidChangeBatch).
_CONFLICTS = ("but it was not found", "but the values provided do not match", "but it already exists")


def _fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def _record(name: str, rs: dict[str, Any]) -> Record:
    values = [r["Value"] for r in rs.get("ResourceRecords", [])]
    return Record(name=name, value=values[0].rstrip(".") if values else "", ttl=rs.get("TTL"), set_identifier=rs.get("SetIdentifier"), weight=rs.get("Weight"))


class Route53Adapter:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients
        self._private: dict[str, bool] = {}  # a zone's privacy never changes

    @property
    def _r53(self) -> Any:
        return self._clients.client("route53", "us-east-1")

    def zone_size(self, zone_id: str) -> int:
        """How many record sets the zone holds (GetHostedZone): what listing it whole costs, in pages."""
        try:
            return int(self._r53.get_hosted_zone(Id=zone_id)["HostedZone"].get("ResourceRecordSetCount", 0))
        except _ERRORS as exc:
            raise translate(exc, f"get hosted zone {zone_id}") from exc

    def zone_cnames(self, zone_id: str, names: set[str], max_pages: int) -> dict[str, tuple[Record, ...]] | None:
        """The CNAME record sets under each of `names`, from one listing of the whole zone (300 sets per
        page), or None when that takes more than `max_pages` (the caller reads name by name instead)."""
        want = {_fqdn(n): n.rstrip(".").lower() for n in names}
        found: dict[str, list[Record]] = {short: [] for short in want.values()}
        seen: set[tuple[str, str, str | None]] = set()
        kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "MaxItems": "300"}
        try:
            for _ in range(max_pages):
                page = self._r53.list_resource_record_sets(**kwargs)
                new = 0
                for rs in page.get("ResourceRecordSets", []):
                    key = (_fqdn(rs["Name"]), rs["Type"], rs.get("SetIdentifier"))
                    if key in seen:  # a hand-paged listing may repeat the boundary set
                        continue
                    seen.add(key)
                    new += 1
                    if rs["Type"] == "CNAME" and key[0] in want:
                        found[want[key[0]]].append(_record(want[key[0]], rs))
                if not page.get("IsTruncated"):
                    return {name: tuple(recs) for name, recs in found.items()}
                if not new:
                    return None  # the paging makes no progress (moto on weighted sets): read name by name
                kwargs.update(StartRecordName=page["NextRecordName"], StartRecordType=page["NextRecordType"])
                kwargs.pop("StartRecordIdentifier", None)
                if page.get("NextRecordIdentifier"):
                    kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]
        except _ERRORS as exc:
            raise translate(exc, f"list records in zone {zone_id}") from exc
        return None

    def records(self, zone_id: str, name: str) -> tuple[Record, ...]:
        """CNAME record sets named `name`. Paged by hand: moto's paginator loops on weighted sets."""
        out: list[Record] = []
        kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": _fqdn(name), "StartRecordType": "CNAME", "MaxItems": "100"}
        try:
            for _ in range(100):  # bounded: at most 10,000 sets under one name
                page = self._r53.list_resource_record_sets(**kwargs)
                sets = page.get("ResourceRecordSets", [])
                stop = False
                for rs in sets:
                    if _fqdn(rs["Name"]) != _fqdn(name) or rs["Type"] != "CNAME":
                        stop = True
                        break
                    out.append(_record(name.rstrip(".").lower(), rs))
                if stop or not page.get("IsTruncated") or not page.get("NextRecordIdentifier"):
                    break
                kwargs.update(
                    StartRecordName=page["NextRecordName"], StartRecordType=page["NextRecordType"], StartRecordIdentifier=page["NextRecordIdentifier"]
                )
        except _ERRORS as exc:
            raise translate(exc, f"list records {name} in zone {zone_id}") from exc
        # Deduplicate: a hand-paged listing may repeat the boundary record.
        return tuple(dict.fromkeys(out))

    def change(self, zone_id: str, changes: tuple[RecordChange, ...], comment: str) -> str:
        """Apply one atomic change batch; return the change id (PENDING, then INSYNC)."""
        batch = []
        for change in changes:
            rec = change.record
            rrs: dict[str, Any] = {"Name": _fqdn(rec.name), "Type": rec.type, "ResourceRecords": [{"Value": rec.value}]}
            if rec.ttl is not None:
                rrs["TTL"] = rec.ttl
            if rec.set_identifier is not None:
                rrs["SetIdentifier"] = rec.set_identifier
                rrs["Weight"] = rec.weight if rec.weight is not None else 1
            batch.append({"Action": change.action, "ResourceRecordSet": rrs})
        try:
            resp = self._r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Comment": comment[:256], "Changes": batch})
        except ClientError as exc:
            err = exc.response.get("Error", {})
            message = str(err.get("Message", ""))
            if err.get("Code") == "InvalidChangeBatch" and any(m in message for m in _CONFLICTS):
                raise RecordConflictError(f"change records in zone {zone_id}: a record changed since it was read ({message.strip()})") from exc
            raise translate(exc, f"change records in zone {zone_id}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"change records in zone {zone_id}") from exc
        return str(resp["ChangeInfo"]["Id"]).split("/")[-1]

    def change_status(self, change_id: str) -> str:
        """PENDING until every Route 53 authoritative server has the change, then INSYNC."""
        try:
            return str(self._r53.get_change(Id=change_id)["ChangeInfo"]["Status"])
        except _ERRORS as exc:
            raise translate(exc, f"get change {change_id}") from exc

    def is_private(self, zone_id: str) -> bool:
        cached = self._private.get(zone_id)
        if cached is None:
            try:
                cached = bool(self._r53.get_hosted_zone(Id=zone_id)["HostedZone"].get("Config", {}).get("PrivateZone", False))
            except _ERRORS as exc:
                raise translate(exc, f"get hosted zone {zone_id}") from exc
            self._private[zone_id] = cached
        return cached

    def answer(self, zone_id: str, name: str, record_type: str = "CNAME") -> tuple[str, ...]:
        """What Route 53's authoritative servers answer for `name` (TestDNSAnswer: public zones only),
        not what some resolver has cached."""
        try:
            resp = self._r53.test_dns_answer(HostedZoneId=zone_id, RecordName=name, RecordType=record_type)
        except _ERRORS as exc:
            raise translate(exc, f"test DNS answer for {name}") from exc
        return tuple(v.rstrip(".") for v in resp.get("RecordData", []))

    def zone_name(self, zone_id: str) -> str | None:
        """The zone's domain name, or None when there is no such zone."""
        try:
            return str(self._r53.get_hosted_zone(Id=zone_id)["HostedZone"]["Name"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchHostedZone":
                return None
            raise translate(exc, f"get hosted zone {zone_id}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"get hosted zone {zone_id}") from exc
