"""SNS notifications: one structured message per decision."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws import AwsClients, translate


class Notifier:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def publish(self, topic_arn: str, subject: str, message: dict[str, Any]) -> None:
        region = topic_arn.split(":")[3]
        try:
            self._clients.client("sns", region).publish(TopicArn=topic_arn, Subject=subject[:99], Message=json.dumps(message, default=str, sort_keys=True))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"publish to {topic_arn}") from exc
