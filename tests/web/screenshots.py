"""Screenshots of a running service's pages at 1280x800 for the README (scripts/screenshots):
home, the query form with a result (the cone search example), tables, examples."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.web.conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS


def take(base: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tapd-shots-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            # The viewport itself is 1280x800 (a window of that size has less room inside).
            metrics = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            shots = []

            def shot(name: str) -> None:
                path = out / f"{name}.png"
                driver.save_screenshot(str(path))
                shots.append(path)

            driver.get(f"{base}/")
            shot("home")
            driver.get(f"{base}/web/query?example=cone-search")
            driver.find_element(By.CSS_SELECTOR, "button[value='run']").click()
            WebDriverWait(driver, 60).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, "#result-table tbody tr")
            )
            driver.execute_script("document.querySelector('label[for=adql]').scrollIntoView()")
            shot("query-result")
            driver.get(f"{base}/web/tables")
            shot("tables")
            driver.get(f"{base}/examples")
            shot("examples")
            return shots
        finally:
            driver.quit()


if __name__ == "__main__":
    for path in take(sys.argv[1].rstrip("/"), Path(sys.argv[2])):
        print(path)
