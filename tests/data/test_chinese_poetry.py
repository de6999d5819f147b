from lm.data.chinese_poetry import is_regular_verse, normalise


def test_normalise_makes_punctuation_full_width_and_drops_notes():
    assert normalise("床前明月光,疑是地上霜.") == "床前明月光，疑是地上霜。"
    assert normalise("白日依山盡（一作依山盡），黃河入海流。") == "白日依山盡，黃河入海流。"


def test_regular_verse():
    assert is_regular_verse(["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"])
    assert is_regular_verse(["朝辭白帝彩雲間，千里江陵一日還。"])
    assert not is_regular_verse(["長安道，人無衣，馬無草，何不歸來山中老。"])
    assert not is_regular_verse([])


def test_iter_tunes_keeps_each_ci_tune(tmp_path, monkeypatch):
    import json

    from lm.data.chinese_poetry import iter_poems, iter_tunes

    folder = tmp_path / "chinese-poetry-2.0.1" / "dist" / "songci"
    folder.mkdir(parents=True)
    records = [{"rhythmic": "浣溪沙", "paragraphs": ["一样婵娟别样清。", "眼明初识董双成。"]},
               {"rhythmic": "", "paragraphs": ["无调之词。"]},
               {"rhythmic": "菩萨蛮", "paragraphs": ["□□残缺。"]}]
    (folder / "ci.song.0.json").write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    monkeypatch.setenv("LM_CACHE", str(tmp_path))
    assert list(iter_tunes("songci")) == [("浣溪沙", "一样婵娟别样清。\n眼明初识董双成。")]
    assert list(iter_poems("songci")) == ["一样婵娟别样清。\n眼明初识董双成。", "无调之词。"]
    assert list(iter_tunes("tang")) == []
