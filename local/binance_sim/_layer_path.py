"""Put the klineo layer on ``sys.path`` when it is not importable yet.

The simulator checks client order ids with the layer's own rule (``klineo.validation``). The Makefile
exports the layer's folder on PYTHONPATH; ``python -m local.binance_sim`` run by hand from the
repository root has only the root on the path, so this adds the layer, as Lambda does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

LAYER_PATH = Path(__file__).resolve().parents[2] / "layers" / "klineo" / "python"

if importlib.util.find_spec("klineo") is None:
    sys.path.append(str(LAYER_PATH))
