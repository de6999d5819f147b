"""Turn a SOURCE argument into documents, through Hugging Face ``datasets``.

A source is a local ``.txt`` file, a folder with ``train.txt``/``valid.txt``/``test.txt``,
a ``.jsonl``/``.json``/``.parquet``/``.csv`` file with a text field, a built-in
``chinese-poetry:NAME`` corpus, or a Hugging Face Hub dataset id. The result is a
``DatasetDict`` with one ``text`` column: either the splits the source gives, or a single
``all`` split that ``lm.data.splits`` divides by document.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lm.errors import LMError

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"validation": "valid", "dev": "valid"}
_TABLE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def load_source(
    source: str, doc_sep: str = "line", text_field: str = "text", num_proc: int | None = None
) -> datasets.DatasetDict:
    """Load a source into splits of documents (column ``text``)."""
    import datasets

    datasets.disable_progress_bars()
    if doc_sep not in ("line", "blank", "file"):
        raise LMError(f"--doc-sep must be line, blank or file, not {doc_sep!r}")
    if source.startswith("chinese-poetry:"):
        return _chinese_poetry(source.split(":", 1)[1])
    path = Path(source)
    if path.is_dir():
        return _split_folder(path, doc_sep)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _TABLE_FORMATS:
            return _table_file(path, _TABLE_FORMATS[suffix], text_field)
        _check_text_file(path)
        return datasets.DatasetDict({"all": _text_files([path], doc_sep)})
    if path.suffix or source.startswith((".", "/", "~")) or "\\" in source:
        raise LMError(f"no such file or folder: {source}: check the path")
    return _hub(source, text_field, num_proc)


def _chinese_poetry(spec: str) -> datasets.DatasetDict:
    import datasets

    from lm.data.chinese_poetry import CORPORA, iter_poems

    name, _, qualifier = spec.partition("/")
    if name not in CORPORA:
        raise LMError(f"unknown corpus chinese-poetry:{name}: choose one of "
                      + ", ".join(f"chinese-poetry:{n}" for n in CORPORA))
    if qualifier not in ("", "regular"):
        raise LMError(f"unknown qualifier {qualifier!r} in chinese-poetry:{spec}: "
                      "use chinese-poetry:NAME or chinese-poetry:NAME/regular")
    poems = list(iter_poems(name, regular_only=qualifier == "regular"))
    return datasets.DatasetDict({"all": datasets.Dataset.from_dict({"text": poems})})


def _check_text_file(path: Path) -> None:
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


def _text_files(paths: list[Path], doc_sep: str) -> datasets.Dataset:
    import datasets

    sample_by = {"line": "line", "blank": "paragraph", "file": "document"}[doc_sep]
    loaded = datasets.load_dataset(
        "text", data_files=[str(p) for p in paths], sample_by=sample_by, split="train"
    )
    if doc_sep == "blank":
        loaded = loaded.map(lambda b: {"text": [t.strip("\n") for t in b["text"]]}, batched=True)
    return loaded


def _split_folder(folder: Path, doc_sep: str) -> datasets.DatasetDict:
    import datasets

    present = {s: folder / f"{s}.txt" for s in SPLITS if (folder / f"{s}.txt").is_file()}
    if "train" not in present:
        raise LMError(
            f"{folder} holds no train.txt: a folder source needs train.txt "
            "(and usually valid.txt and test.txt)"
        )
    for path in present.values():
        _check_text_file(path)
    return datasets.DatasetDict({s: _text_files([p], doc_sep) for s, p in present.items()})


def _table_file(path: Path, builder: str, text_field: str) -> datasets.DatasetDict:
    import datasets

    try:
        loaded = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:  # datasets raises many types for malformed files
        raise LMError(f"cannot read {path} as {builder}: {str(exc).splitlines()[0][:200]}; "
                      "check the file's format") from None
    return datasets.DatasetDict({"all": _text_column(loaded, text_field, str(path))})


def _text_column(data: datasets.Dataset, text_field: str, where: str) -> datasets.Dataset:
    if text_field not in data.column_names:
        raise LMError(
            f"{where} has no field {text_field!r} (fields: {', '.join(data.column_names)}): "
            "pass --text-field NAME"
        )
    data = data.select_columns([text_field])
    if text_field != "text":
        data = data.rename_column(text_field, "text")
    return data.filter(lambda b: [t is not None for t in b["text"]], batched=True)


def _hub(repo_id: str, text_field: str, num_proc: int | None) -> datasets.DatasetDict:
    """A Hugging Face Hub dataset; works where the Hub is reachable."""
    import datasets

    try:
        loaded = datasets.load_dataset(repo_id, num_proc=num_proc)
    except Exception as exc:  # offline, unknown id, gated, ...
        raise LMError(
            f"cannot load {repo_id!r} (not a local path, and the Hugging Face Hub said: "
            f"{str(exc).splitlines()[0][:160]}): check the path or the dataset id"
        ) from None
    result = {}
    for split, data in loaded.items():
        name = _SPLIT_ALIASES.get(split, split)
        if name in SPLITS:
            result[name] = _text_column(data, text_field, f"{repo_id}[{split}]")
    if "train" not in result:
        raise LMError(f"{repo_id} has no train split (it has {', '.join(loaded)})")
    return datasets.DatasetDict(result)
