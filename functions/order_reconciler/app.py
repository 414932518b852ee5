"""EventBridge Scheduler, every 5 minutes: settle unsettled order records, label foreign fills, clean up."""

from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.reconcile import run_reconciler


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return run_reconciler(context)
