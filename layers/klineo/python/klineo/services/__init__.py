"""Use cases the HTTP functions and the runner call; each module is one area (connections, balances, …).

Import from the submodules (``klineo.services.connections`` and so on); this package re-exports nothing.
"""

__all__: list[str] = []
