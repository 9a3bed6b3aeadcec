"""Hooks: the operator's own Lambda functions, called before a failover (may veto) and after it."""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from ..core.errors import HookError, HookTimeoutError
from .aws import AwsClients, translate

_MAX_REPLY = 64 * 1024


class Hooks:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def _client(self, arn: str, timeout: float) -> Any:
        # No retries: the timeout is the hook's whole budget, and a veto must not be asked twice.
        config = Config(connect_timeout=min(5.0, timeout), read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"})
        return self._clients.client("lambda", arn.split(":")[3], config=config, purpose=f"hook-{timeout:g}")

    def ask(self, arn: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Invoke the hook synchronously and return its JSON reply (an object). HookTimeoutError when it
        does not answer within `timeout`; HookError when it fails or answers something else."""
        try:
            resp = self._client(arn, timeout).invoke(FunctionName=arn, InvocationType="RequestResponse", Payload=json.dumps(payload, default=str).encode())
            body = resp["Payload"].read(_MAX_REPLY + 1)
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise HookTimeoutError(f"hook {arn} did not answer within {timeout:g}s") from exc
        except (ClientError, BotoCoreError) as exc:
            raise HookError(str(translate(exc, f"invoke hook {arn}"))) from exc
        if resp.get("FunctionError"):
            raise HookError(f"hook {arn} failed ({resp['FunctionError']}): {body[:300].decode('utf-8', 'replace')}")
        try:
            reply = json.loads(body[:_MAX_REPLY]) if body else {}
        except ValueError as exc:
            raise HookError(f"hook {arn} answered something that is not JSON") from exc
        if not isinstance(reply, dict):
            raise HookError(f'hook {arn} answered a JSON {type(reply).__name__}, expected an object like {{"veto": false}}')
        return reply

    def tell(self, arn: str, payload: dict[str, Any]) -> None:
        """Invoke the hook asynchronously (the outcome, after the fact); errors are the caller's to log."""
        try:
            self._client(arn, 10).invoke(FunctionName=arn, InvocationType="Event", Payload=json.dumps(payload, default=str).encode())
        except (ClientError, BotoCoreError) as exc:
            raise HookError(str(translate(exc, f"invoke hook {arn}"))) from exc

    def reachable(self, arn: str) -> str | None:
        """Whether an invoke of the function would be accepted from here (Invoke with InvocationType DryRun: Lambda
        checks the caller's permission and the function, and runs nothing): None, or why not. From inside a VPC
        the Lambda API needs an interface endpoint (com.amazonaws.REGION.lambda) or a NAT."""
        try:
            self._client(arn, 10).invoke(FunctionName=arn, InvocationType="DryRun")
        except (ClientError, BotoCoreError) as exc:
            return str(translate(exc, f"invoke {arn} (DryRun)"))
        return None

    def exists(self, arn: str) -> bool:
        """Whether the hook's function exists (lambda:GetFunction; the operator's CLI, not the functions)."""
        try:
            self._clients.client("lambda", arn.split(":")[3]).get_function(FunctionName=arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise translate(exc, f"look up hook {arn}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"look up hook {arn}") from exc
        return True
