"""Chinese word segmentation for ``--level word``: jieba cuts Han chunks, nothing else changes,
and the tokens round-trip through a word-level tokenizer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lm.segmentation import identity, segment, segment_with_origin
from lm.tokenization import (
    decode,
    encode_documents,
    encode_text,
    is_word_level,
    load_tokenizer,
    train_tokenizer,
    vocabulary,
)

SENTENCES = ["今天是周六", "我们明天去公园。", "这本书很好看，推荐！", "质量不错 价格也便宜"]
# Han characters, Chinese and ASCII punctuation, Latin letters, digits and whitespace
TEXT = st.text(st.sampled_from(list("今天是周六我们去公园书很好看质量不错价格便宜，。！ab1 \n")),
               max_size=40)


def test_jieba_cuts_han_chunks_into_words():
    assert segment("今天是周六") == "今天 是 周六"
    assert segment("是今天周六") == "是 今天 周六"
    assert segment("质量不错，价格也便宜") == "质量 不错 ， 价格 也 便宜"


def test_runs_the_dictionary_lacks_are_cut_into_characters_not_guessed_words():
    """jieba's HMM would guess 所小谱 and 刚开 as words: a vocabulary lacks them (<unk>)."""
    assert segment("次得离所小谱") == "次 得 离 所 小 谱"
    assert segment("始还刚开比较犹豫") == "始 还 刚 开 比较 犹豫"


def test_other_text_is_left_exactly_as_it_is():
    for text in ["the cat  sat on\ta mat .", "", "  ", "1998 ok!", "a\nb"]:
        assert segment(text) == text
    assert segment("see 今天是周六  ok") == "see 今天 是 周六  ok"


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_segmentation_only_inserts_spaces(text):
    """Removing what was inserted gives the text back; every original character is found
    where the map back says."""
    cut = segment_with_origin(text)
    assert "".join(cut.text.split()) == "".join(text.split())
    assert cut.text.split() == segment(" ".join(text.split())).split()
    kept = [i for i, char in enumerate(cut.text)
            if text[cut.origin[i]:cut.origin[i] + 1] == char]
    assert [cut.text[i] for i in kept] == list(text)
    assert len(cut.origin) == len(cut.text) + 1 and cut.origin[-1] == len(text)
    if " " not in text and "\n" not in text:
        assert cut.text.replace(" ", "") == text


def test_spans_map_back_to_the_original_characters():
    cut = segment_with_origin("今天是周六")
    assert cut.text == "今天 是 周六"
    assert [cut.span(a, b) for a, b in [(0, 2), (3, 4), (5, 7), (7, 7)]] == [
        (0, 2), (2, 3), (3, 5), (5, 5)]


def test_word_level_tokens_round_trip_through_the_tokenizer():
    """A word tokenizer trained on segmented text: encoding a raw sentence segments it, and
    decoding gives the sentence back without the spaces segmentation put between its words
    (a space the text had between two Han characters is not kept either)."""
    tokenizer = train_tokenizer([[segment(s) for s in SENTENCES]], "word")
    assert is_word_level(tokenizer)
    words = vocabulary(tokenizer)
    for sentence in SENTENCES:
        ids = encode_documents(tokenizer, [sentence])[0]
        assert 0 not in ids  # no <unk>: the words are those it learnt
        assert [words[i] for i in ids[:-1]] == segment(sentence).split()
        assert decode(tokenizer, ids[:-1], "word") == "".join(segment(sentence).split())
        assert encode_text(tokenizer, sentence) == ids[:-1]


def test_char_level_does_not_segment():
    tokenizer = train_tokenizer([SENTENCES], "char")
    assert not is_word_level(tokenizer)
    words = vocabulary(tokenizer)
    ids = encode_documents(tokenizer, ["今天是周六"])[0]
    assert [words[i] for i in ids[:-1]] == list("今天是周六")


def test_identity_names_jieba_and_its_version():
    import importlib.metadata

    assert f"jieba=={importlib.metadata.version('jieba')}" in identity()


def test_a_word_level_dataset_of_chinese_is_fingerprinted_by_its_segmenter(tmp_path,
                                                                         monkeypatch):
    """Made again with the same segmenter it is reused; a new jieba makes it anew. Text with
    no Chinese is not segmented, so its fingerprint does not name the segmenter."""
    from lm import segmentation
    from lm.artifacts import Store
    from lm.data.prepare import PrepareConfig, prepare

    chinese = tmp_path / "zh.txt"
    chinese.write_text("\n".join(SENTENCES * 10) + "\n", encoding="utf-8")
    english = tmp_path / "en.txt"
    english.write_text("the cat sat\na dog ran\n" * 10, encoding="utf-8")
    store = Store(tmp_path / "art")
    made, reused = prepare(store, PrepareConfig(str(chinese), level="word"), "zh")
    assert not reused and made.manifest["params"]["segmentation"] == identity()
    tokens = vocabulary(load_tokenizer(made.file("tokenizer.json")))
    assert {"今天", "周六", "本书", "好看"} <= set(tokens)
    assert prepare(store, PrepareConfig(str(chinese), level="word"), "zh") == (made, True)
    plain, _ = prepare(store, PrepareConfig(str(english), level="word"), "en")
    assert "segmentation" not in plain.manifest["params"]
    assert prepare(store, PrepareConfig(str(english), level="word"), "en")[1]
    monkeypatch.setattr(segmentation.importlib.metadata, "version", lambda name: "9.9")
    again, reused = prepare(store, PrepareConfig(str(chinese), level="word"), "zh")
    assert not reused and "jieba==9.9" in again.manifest["params"]["segmentation"]
    assert prepare(store, PrepareConfig(str(english), level="word"), "en")[1]


def test_a_titles_sep_is_never_cut_and_the_body_alone_is_counted():
    from lm.segmentation import _words_batch, segment

    assert segment("秋夜<sep>床前明月光") == "秋夜 <sep> 床 前 明月光"
    assert segment("秋夜<sep>床前明月光").replace(" ", "") == "秋夜<sep>床前明月光"
    counted = _words_batch({"text": ["秋夜<sep>床前明月光", "今天是周六"]})
    assert counted["characters"] == [5, 5]
