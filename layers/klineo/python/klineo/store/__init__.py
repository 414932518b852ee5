"""AWS state: API keys in Secrets Manager; connections, flags, strategies, orders and runs in DynamoDB.

Import from the submodules (``klineo.store.connections`` and so on); this package re-exports nothing.
"""

__all__: list[str] = []
