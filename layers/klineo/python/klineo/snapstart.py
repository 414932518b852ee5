"""Lambda SnapStart runtime hooks: after a restore, no network client or random state is reused.

With SnapStart, a function's init runs once per published version; Lambda snapshots that memory
and resumes every new execution environment from it (README "Deploys with SnapStart"). Whatever
the snapshot holds is then shared by environments that run apart, minutes or days later:

- network clients: the boto3 Session and clients (``klineo.store.aws``) and the Binance requests
  Sessions, clients and rate limiter (``klineo.binance``). A pooled connection from before the
  snapshot is dead after it, and a Binance client's server-time offset and weight window are stale.
  They are forgotten, and made again lazily on first use, as on a cold start (botocore's parsed
  data files, which hold neither, are kept: the new clients do not parse them again).
- randomness: the ``random`` module's state (botocore draws its retry jitter from it) would be the
  same in every restored environment; it is re-seeded from the OS. ``uuid.uuid4`` and ``secrets``
  read ``os.urandom``, which is unique per environment, and need nothing.

The hooks are registered through the Snapshot Restore for Python library (``snapshot_restore_py``),
which Lambda's Python managed runtimes include, only when Lambda says the environment is being
initialised for a snapshot (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``). Elsewhere (an
on-demand init, tests, the local stack, sam local) nothing is imported or registered, and
``after_restore`` can be called directly.
"""

from __future__ import annotations

import os
import random

__all__ = ["after_restore", "register_hooks"]

_registered = False


def after_restore() -> None:
    """Forget every network client and re-seed ``random``: what must not outlive a snapshot."""
    random.seed()
    from klineo.binance.client import clear_client_cache
    from klineo.store.aws import clear_clients

    clear_clients(keep_data=True)
    clear_client_cache()


def register_hooks() -> bool:
    """Register ``after_restore`` with Lambda's runtime once, in a SnapStart init; False elsewhere."""
    global _registered
    if _registered:
        return True
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "snap-start":
        return False
    from snapshot_restore_py import register_after_restore

    register_after_restore(after_restore)
    _registered = True
    return True
