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


POEM = "春風山水月，花雨白雲天。\n月水山風天，雨花春白雲。"


def test_the_cells_tab_tints_a_text_by_a_features_best_unit(page, tmp_path):
    page.click("#tab-cells")
    page.wait_for_selector("#cells-feature option[value=line_position]", state="attached")
    page.select_option("#cells-feature", "line_position")
    page.fill("#cells-text", POEM)
    page.click("#cells-tint")
    page.wait_for_selector("#cells-best tr.pick")
    spans = page.locator("#cells-output .cch")
    assert spans.count() == len(POEM) - POEM.count("\n")
    assert spans.evaluate_all("s => s.filter(x => x.style.background !== '').length") == \
        spans.count()
    found = page.evaluate("""async () => (await (await fetch('/cells/find', {method: 'POST',
        headers: {'content-type': 'application/json'}, body: '{"top": 5}'})).json())""")
    best = found["features"]["line_position"]["best"]
    assert page.input_value("#cells-unit") == best[0]["unit"]
    assert f"unit {best[0]['unit']}" in page.inner_text("#cells-info")
    assert page.locator("#cells-best tr.pick td:first-child").all_inner_texts() == \
        [b["unit"] for b in best]
    page.screenshot(path=str(tmp_path / "cells.png"), full_page=True)

    page.locator("#cells-best tr.pick").nth(1).click()  # the runner-up, as a unit of my own
    page.wait_for_function(f"document.querySelector('#cells-info').textContent"
                           f".includes('unit {best[1]['unit']} ')")
    assert page.input_value("#cells-feature") == ""
    shown = [float(t.split()[-1]) for t in spans.evaluate_all("s => s.map(x => x.title)")]
    tinted = page.evaluate("""async (unit) => (await (await fetch('/cells/tint', {method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({text: document.querySelector('#cells-text').value, unit})})).json())
        """, best[1]["unit"])
    values = [t["value"] for t in tinted["tokens"] if POEM[t["start"]] != "\n"]
    assert len(shown) == len(values)
    assert all(abs(a - b) <= 5e-4 for a, b in zip(shown, values, strict=True))  # toFixed(3)

    page.click("#cells-generate")
    page.wait_for_function(f"document.querySelector('#cells-text').value !== {POEM!r}")
    page.wait_for_selector("#cells-tint:not([disabled])")
    generated = page.input_value("#cells-text")
    assert page.locator("#cells-output .cch").count() == len(generated) - generated.count("\n")
    assert page.inner_text("#cells-error") == ""
