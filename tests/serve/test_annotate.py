"""What the page draws for a text, worked out by hand: verse lines, rhyme places, tones."""

from __future__ import annotations

import math

from lm.serve import annotate


def test_every_verse_line_with_its_span_rhyme_and_tones():
    text = "山。\n白日依山盡，黃河入海流。"
    assert annotate.verse_lines(text) == [
        {"start": 0, "end": 2, "rhyme": 0, "tones": "平"},  # a one-character line rhymes too
        {"start": 3, "end": 9, "rhyme": None, "tones": "仄仄平平仄"},
        {"start": 9, "end": 15, "rhyme": 13, "tones": "平平仄仄平"},
    ]
    assert annotate.verse_lines("a line\nand more") == [
        {"start": 0, "end": 6, "rhyme": None, "tones": "？\u3000？？？？"},
        {"start": 7, "end": 15, "rhyme": None, "tones": "？？？\u3000？？？？"}]


def test_without_a_tone_pattern_lines_have_none(monkeypatch):
    monkeypatch.setattr(annotate, "TONE_PATTERN", None)
    assert annotate.verse_lines("春風，秋月。") == [
        {"start": 0, "end": 3, "rhyme": None, "tones": None},
        {"start": 3, "end": 6, "rhyme": 4, "tones": None}]


def test_simplified_lines_are_read_through_their_traditional_forms():
    assert annotate.pingshui_tones("发") == "仄"  # 發: 入聲六月
    assert annotate.pingshui_tones("發") == "仄"


def test_numbers_json_cannot_hold_become_null():
    value = {"a": [1.5, math.nan, (math.inf, 2)], "b": {"c": -math.inf}, "d": "x", "e": 3}
    assert annotate.finite(value) == {"a": [1.5, None, [None, 2]], "b": {"c": None},
                                      "d": "x", "e": 3}
