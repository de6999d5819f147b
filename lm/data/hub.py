"""A Hugging Face Hub dataset id as a SOURCE (works where the Hub is reachable).

Its ``train``/``validation`` (or ``valid``, ``dev``)/``test`` splits are kept, text in
``--text-field``. It is identified in the fingerprint by the id alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lm.data.local import SPLITS, path_name, text_column
from lm.errors import LMError

if TYPE_CHECKING:
    import datasets

    from lm.data.sources import Options

_SPLIT_ALIASES = {"validation": "valid", "dev": "valid"}


class HubDataset:
    label = "a Hugging Face Hub dataset id"

    def matches(self, text: str) -> bool:
        """Anything that does not look like a local path (a missing path is an error)."""
        return not (Path(text).suffix or text.startswith((".", "/", "~")) or "\\" in text)

    def identity(self, text: str) -> str:
        return text

    def default_name(self, text: str) -> str:
        return path_name(text)

    def load(self, text: str, options: Options) -> datasets.DatasetDict:
        import datasets

        try:
            loaded = datasets.load_dataset(text, num_proc=options.num_proc)
        except Exception as exc:  # offline, unknown id, gated, ...
            raise LMError(
                f"cannot load {text!r} (not a local path, and the Hugging Face Hub said: "
                f"{str(exc).splitlines()[0][:160]}): check the path or the dataset id"
            ) from None
        result = {}
        for split, data in loaded.items():
            name = _SPLIT_ALIASES.get(split, split)
            if name in SPLITS:
                result[name] = text_column(data, options.text_field, f"{text}[{split}]")
        if "train" not in result:
            raise LMError(f"{text} has no train split (it has {', '.join(loaded)})")
        return datasets.DatasetDict(result)
