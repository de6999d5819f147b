"""Titles in the data: a document becomes title, <sep>, body, <eos>; a dataset without titles
is the one made before titles were read, fingerprint and all."""

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from lm.artifacts import Store
from lm.data.prepare import PrepareConfig, load_split, prepare
from lm.errors import LMError
from lm.tokenization import EOS_ID, SEP, SEP_ID, load_tokenizer, title_positions

POEMS = [("秋夜", "月明星稀，烏鵲南飛。"), ("春曉", "春眠不覺曉，處處聞啼鳥。"),
         ("", "無題。")] * 10


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "poems.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for title, body in POEMS:
            out.write(json.dumps({"text": body, "name": title}, ensure_ascii=False) + "\n")
    return path


def test_each_document_is_title_sep_body_eos(tmp_path, table):
    store = Store(tmp_path / "art")
    config = PrepareConfig(str(table), title_field="name", shuffle=False,
                           split_ratios=(0.8, 0.1, 0.1))
    dataset, _ = prepare(store, config, "t")
    tokenizer = load_tokenizer(dataset.file("tokenizer.json"))
    assert tokenizer.token_to_id(SEP) == SEP_ID and dataset.params["titled"] is True
    ids = load_split(dataset, "train").tolist()
    first = ids[:ids.index(EOS_ID) + 1]
    assert first == [*tokenizer.encode("秋夜", add_special_tokens=False).ids, SEP_ID,
                     *tokenizer.encode("月明星稀，烏鵲南飛。", add_special_tokens=False).ids,
                     EOS_ID]
    train = dataset.metrics["splits"]["train"]  # 24 poems: 8 of each
    assert train["title_tokens"] == 8 * (3 + 3 + 1)  # two characters or none, and <sep>
    assert train["title_characters"] == 8 * (3 + 3 + 1)
    assert train["characters"] == 8 * (11 + 13 + 4)  # bodies, each with its <eos>
    assert int(title_positions(np.asarray(ids), SEP_ID).sum()) == train["title_tokens"]
    # tokenizer.json read by tokenizers alone: <sep> is a special token of its own
    plain = Tokenizer.from_file(str(dataset.file("tokenizer.json")))
    assert plain.encode("秋夜<sep>月").ids[:4] == [*first[:2], SEP_ID, first[3]]


def test_without_titles_the_dataset_is_the_one_made_before(tmp_path, table):
    store = Store(tmp_path / "art")
    plain, _ = prepare(store, PrepareConfig(str(table)), "plain")
    dropped, reused = prepare(store, PrepareConfig(str(table), title_field="name",
                                                   titles=False), "plain")
    assert load_tokenizer(plain.file("tokenizer.json")).token_to_id(SEP) is None
    assert "titled" not in plain.params and "titles" not in plain.params
    # --title-field names a field, so it changes the fingerprint; the documents do not
    assert not reused and np.array_equal(load_split(dropped, "train"),
                                         load_split(plain, "train"))


def test_a_missing_title_field_is_one_line(tmp_path, table):
    with pytest.raises(LMError, match=r"has no field 'heading' \(fields: .*\): pass "
                                      r"--title-field NAME"):
        prepare(Store(tmp_path / "art"), PrepareConfig(str(table), title_field="heading"), "x")


def test_title_positions_mark_each_title_and_its_sep():
    ids = np.array([5, 6, SEP_ID, 7, 8, EOS_ID, SEP_ID, 9, EOS_ID, 7, EOS_ID])
    assert title_positions(ids, SEP_ID).tolist() == [True, True, True, False, False, False,
                                                     True, False, False, False, False]
