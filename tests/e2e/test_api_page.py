"""The API page: /docs renders every route in headless Chromium, from local assets, with /openapi.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from local.openapi import OPENAPI_PATH
from local.template import function_specs

from .conftest import RunningStack

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=10000",
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium not found: run the tests through `make test`, which installs it")
    return found


def _run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed arguments
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_openapi_document_is_served_and_is_the_committed_one(stack: RunningStack) -> None:
    """GET /openapi.json (no token) is the document committed at the repo root."""
    # GIVEN the running stack / WHEN the document is fetched without a token
    response = requests.get(f"{stack.api}/openapi.json", timeout=60)
    # THEN it is the committed openapi.json
    assert response.status_code == 200
    assert response.json() == json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def test_api_page_loads_nothing_from_another_host(stack: RunningStack) -> None:
    """/docs and its assets come from the stack itself: every src/href is a local path."""
    # GIVEN / WHEN
    page = requests.get(f"{stack.api}/docs", timeout=10)
    # THEN every referenced asset is local and served
    assert page.status_code == 200
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references, page.text
    for reference in references:
        assert reference.startswith("/"), reference
        assert requests.get(f"{stack.api}{reference}", timeout=10).status_code == 200, reference


@pytest.mark.browser
def test_api_page_renders_every_route_in_headless_chromium(stack: RunningStack, tmp_path: Path) -> None:
    """Chromium renders Swagger UI at /docs with one operation block per template route."""
    # GIVEN the template's routes
    routes = {(r.method.lower(), r.path) for s in function_specs() for r in s.routes}
    # WHEN Chromium loads the page and lets its scripts run
    result = _run_chromium(tmp_path / "profile", "--dump-dom", f"{stack.api}/docs")
    screenshot = tmp_path / "docs.png"
    _run_chromium(
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1280,2400",
        f"{stack.api}/docs",
    )
    # THEN each route has a rendered operation block with its method and path
    dom = result.stdout
    assert 'class="swagger-ui' in dom, result.stderr[-2000:]
    rendered = set(
        re.findall(r'id="operations-[^"]*".*?opblock-summary-method">(\w+)<.*?data-path="([^"]+)"', dom)
    )
    rendered = {(method.lower(), path) for method, path in rendered}
    assert routes <= rendered, sorted(routes - rendered)
    assert "KLINEO Binance API" in dom
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000


@pytest.mark.browser
def test_api_page_shows_the_address_the_stack_really_listens_on(stack: RunningStack, tmp_path: Path) -> None:
    """The rendered /docs gives this stack's own address, though the served document names :3000."""
    # GIVEN a stack on a free port, whose committed document names the default local address
    assert "http://127.0.0.1:3000" in OPENAPI_PATH.read_text(encoding="utf-8")
    # WHEN Chromium renders its API page
    dom = _run_chromium(tmp_path / "profile", "--dump-dom", f"{stack.api}/docs").stdout
    # THEN the page says the real address, and no other local one
    assert 'class="swagger-ui' in dom
    assert stack.api in dom
    assert set(re.findall(r"http://127\.0\.0\.1:\d+", dom)) == {stack.api}
