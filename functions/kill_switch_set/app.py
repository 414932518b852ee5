"""PUT /kill-switch: turn the caller's own kill switch on or off."""

from klineo.api import build_resolver, current_user_id
from klineo.models.kill_switch import KillSwitchResponse, KillSwitchSetRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.kill_switch import set_kill_switch

app = build_resolver()


@app.put("/kill-switch")
def kill_switch_set(body: KillSwitchSetRequest) -> KillSwitchResponse:
    return set_kill_switch(current_user_id(app), body.enabled)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
