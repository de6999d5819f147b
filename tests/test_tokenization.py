from lm.tokenization import (
    EOS_ID,
    UNK_ID,
    decode,
    encode_documents,
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
