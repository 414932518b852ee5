"""Cold start hygiene: importing klineo.binance loads no HTTP, AWS, crypto or Powertools package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAYER = Path(__file__).resolve().parents[3] / "layers" / "klineo" / "python"


def test_importing_the_binance_layer_loads_no_heavy_dependency():
    """GIVEN a fresh interpreter WHEN klineo.binance is imported THEN requests, boto3, cryptography,
    Powertools,
    pydantic and dataclasses stay unloaded (they load on first use)."""
    code = (
        "import sys, klineo.binance\n"
        "heavy = ['requests', 'urllib3', 'boto3', 'botocore', 'cryptography', 'aws_lambda_powertools',"
        " 'pydantic', 'dataclasses']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(LAYER)},
        check=True,
    )
    assert result.stdout.strip() == ""


def test_building_a_client_loads_requests_but_not_boto3_or_cryptography():
    """GIVEN a fresh interpreter WHEN a client is built without RATE_LIMIT_TABLE
    THEN boto3 and crypto stay out."""
    code = (
        "import sys, klineo.binance as b\n"
        "b.BinanceClient(b.Market.SPOT, b.Environment.PRODUCTION)\n"
        "print(','.join(m for m in ['requests', 'boto3', 'cryptography', 'pydantic'] if m in sys.modules))\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(LAYER)},
        check=True,
    )
    assert result.stdout.strip() == "requests"
