"""The tint's colours, the terminal and HTML renderings, and the PNG's labels."""

from __future__ import annotations

import pytest
from rich.console import Console

from lm.evaluation.cells import Tinted
from lm.evaluation.cells_render import (
    NEGATIVE,
    POSITIVE,
    _labels,
    characters,
    colour,
    html_page,
    rich_text,
    strength,
)

TINTED = Tinted("a<b\nc", "0:h:1", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)],
                [1.0, -2.0, 0.5, 9.0, -12.0])


def hex_of(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def test_the_tint_runs_from_white_to_red_or_blue_at_the_scale():
    assert colour(0.0, 2.0) == "#ffffff"
    assert colour(2.0, 2.0) == hex_of(POSITIVE) and colour(5.0, 2.0) == hex_of(POSITIVE)
    assert colour(-2.0, 2.0) == hex_of(NEGATIVE)
    half = colour(1.0, 2.0)  # halfway from white to red, channel by channel
    assert half == hex_of(tuple(round(255 + (c - 255) * 0.5) for c in POSITIVE))
    assert strength(3.0, 0.0) == 0.0 and strength(-3.0, 2.0) == -1.0


def test_a_newline_and_characters_between_tokens_stay_plain():
    gap = Tinted("ab cd", "0:h:0", [(0, 2), (3, 5)], [1.0, -1.0])
    assert list(characters(gap)) == [("a", 1.0), ("b", 1.0), (" ", None), ("c", -1.0),
                                     ("d", -1.0)]
    assert [v for _, v in characters(TINTED)] == [1.0, -2.0, 0.5, None, -12.0]


def test_the_terminal_text_carries_one_background_per_character():
    text = rich_text(TINTED)
    assert text.plain == "a<b\nc"
    styles = {span.start: str(span.style) for span in text.spans}
    assert TINTED.scale == 12.0
    assert styles[0] == f"black on {colour(1.0, 12.0)}"
    assert styles[4] == f"white on {hex_of(NEGATIVE)}"  # full strength: white ink
    assert 3 not in styles  # the newline
    console = Console(record=True, width=20, force_terminal=True, color_system="truecolor")
    console.print(text)
    assert "48;2;" in console.export_text(styles=True)  # truecolour backgrounds


def test_the_html_page_escapes_the_text_and_shows_each_value():
    page = html_page([TINTED], "model:x@v1 <units>")
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "&lt;units&gt;" in page and ">&lt;</span>" in page
    assert 'title="-2.000"' in page and 'title="-12.000"' in page
    assert 'title="+9.000"' not in page  # the newline is drawn plain
    assert f"background:{hex_of(NEGATIVE)};color:#fff" in page  # dark tint, white ink
    assert "<h2>unit 0:h:1</h2>" in page


@pytest.mark.parametrize("pieces", [["a", "\n", "<eos>", "b"]])
def test_ascii_labels_use_a_font_matplotlib_always_has(pieces):
    labels, fonts = _labels(pieces)
    assert labels == ["a", "⏎", "§", "b"] and fonts == ["DejaVu Sans"]
