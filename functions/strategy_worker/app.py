"""SQS: run a batch of strategy messages; failed messages are reported for redelivery (partial batch)."""

from klineo.observability import finish_init, logger, metrics, tracer
from klineo.runner.worker import handle_batch


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return handle_batch(event, context)
