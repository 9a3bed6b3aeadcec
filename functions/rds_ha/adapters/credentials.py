"""The probe's database credentials: a Secrets Manager secret (Powertools' cached SecretsProvider), or
an IAM database authentication token signed locally for each connection."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.config import ProbeConfig
from ..core.errors import AwsError
from ..probe.model import Credentials
from .aws import AwsClients, translate

# A rotated secret is picked up within this long, or at once after an authentication failure.
SECRET_MAX_AGE_SECONDS = 300


class CredentialSource:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients
        self._providers: dict[str, Any] = {}

    def _provider(self, region: str) -> Any:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider  # probe only: not in other cold starts

        if region not in self._providers:
            self._providers[region] = SecretsProvider(boto3_client=self._clients.client("secretsmanager", region))
        return self._providers[region]

    def get(self, cfg: ProbeConfig, region: str, host: str, port: int, refresh: bool = False) -> Credentials:
        """Credentials for one connection; `refresh` re-reads a secret (after an authentication failure)."""
        if cfg.iam_user is not None:
            try:
                token = self._clients.client("rds", region).generate_db_auth_token(DBHostname=host, Port=port, DBUsername=cfg.iam_user, Region=region)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, "generate an IAM database authentication token") from exc
            return Credentials(cfg.iam_user, str(token))
        assert cfg.secret_arn is not None
        value = self.secret(cfg.secret_arn, refresh)
        return Credentials(value["username"], value["password"])

    def secret(self, arn: str, refresh: bool = False) -> dict[str, Any]:
        """A database secret: a JSON object with string username and password (host, port, dbname and
        engine too when present, as RDS's own secrets have them)."""
        try:
            value = self._provider(arn.split(":")[3]).get(arn, max_age=SECRET_MAX_AGE_SECONDS, transform="json", force_fetch=refresh)
        except Exception as exc:  # noqa: BLE001 - Powertools wraps botocore's and JSON's errors; the message names no secret value
            cause = exc.__cause__ if isinstance(exc.__cause__, ClientError | BotoCoreError) else None
            if cause is not None:
                raise translate(cause, f"read secret {arn}") from exc
            raise AwsError(f"read secret {arn}: {type(exc).__name__} (the secret must be JSON with username and password)") from exc
        if not isinstance(value, dict) or not isinstance(value.get("username"), str) or not isinstance(value.get("password"), str):
            raise AwsError(f"secret {arn} must be a JSON object with string fields username and password")
        return value
