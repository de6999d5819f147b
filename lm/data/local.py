"""Sources on the local disk: text files, folders of them, and tables.

Each class is one kind of SOURCE argument (see :mod:`lm.data.sources`, where they are
registered). A local source is identified in the dataset fingerprint by a hash of its files'
names and bytes, and named by default after its file (without suffix) or folder.

Documents:

* a ``.txt`` file: one per line, per blank-line-separated paragraph or the whole file
  (``--doc-sep line|blank|file``);
* a folder with ``train.txt`` (and usually ``valid.txt``, ``test.txt``): each file is a split,
  kept as given, documents per ``--doc-sep``;
* a folder holding none of ``train.txt``/``valid.txt``/``test.txt`` but at least one ``*.txt``
  file directly inside it (:class:`DocumentFolder`): each such file is one document, in order of
  file name; the documents are then split by ``--split-ratios`` like a single file's.
  ``--doc-sep`` does not apply;
* a ``.jsonl``/``.json``/``.parquet``/``.csv`` file: one per row, text in ``--text-field``.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from lm.errors import LMError

if TYPE_CHECKING:
    import datasets

    from lm.data.sources import Options

SPLITS = ("train", "valid", "test")
DOC_SEPS = ("line", "blank", "file")
TABLE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def check_text_file(path: Path) -> None:
    """Refuse empty, binary and non-UTF-8 files before ``datasets`` trips over them."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if b"\x00" in head:
        raise LMError(f"{path} looks binary (it contains NUL bytes): pass a UTF-8 text file")
    try:
        with open(path, encoding="utf-8") as handle:
            has_text = any(line.strip() for line in handle)
    except UnicodeDecodeError as exc:
        raise LMError(
            f"{path} is not UTF-8 (byte {exc.start}): convert it, e.g. "
            f"`iconv -f GBK -t UTF-8 {path.name}`"
        ) from None
    if not has_text:
        raise LMError(f"{path} is empty or holds only whitespace: pass a file with text")


def content_hash(path: Path) -> str:
    """SHA-256 over the names and bytes of a file, or of every file under a folder."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def path_name(text: str) -> str:
    """A file's stem or a folder's (or Hub id's) last part: the default artifact name."""
    path = Path(text)
    return (path.stem if path.is_file() else path.name) or "dataset"


class LocalSource:
    """What every local source shares: identity from content, name from the path."""

    label = ""

    def identity(self, text: str) -> str:
        return content_hash(Path(text))

    def default_name(self, text: str) -> str:
        return path_name(text)


class TextFile(LocalSource):
    label = "a .txt file (documents per --doc-sep)"

    def matches(self, text: str) -> bool:
        path = Path(text)
        return path.is_file() and path.suffix.lower() not in TABLE_FORMATS

    def load(self, text: str, options: Options) -> datasets.DatasetDict:
        import datasets

        check_text_file(Path(text))
        return datasets.DatasetDict({"all": text_files([Path(text)], options.doc_sep)})


class TableFile(LocalSource):
    label = "a .jsonl/.json/.parquet/.csv file (text in --text-field)"

    def matches(self, text: str) -> bool:
        path = Path(text)
        return path.is_file() and path.suffix.lower() in TABLE_FORMATS

    def load(self, text: str, options: Options) -> datasets.DatasetDict:
        import datasets

        path = Path(text)
        builder = TABLE_FORMATS[path.suffix.lower()]
        try:
            loaded = datasets.load_dataset(builder, data_files=glob.escape(str(path)),
                                           split="train")
        except Exception as exc:  # datasets raises many types for malformed files
            raise LMError(f"cannot read {path} as {builder}: {str(exc).splitlines()[0][:200]}; "
                          "check the file's format") from None
        return datasets.DatasetDict({"all": text_column(loaded, options.text_field, str(path),
                                                        options.title_field)})


class SplitFolder(LocalSource):
    label = ("a folder with train.txt and usually valid.txt, test.txt (splits kept; documents "
             "per --doc-sep)")

    def matches(self, text: str) -> bool:
        return Path(text).is_dir()

    def load(self, text: str, options: Options) -> datasets.DatasetDict:
        import datasets

        folder = Path(text)
        present = {s: folder / f"{s}.txt" for s in SPLITS if (folder / f"{s}.txt").is_file()}
        if "train" not in present:
            raise LMError(
                f"{folder} holds no train.txt: a folder source needs train.txt "
                "(and usually valid.txt and test.txt), or else only *.txt files, one "
                "document each"
            )
        for path in present.values():
            check_text_file(path)
        return datasets.DatasetDict(
            {s: text_files([p], options.doc_sep) for s, p in present.items()}
        )


class DocumentFolder(LocalSource):
    """A folder of ``*.txt`` files, one document each.

    It applies to a folder that holds none of ``train.txt``, ``valid.txt``, ``test.txt`` (such a
    folder is a :class:`SplitFolder`) and at least one file directly inside it whose name ends
    in ``.txt`` (any case) and does not start with ``.``. Those files, sorted by name (Python
    string order), are the documents; subfolders, hidden files and other files are ignored.
    A document is the file's whole text, line breaks read as ``\\n``, without the line breaks
    at its start and end (its ``<eos>`` stands for the last one). Every file must be non-empty
    UTF-8 text. The documents form one ``all`` split, divided by ``--split-ratios``.
    """

    label = ("a folder of .txt files and no train/valid/test.txt (one document per file, "
             "in name order)")

    def matches(self, text: str) -> bool:
        folder = Path(text)
        return (folder.is_dir() and not any((folder / f"{s}.txt").is_file() for s in SPLITS)
                and bool(self.files(folder)))

    @staticmethod
    def files(folder: Path) -> list[Path]:
        return sorted((p for p in folder.iterdir() if p.suffix.lower() == ".txt"
                       and not p.name.startswith(".") and p.is_file()), key=lambda p: p.name)

    def load(self, text: str, options: Options) -> datasets.DatasetDict:
        import datasets

        files = self.files(Path(text))
        for path in files:
            check_text_file(path)
        return datasets.DatasetDict({"all": text_files(files, "file", strip=True)})


def text_files(paths: list[Path], doc_sep: str, strip: bool = False) -> datasets.Dataset:
    """Documents of text files, in order (``strip``: drop line breaks around each document)."""
    import datasets

    sample_by = {"line": "line", "blank": "paragraph", "file": "document"}[doc_sep]
    loaded = datasets.load_dataset(  # escaped: datasets reads data_files as glob patterns
        "text", data_files=[glob.escape(str(p)) for p in paths], sample_by=sample_by,
        split="train",
    )
    if doc_sep == "blank" or strip:
        loaded = loaded.map(lambda b: {"text": [t.strip("\n") for t in b["text"]]}, batched=True)
    return loaded


def text_column(data: datasets.Dataset, text_field: str, where: str,
                title_field: str | None = None) -> datasets.Dataset:
    """The column ``text`` from ``text_field`` (and ``title`` from ``title_field``), without
    documents whose text is missing; a missing title is an empty one."""
    for field, flag in ((text_field, "--text-field"), (title_field, "--title-field")):
        if field is not None and field not in data.column_names:
            raise LMError(
                f"{where} has no field {field!r} (fields: {', '.join(data.column_names)}): "
                f"pass {flag} NAME"
            )
    data = data.select_columns([f for f in (text_field, title_field) if f is not None])
    data = data.filter(lambda b: [t is not None for t in b[text_field]], batched=True)
    if title_field is None:
        return data.rename_column(text_field, "text") if text_field != "text" else data
    return data.map(lambda b: {"text": b[text_field],
                               "title": [str(t) if t is not None else "" for t in b[title_field]]},
                    batched=True, remove_columns=data.column_names)
