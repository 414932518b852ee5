"""GET /kill-switch: the caller's kill switch, and whether the global one is on."""

from klineo.api import build_resolver, current_user_id
from klineo.models.kill_switch import KillSwitchResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.kill_switch import get_kill_switch

app = build_resolver()


@app.get("/kill-switch")
def kill_switch_get() -> KillSwitchResponse:
    return get_kill_switch(current_user_id(app))


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
