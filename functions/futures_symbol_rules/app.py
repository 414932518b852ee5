"""GET /exchange-connections/{id}/futures/symbols/{symbol}: the symbol's trading rules and limits."""

from klineo.api import build_resolver, current_user_id
from klineo.models.symbol_rules import SymbolRulesResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.symbol_rules import symbol_trading_rules

app = build_resolver()


@app.get("/exchange-connections/<connection_id>/futures/symbols/<symbol>")
def futures_symbol_rules(connection_id: str, symbol: str) -> SymbolRulesResponse:
    return symbol_trading_rules(current_user_id(app), connection_id, symbol)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
