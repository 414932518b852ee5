"""Logger, tracer and metrics, made once per container and shared by every module.

The service name and metrics namespace default to the values template.yaml sets, so a module
imported before the environment is in place (a test collector, a local tool) still emits metrics
under the namespace the alarms watch instead of failing to flush them.
"""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

__all__ = ["METRICS_NAMESPACE", "SERVICE_NAME", "logger", "metrics", "tracer"]

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or "klineo"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Klineo"

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(service=SERVICE_NAME, namespace=METRICS_NAMESPACE)
