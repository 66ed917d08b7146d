"""Fixtures of the web page tests: a demo-like service (with a runner daemon and the demo's
examples) and, for the browser tests, one headless Chromium per module."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapd.examples import DEMO_EXAMPLES
from tests.http.conftest import RunningService, start_service, stop_service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: The flags Chromium needs on these machines (root, no GPU, no network but loopback).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,800",
)

SERVICE_SETTINGS = {
    "TAPD_EXAMPLES": str(DEMO_EXAMPLES),
    "TAPD_TITLE": "tapd test service",
    "TAPD_DESCRIPTION": "Synthetic stars for the web page tests.",
    "TAPD_CONTACT": "Archive team <archive@example.org>",
    "TAPD_DATA_LICENCE": "https://creativecommons.org/licenses/by/4.0/",
}


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory, request) -> Iterator[RunningService]:  # type: ignore[no-untyped-def]
    """``tapd serve`` and ``tapd run`` with 20,000 demo stars and the demo's examples."""
    name = f"web_{request.module.__name__.rsplit('.', 1)[-1]}"
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp(name), name, settings=SERVICE_SETTINGS,
        daemon=True, sample_rows=20000,
    )  # fmt: skip
    yield running
    stop_service(running, pg_cluster, name)


@pytest.fixture
def client(service: RunningService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, follow_redirects=False, timeout=60) as c:
        yield c


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return (
                f"{path} is missing (apt-get install chromium chromium-driver; scripts/bootstrap)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """One headless Chromium (Debian's, through chromedriver) for the whole module."""
    missing = browser_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser, tmp_path: Path, request) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The module's browser, with a screenshot of where the test ended saved in its tmp dir."""
    browser.set_window_size(1280, 800)
    yield browser
    shot = tmp_path / f"{request.node.name}.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
