"""``lm inspect MODEL --find``: record a model's units over a split and find what they track.

Each model is run over the first ``--tokens`` tokens of ``--split`` (valid by default) and of
``--heldout`` (test): every unit recorded (:mod:`lm.evaluation.cells`), every feature computed
(:mod:`lm.evaluation.text_features`). Per feature it lists the ``--top`` units by |r| on the
split, each with the R² on the held-out text of a linear fit on that unit alone, and a linear
probe from the whole state (:mod:`lm.evaluation.probe`) fitted on the split and scored on the
held-out text. The PNG (:mod:`lm.evaluation.cells_render`) and the result as JSON go to
``STORE/inspections/NAME/`` unless ``--plot`` says where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm.artifacts import Artifact, Store, write_json
from lm.errors import LMError
from lm.evaluation.cells import Recording, best_units, record
from lm.evaluation.probe import probes
from lm.evaluation.text_features import FEATURES, features
from lm.models.rnn import RNNLM
from lm.settings import check_settings, setting
from lm.tokenization import load_tokenizer, vocabulary


def _feature(name: str) -> bool:
    return name in FEATURES


@dataclass
class InspectConfig:
    """What ``lm inspect`` records, ranks and tints; each field is one of its flags."""

    split: str = setting("valid", "Split whose text the units are recorded on and ranked.")
    heldout: str = setting("test", "Split the one-unit fits and the probes are scored on.")
    tokens: int = setting(50_000, "Tokens recorded from the start of each split.", at_least=1)
    top: int = setting(5, "Best units listed per feature.", at_least=1)
    probe: bool = setting(True, "Fit a linear probe (scikit-learn) from the whole state to "
                          "each feature.")
    batch_size: int = setting(32, "Rows of the split read side by side.", at_least=1)
    warmup: int = setting(64, "Tokens each row reads before it is recorded.", at_least=0)
    plot: Path | None = setting(None, "With --find: write the PNG here (default: "
                                "STORE/inspections/NAME/cells.png).")
    text: str | None = setting(None, "Tint this text by --unit (or --feature's best unit).")
    unit: str | None = setting(None, "With --text: the unit, LAYER:PART:INDEX (1:c:123 is "
                               "entry 123 of layer 1's LSTM memory cell; PART h or c).")
    feature: str | None = setting(None, "With --text: tint by this feature's best unit on "
                                  "--split. One of " + ", ".join(FEATURES) + ".",
                                  valid=_feature, rule="one of " + ", ".join(FEATURES))
    html: Path | None = setting(None, "With --text: write a standalone HTML page here.")
    device: str = setting("auto", "auto, cpu, cuda or mps.")

    def check(self) -> None:
        check_settings(self)
        if self.html is not None and self.html.suffix.lower() not in (".html", ".htm"):
            raise LMError(f"--html {self.html} must name an .html file")
        if self.plot is not None and self.plot.suffix.lower() != ".png":
            raise LMError(f"--plot {self.plot} must name a .png file")


@dataclass
class Loaded:
    """A model artifact ready to be inspected: its network, vocabulary and dataset."""

    artifact: Artifact
    model: RNNLM
    tokenizer: Any
    pieces: list[str]  # each token id's text

    @classmethod
    def of(cls, store: Store, ref: str, device: str = "auto") -> Loaded:
        from lm.models import rnn
        from lm.runtime import pick_device

        artifact = store.resolve(ref, ("model", "ngram"))
        if artifact.kind != "model":
            raise LMError(f"{artifact.ref} is an n-gram model, which has no cells: inspect a "
                          "recurrent model")
        tokenizer = load_tokenizer(artifact.file("tokenizer.json"))
        model = rnn.load(artifact.path, device=pick_device(device))
        return cls(artifact, model, tokenizer, vocabulary(tokenizer))

    def split(self, store: Store, split: str, tokens: int) -> np.ndarray:
        from lm.data.prepare import load_split
        from lm.evaluation.scoring import dataset_of

        ids = np.asarray(load_split(dataset_of(store, self.artifact), split)[:tokens])
        if len(ids) == 0:
            raise LMError(f"the {split} split of {self.artifact.ref} is empty: pick another "
                          "with --split or --heldout")
        return ids.astype(np.int64)

    def features(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        return features([self.pieces[i] for i in ids])


@dataclass
class Observed:
    """A recording and the features of the text it was made on."""

    recording: Recording
    features: dict[str, np.ndarray]


def observe(loaded: Loaded, ids: np.ndarray, config: InspectConfig) -> Observed:
    device = next(loaded.model.parameters()).device
    recording = record(loaded.model, ids, config.batch_size, config.warmup, device)
    return Observed(recording, loaded.features(ids))


def rank_features(seen: Observed, top: int, held: Observed | None = None,
                  with_probe: bool = False) -> dict[str, dict[str, Any]]:
    """``{NAME: {"best": [...], "probe": ...}}`` for every feature; a feature constant on the
    recorded text has no best unit and no probe."""
    fitted: dict[str, Any] = dict.fromkeys(seen.features)
    if with_probe and held is not None:
        fitted = probes(seen.recording.values, seen.features, held.recording.values,
                        held.features, {name: FEATURES[name].binary for name in seen.features})
    ranked = {}
    for name, values in seen.features.items():
        if np.ptp(values) == 0:
            ranked[name] = {"best": [], "probe": None}
            continue
        other = held.features[name] if held else None
        best = best_units(seen.recording, values, top, held and held.recording, other)
        ranked[name] = {"best": best, "probe": fitted[name]}
    return ranked


def find(store: Store, ref: str, config: InspectConfig,
         log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """The best units of one model for every feature, the probes, the PNG and the JSON."""
    from lm.evaluation.cells_render import plot_units

    if config.heldout == config.split:
        raise LMError(f"--heldout {config.heldout} is --split too: score the fits on other "
                      "text, e.g. --split valid --heldout test")
    loaded = Loaded.of(store, ref, config.device)
    log(f"recording {loaded.artifact.ref} on {config.split} and {config.heldout}")
    seen = observe(loaded, loaded.split(store, config.split, config.tokens), config)
    held = observe(loaded, loaded.split(store, config.heldout, config.tokens), config)
    ranked = rank_features(seen, config.top, held, config.probe)
    plot = config.plot or store.root / "inspections" / loaded.artifact.name / "cells.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_units(seen, ranked, loaded.pieces, plot,
               f"{loaded.artifact.ref}: best unit per feature on {config.split}")
    result = {"model": loaded.artifact.ref, "cell": loaded.model.config.cell,
              "split": config.split, "heldout": config.heldout,
              "tokens": len(seen.recording.ids), "heldout_tokens": len(held.recording.ids),
              "units": len(seen.recording.units), "features": ranked,
              "constant": [name for name, item in ranked.items() if not item["best"]],
              "plot": str(plot)}
    write_json(plot.with_suffix(".json"), result)
    return result


def best_for(store: Store, loaded: Loaded, config: InspectConfig) -> dict[str, Any]:
    """``--feature``'s best unit on ``--split`` (its first ``--tokens`` tokens)."""
    assert config.feature is not None
    seen = observe(loaded, loaded.split(store, config.split, config.tokens), config)
    best = rank_features(seen, 1)[config.feature]["best"]
    if not best:
        raise LMError(f"{config.feature} takes one value all over the {config.split} split, so "
                      "no unit tracks it: pick another --feature or give --unit")
    return best[0]
