"""The strategy work queue on SQS: message bodies out, in batches of ten, failed entries re-sent."""

from __future__ import annotations

import time
from collections.abc import Callable

from klineo.store import aws

__all__ = ["SEND_ATTEMPTS", "SQS_BATCH", "SQS_BATCH_BYTES", "batches_of", "send_batch"]

SQS_BATCH = 10
# SendMessageBatch also limits the SUM of a batch's bodies: 256 KiB, as one message (1 MiB since
# AWS raised both in 2025; 256 KiB is safe under either). Over it, the whole call is refused
# (BatchRequestTooLong), not the entries that do not fit.
SQS_BATCH_BYTES = 256 * 1024
SEND_ATTEMPTS = 3


def batches_of(bodies: list[str]) -> list[list[str]]:
    """``bodies`` in order, in runs of at most SQS_BATCH whose sizes add up to at most SQS_BATCH_BYTES
    (a body larger than that alone goes alone, for SQS to refuse on its own)."""
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for body in bodies:
        cost = len(body.encode())
        if current and (len(current) == SQS_BATCH or size + cost > SQS_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(body)
        size += cost
    if current:
        batches.append(current)
    return batches


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
