"""The page in headless Chromium (the distribution's package, driven by Playwright).

It generates an acrostic quatrain from a real server, checks that each line starts with its
character and that every character is tinted, ranks two lines in the Fluency tab and saves a
screenshot. Without Chromium it skips, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import shutil

import pytest

from lm.serve.server import running

ACROSTIC = "春夏秋冬"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    reason = ("Chromium is not installed: apt-get install chromium (.ci/run does) to run the "
              "browser test")
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI={os.environ['CI']!r}: it must run in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def page(poem_app):
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with running(poem_app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        tab = browser.new_page(viewport={"width": 1100, "height": 760})
        tab.goto(url)
        tab.wait_for_selector("body[data-ready=true]")
        yield tab
        browser.close()


def test_the_page_writes_an_acrostic_and_ranks_lines(page, tmp_path):
    page.select_option("#form", "wujue")
    page.fill("#acrostic", ACROSTIC)
    page.fill("#seed", "4")
    page.fill("#num", "1")
    page.click("#generate")
    page.wait_for_selector(".poem .line")
    lines = page.locator(".poem .line").all_inner_texts()
    assert [line[0] for line in lines] == list(ACROSTIC), lines
    assert all(len(line) == 6 and line[-1] in "，。" for line in lines), lines
    tinted = page.locator(".poem .ch").evaluate_all(
        "spans => spans.filter(s => s.style.background !== '').length")
    assert tinted == sum(len(line) for line in lines)
    assert page.locator(".poem .ch.rhyme").count() == 2  # before each 。
    page.screenshot(path=str(tmp_path / "poem.png"), full_page=True)

    page.click("#tab-fluency")
    page.fill("#lines", "春風山水月，花雨白雲天。\n月水，山風天雨，花白春雲。")
    page.click("#rank")
    page.wait_for_selector("#ranking tr.ranked")
    rows = page.locator("#ranking tr.ranked")
    assert rows.count() == 2
    ppl = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(2)]
    assert ppl == sorted(ppl)
    assert page.locator("#ranking .ch.worst").count() >= 2  # the worst token of each line
    page.screenshot(path=str(tmp_path / "fluency.png"), full_page=True)
    assert (tmp_path / "poem.png").stat().st_size > 0 and (tmp_path / "fluency.png").exists()


def test_locked_characters_stay_where_they_are_when_a_poem_is_regenerated(page):
    page.select_option("#form", "wujue")
    page.fill("#keywords", "春风")
    page.fill("#best-of", "2")
    page.fill("#seed", "5")
    page.fill("#num", "1")
    page.click("#generate")
    page.wait_for_selector(".poem .line")
    first = page.locator(".poem").get_attribute("data-text")
    assert "春风" in first.replace("，", "").replace("。", "").replace("\n", "")
    chars = page.locator(".poem .line .ch")
    picks = [1, 8, 14]  # a character of line 1, 2 and 3 (marks are not lockable)
    for index in picks:
        chars.nth(index).click()
    assert page.locator(".poem .ch.locked").count() == 3
    locked = {int(s.get_attribute("data-index")): s.inner_text()
              for s in page.locator(".poem .ch.locked").all()}
    page.click(".poem button.regenerate")
    page.wait_for_function(
        f"document.querySelector('.poem').dataset.text !== {first!r}", timeout=30_000)
    again = page.locator(".poem").get_attribute("data-text")
    assert len(again) == len(first)
    assert all(again[i] == ch for i, ch in locked.items()), (first, again, locked)
