"""The text features, computed from hand-made texts whose values are counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lm.evaluation.text_features import FEATURES, features, text_features

QUATRAIN = "白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。"


def ints(values: np.ndarray) -> list[int]:
    return [int(v) for v in values]


def test_a_quatrain_counts_clauses_as_lines():
    f = text_features(QUATRAIN)
    # 白日依山盡， | 黃河入海流。⏎ (the newline after 。 closes the same line) | 欲窮千里目， | …
    assert ints(f["line_position"]) == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6,
                                        0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]
    assert ints(f["chars_left"]) == [5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0,
                                     5, 4, 3, 2, 1, 0, 5, 4, 3, 2, 1, 0]
    assert ints(f["line_index"]) == [0] * 6 + [1] * 7 + [2] * 6 + [3] * 6
    assert ints(f["line_parity"]) == [0] * 6 + [1] * 7 + [0] * 6 + [1] * 6
    assert ints(f["doc_position"]) == list(range(len(QUATRAIN)))
    assert ints(f["in_brackets"]) == [0] * len(QUATRAIN)
    assert set(f) == set(FEATURES)


def test_eos_ends_the_document_and_restarts_every_count():
    pieces = [*"ab\ncd", "<eos>", *"xy", "<eos>", *"z"]
    f = features(pieces)
    assert ints(f["doc_position"]) == [0, 1, 2, 3, 4, 5, 0, 1, 2, 0]
    assert ints(f["line_index"]) == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    assert ints(f["line_position"]) == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    # the last document has no <eos>: its line ends with the stream
    assert ints(f["chars_left"]) == [2, 1, 0, 2, 1, 0, 2, 1, 0, 0]


def test_an_eos_after_a_line_end_closes_that_line_not_a_new_one():
    f = features([*"ab。", "<eos>", *"c"])
    assert ints(f["line_index"]) == [0, 0, 0, 0, 0]
    assert ints(f["chars_left"]) == [3, 2, 1, 0, 0]


def test_brackets_and_quotes_nest_and_the_closing_mark_is_outside():
    text = 'a(b[c]d)e "f" g「h」'
    f = text_features(text)
    inside = "".join(str(int(v)) for v in f["in_brackets"])
    assert inside == "011111100011000110"  # a ( b [ c ] d ) e ␠ " f " ␠ g 「 h 」


def test_an_apostrophe_is_no_quote_and_a_stray_closer_changes_nothing():
    assert not text_features("pardon'd, 'tis o' the")["in_brackets"].any()
    assert ints(text_features("a)b(c")["in_brackets"]) == [0, 0, 0, 1, 1]


def test_an_unclosed_quote_ends_with_its_document():
    f = features(['"', "a", "<eos>", "b"])
    assert ints(f["in_brackets"]) == [1, 1, 1, 0]


def test_a_subset_of_features_can_be_asked_for():
    f = features(list("ab\nc"), ["line_index"])
    assert list(f) == ["line_index"] and f["line_index"].dtype == np.float64


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_feature_is_binary_exactly_when_it_says_so(name):
    values = text_features(QUATRAIN + '\n"(引)"')[name]
    assert FEATURES[name].binary == (set(np.unique(values)) <= {0.0, 1.0})


def test_a_document_that_starts_with_a_newline_does_not_join_the_last_line_before_it():
    f = features(["a", "<eos>", "\n", "b"])
    assert ints(f["chars_left"]) == [1, 0, 0, 0]
    assert ints(f["line_index"]) == [0, 0, 0, 1]


def test_a_closer_closes_its_opener_and_whatever_opened_after_it():
    assert ints(text_features("([)x")["in_brackets"]) == [1, 1, 0, 0]


def test_a_title_is_a_line_of_its_own_and_the_poems_lines_count_from_0_after_its_sep():
    pieces = [*"秋夜", "<sep>", *"白日，黃河。", "<eos>", *"春", "<sep>", *"花，"]
    f = features(pieces)
    # 秋夜<sep> | 白日， | 黃河。<eos> || 春<sep> | 花，
    assert ints(f["line_position"]) == [0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 0, 1]
    assert ints(f["chars_left"]) == [2, 1, 0, 2, 1, 0, 3, 2, 1, 0, 1, 0, 1, 0]
    assert ints(f["line_index"]) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert ints(f["line_parity"]) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert ints(f["doc_position"]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3]
