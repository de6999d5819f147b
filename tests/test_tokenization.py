import numpy as np
import pytest

from lm import tokenization
from lm.tokenization import (
    EOS_ID,
    UNK_ID,
    cut_pieces,
    decode,
    encode_documents,
    encode_flat,
    encode_text,
    load_tokenizer,
    train_tokenizer,
)


def test_char_round_trip_with_unk_and_eos(tmp_path):
    tok = train_tokenizer(["春眠不觉晓，\n处处闻啼鸟。"], "char")
    (ids,) = encode_documents(tok, ["春眠不觉晓，\n处处闻啼鸟。"])
    assert ids[-1] == EOS_ID and UNK_ID not in ids
    assert decode(tok, ids[:-1], "char") == "春眠不觉晓，\n处处闻啼鸟。"
    # an unseen character becomes <unk> and stays visible when decoded
    (ids,) = encode_documents(tok, ["春风"])
    assert ids == [tok.token_to_id("春"), UNK_ID, EOS_ID]
    assert decode(tok, ids, "char") == "春<unk>\n"
    # the saved tokenizer.json reproduces the same ids
    tok.save(str(tmp_path / "tokenizer.json"))
    assert encode_documents(load_tokenizer(tmp_path / "tokenizer.json"), ["春风"])[0] == ids


def test_word_level_min_freq_and_cap():
    text = ["a a a b b c", "a b d"]
    tok = train_tokenizer(text, "word", min_freq=2)
    assert set(tok.get_vocab()) == {"<unk>", "<eos>", "a", "b"}
    assert encode_text(tok, "a c b") == [tok.token_to_id("a"), UNK_ID, tok.token_to_id("b")]
    capped = train_tokenizer(text, "word", vocab_size=3)
    assert set(capped.get_vocab()) == {"<unk>", "<eos>", "a"}


def test_literal_unk_in_text_is_the_unknown_word():
    """PTB spells unknown words as <unk>: they must share id 0, with no gap in the ids."""
    tok = train_tokenizer(["x <unk> y <unk>", "x y z"], "word")
    vocab = tok.get_vocab()
    assert vocab["<unk>"] == UNK_ID and vocab["<eos>"] == EOS_ID
    assert sorted(vocab.values()) == list(range(len(vocab)))
    assert encode_text(tok, "x <unk>") == [vocab["x"], UNK_ID]


def test_word_decode_joins_with_spaces():
    tok = train_tokenizer(["the cat sat"], "word")
    (ids,) = encode_documents(tok, ["the cat sat"])
    assert decode(tok, ids[:-1], "word") == "the cat sat"


def test_cut_pieces_join_back_and_cut_before_whitespace():
    text = "one two  three\tfour five six seven eight nine ten " * 20
    pieces = list(cut_pieces(text, 37))
    assert "".join(pieces) == text
    assert all(0 < len(p) <= 37 for p in pieces)
    assert all(p[0].isspace() for p in pieces[1:])  # every cut is before a whitespace
    # no whitespace: after the last sentence end within the limit, else at the limit
    poem = "春眠不觉晓。处处闻啼鸟。夜来风雨声"
    assert list(cut_pieces(poem, 9)) == ["春眠不觉晓。", "处处闻啼鸟。", "夜来风雨声"]
    assert list(cut_pieces("abcdefghij", 4)) == ["abcd", "efgh", "ij"]
    assert list(cut_pieces("short", 10)) == ["short"]


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
def test_documents_encoded_in_pieces_give_the_whole_documents_tokens(level, monkeypatch):
    """A long document is encoded piece by piece, a few pieces per call, with the same ids."""
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "tiger"]
    rng = np.random.default_rng(4)
    docs = [" ".join(words[i] for i in rng.integers(0, len(words), n)) + "  end  "
            for n in (3, 400, 1, 250)] + ["", "   "]
    tok = train_tokenizer(docs, level, vocab_size=40 if level == "bpe" else None)
    expected = encode_documents(tok, docs)
    monkeypatch.setattr(tokenization, "ENCODE_GROUP_CHARS", 100)
    flat, lengths = encode_flat(tok, docs, limit=64)
    assert lengths.tolist() == [len(ids) for ids in expected]
    assert flat.dtype == np.uint32 and flat.tolist() == [i for ids in expected for i in ids]


def test_chinese_words_decode_without_the_spaces_segmentation_put_between_them():
    from lm.tokenization import decode, train_tokenizer

    tokenizer = train_tokenizer(["今天 是 周六 ， 好 天气", "the cat sat"], "word")
    ids = tokenizer.encode("今天 是 周六 ， 好 天气", add_special_tokens=False).ids + \
        tokenizer.encode("the cat", add_special_tokens=False).ids
    assert decode(tokenizer, ids, "word") == "今天是周六，好天气 the cat"
