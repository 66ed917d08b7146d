"""The web pages in a real browser (Debian's Chromium through Selenium, headless): the
scenarios an astronomer goes through. Each test leaves a screenshot in its tmp dir."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.http.conftest import RunningService

pytestmark = pytest.mark.browser

#: Generous: a busy 2-core machine runs other tests beside these.
TIMEOUT = 60

SLOW_QUERY = "SELECT COUNT(*) AS n FROM demo.stars AS a, demo.stars AS b, demo.stars AS c"


def until(driver: Any, condition: Any, timeout: float = TIMEOUT) -> Any:
    """``condition(driver)`` once truthy; elements replaced meanwhile (the job page swaps its
    content, a form post loads a new page) only mean: look again."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    def looked_at(d: Any) -> Any:
        try:
            return condition(d)
        except WebDriverException as exc:
            # Chromium may report an element swapped out while it was read this way
            # rather than as a stale element (seen on a loaded machine)
            if "does not belong to the document" in str(exc):
                return False
            raise

    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, timeout, 0.2, ignored_exceptions=ignored).until(looked_at)


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_by_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def visible_tables(driver: Any) -> list[str]:
    return [d.get_attribute("data-table") for d in all_by_css(driver, "details[data-table]")
            if d.is_displayed()]  # fmt: skip


def set_query(driver: Any, text: str) -> None:
    textarea = by_css(driver, "#adql")
    textarea.clear()
    textarea.send_keys(text)


def test_home_leads_to_the_tables_which_filter_as_you_type(
    page: Any, service: RunningService
) -> None:
    page.get(service.url + "/")
    assert by_css(page, "h1").text == "tapd test service"
    by_css(page, "nav a[href$='/web/tables']").click()
    until(page, lambda d: "Tables" in d.title)
    assert {"demo.stars", "tap_schema.tables"} <= set(visible_tables(page))
    by_css(page, "#table-filter").send_keys("parallax")
    until(page, lambda d: visible_tables(d) == ["demo.stars"])
    assert by_css(page, "#filter-count").text.startswith("1 of")
    by_css(page, "#table-filter").send_keys(" nosuchword")  # no reload: the page's script filters
    until(page, lambda d: visible_tables(d) == [])
    assert by_css(page, "#filter-count").text.startswith("0 of")


def test_a_table_opens_the_form_and_a_sync_query_shows_its_rows(
    page: Any, service: RunningService
) -> None:
    page.get(service.url + "/web/tables")
    by_css(page, "details[data-table='demo.stars'] a.button").click()
    until(page, lambda d: d.current_url.endswith("/web/query?table=demo.stars"))
    assert by_css(page, "#adql").get_attribute("value") == "SELECT TOP 100 * FROM demo.stars"
    set_query(page, "SELECT TOP 25 name, gmag FROM demo.stars ORDER BY gmag")
    by_css(page, "button[value='run']").click()
    until(page, lambda d: all_by_css(d, "#result-table tbody tr"))
    rows = all_by_css(page, "#result-table tbody tr")
    assert len(rows) == 25
    mags = [float(r.find_elements("css selector", "td")[1].text) for r in rows]
    assert mags == sorted(mags)
    assert [a.text for a in all_by_css(page, ".downloads a")][:2] == ["VOTable", "VOTable (BINARY)"]


def test_an_adql_error_shows_its_line_and_column_and_where_the_cursor_is(
    page: Any, service: RunningService
) -> None:
    page.get(service.url + "/web/query")
    set_query(page, "SELECT name,\n  colour\nFROM demo.stars")
    by_css(page, "button[value='submit']").click()
    error = until(page, lambda d: all_by_css(d, "#query-error"))[0]
    assert "Error at line 2, column 3" in error.text
    assert "colour" in error.text
    textarea = by_css(page, "#adql")
    assert textarea.get_attribute("aria-invalid") == "true"
    assert page.switch_to.active_element == textarea
    start = page.execute_script("return arguments[0].selectionStart", textarea)
    assert start == len("SELECT name,\n  ")


def test_an_example_loads_into_the_form_and_runs_with_its_upload(
    page: Any, service: RunningService
) -> None:
    from selenium.webdriver.support.ui import Select

    page.get(service.url + "/web/query")
    Select(by_css(page, "#example-choice")).select_by_visible_text(
        "Crossmatch with your own targets"
    )
    until(page, lambda d: "example=crossmatch-upload" in d.current_url)
    assert "TAP_UPLOAD.targets" in by_css(page, "#adql").get_attribute("value")
    assert "Crossmatch" in by_css(page, "#example-note").text
    by_css(page, "button[value='run']").click()
    until(page, lambda d: all_by_css(d, "#result-table tbody tr"))
    targets = {r.find_elements("css selector", "td")[0].text
               for r in all_by_css(page, "#result-table tbody tr")}  # fmt: skip
    assert targets and targets <= {f"field-{c}" for c in "abcde"}


def test_an_async_job_is_followed_live_to_completed(page: Any, service: RunningService) -> None:
    page.get(service.url + "/web/query")
    # Long enough to be seen before it ends, short enough for a busy machine.
    set_query(page, "SELECT COUNT(*) AS n FROM demo.stars AS a, demo.stars AS b WHERE a.id < 300")
    by_css(page, "button[value='submit']").click()
    until(page, lambda d: "/web/jobs/" in d.current_url)
    page.execute_script("window.tapdTestMarker = 'same page'")
    seen: set[str] = set()

    def completed(driver: Any) -> bool:
        seen.add(by_css(driver, "#phase").text)
        return "COMPLETED" in seen

    until(page, completed)
    # The page's script followed the phase (UWS WAIT): no reload happened.
    assert page.execute_script("return window.tapdTestMarker") == "same page"
    link = until(page, lambda d: all_by_css(d, "#result-links a"))[0]
    assert link.get_attribute("href").endswith("/results/result")
    assert not all_by_css(page, "#abort")


def test_a_long_job_is_aborted_from_its_page_and_listed_as_aborted(
    page: Any, service: RunningService
) -> None:
    page.get(service.url + "/web/query")
    set_query(page, SLOW_QUERY)
    by_css(page, "button[value='submit']").click()
    until(page, lambda d: "/web/jobs/" in d.current_url)
    job_id = page.current_url.rsplit("/", 1)[1]
    until(page, lambda d: by_css(d, "#phase").text == "EXECUTING")
    by_css(page, "#abort").click()
    until(page, lambda d: by_css(d, "#phase").text == "ABORTED")
    with httpx.Client(base_url=service.url, timeout=30) as client:
        assert client.get(f"/async/{job_id}/phase").text == "ABORTED"
    page.get(service.url + "/web/jobs")
    by_css(page, "input[value='ABORTED']").click()
    by_css(page, ".filter button[type='submit']").click()
    until(page, lambda d: "phase=ABORTED" in d.current_url)
    listed = [a.text for a in all_by_css(page, "#job-list a")]
    assert job_id in listed
    assert all(p.text == "ABORTED" for p in all_by_css(page, "#job-list .phase"))


@pytest.mark.parametrize("path", ["/", "/web/query", "/web/tables", "/examples", "/web/jobs"])
def test_pages_are_readable_at_320_pixels(page: Any, service: RunningService, path: str) -> None:
    page.set_window_size(320, 700)
    page.get(service.url + path)
    width = page.execute_script("return document.documentElement.clientWidth")
    scroll = page.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= width, f"{path} scrolls sideways at 320 px ({scroll} > {width})"


def test_the_form_is_usable_from_the_keyboard(page: Any, service: RunningService) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def press(key: str) -> Any:
        ActionChains(page).send_keys(key).perform()
        return page.switch_to.active_element

    page.get(service.url + "/web/query")
    assert press(Keys.TAB).text == "Skip to content"  # the skip link comes first
    press(Keys.ENTER)
    order = []
    for _ in range(15):
        active = press(Keys.TAB)
        order.append(active.get_attribute("id") or active.get_attribute("value"))
        if active.get_attribute("value") == "run":
            break
    assert "adql" in order and "run" in order, order
    by_css(page, "#adql").clear()
    by_css(page, "#adql").send_keys("SELECT TOP 2 id FROM demo.stars")
    by_css(page, "button[value='run']").send_keys(Keys.ENTER)  # buttons answer Enter
    until(page, lambda d: len(all_by_css(d, "#result-table tbody tr")) == 2)
