"""SQS: run queued backtest jobs; a job that hit a retryable error is reported for redelivery."""

from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.backtest_jobs import handle_job_batch


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return handle_job_batch(event, context)
