from lm.data.chinese_poetry import is_regular_verse, normalise


def test_normalise_makes_punctuation_full_width_and_drops_notes():
    assert normalise("床前明月光,疑是地上霜.") == "床前明月光，疑是地上霜。"
    assert normalise("白日依山盡（一作依山盡），黃河入海流。") == "白日依山盡，黃河入海流。"


def test_regular_verse():
    assert is_regular_verse(["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"])
    assert is_regular_verse(["朝辭白帝彩雲間，千里江陵一日還。"])
    assert not is_regular_verse(["長安道，人無衣，馬無草，何不歸來山中老。"])
    assert not is_regular_verse([])
