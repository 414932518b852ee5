"""The strategy work queue on SQS: message bodies out, in batches of ten, failed entries re-sent."""

from __future__ import annotations

import time
from collections.abc import Callable

from klineo.store import aws

__all__ = ["SEND_ATTEMPTS", "SQS_BATCH", "send_batch"]

SQS_BATCH = 10
SEND_ATTEMPTS = 3


def send_batch(queue_url: str, bodies: list[str], sleep: Callable[[float], None] = time.sleep) -> int:
    """Send up to ten bodies with SendMessageBatch, re-sending only the entries SQS failed.

    Returns how many never made it after ``SEND_ATTEMPTS`` calls.
    """
    if len(bodies) > SQS_BATCH:
        raise ValueError(f"at most {SQS_BATCH} messages per batch")
    entries = {str(index): body for index, body in enumerate(bodies)}
    client = aws.sqs()
    for attempt in range(SEND_ATTEMPTS):
        answer = client.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": key, "MessageBody": body} for key, body in entries.items()],
        )
        failed = {entry["Id"] for entry in answer.get("Failed", [])}
        entries = {key: body for key, body in entries.items() if key in failed}
        if not entries:
            return 0
        sleep(0.1 * 2**attempt)
    return len(entries)
