"""Request and response models (pydantic) shared by the API adapter and the services.

They live outside ``klineo.api`` so that a service can build and return them without loading the
API Gateway adapter: ``common`` (connections, balances, candles, kill switch, the error body),
``futures``, ``strategies``, and the others one per route family; ``paging`` holds the one
?limit=&cursor= rule every list route uses.
"""
