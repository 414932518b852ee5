"""EventBridge Scheduler, every minute: fan the active strategies of the due candles out onto SQS."""

from klineo.observability import finish_init, logger, metrics, tracer
from klineo.runner.dispatcher import dispatch_tick


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return dispatch_tick(event)
