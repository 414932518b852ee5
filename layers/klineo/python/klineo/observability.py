"""Logger, tracer and metrics, made once per container and shared by every module."""

from aws_lambda_powertools import Logger, Metrics, Tracer

__all__ = ["logger", "metrics", "tracer"]

logger = Logger()
tracer = Tracer()
metrics = Metrics()
