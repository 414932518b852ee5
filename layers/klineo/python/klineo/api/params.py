"""Powertools' request-parameter annotations (``Query``, ``Header``) for the functions' routes.

Imported from here rather than from Powertools so that a function's first import is the layer's:
then its whole init, Powertools' event handler included, runs with garbage collection paused
(``klineo/__init__.py``).
"""

from aws_lambda_powertools.event_handler.openapi.params import Header, Query

__all__ = ["Header", "Query"]
