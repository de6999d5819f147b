"""``lm compare``: RNN and n-gram models side by side on one split, as a table, JSON and chart."""

from __future__ import annotations

from typing import Any

from lm.artifacts import Artifact, Store, write_json
from lm.errors import LMError
from lm.evaluation.scoring import MODEL_KINDS, ScoreRequest, score


def compare(store: Store, refs: list[str], split: str, name: str,
            device: str) -> tuple[Artifact, list[dict[str, Any]]]:
    if len(refs) < 1:
        raise LMError("lm compare needs at least one model or n-gram reference")
    artifacts = [store.resolve(ref, MODEL_KINDS) for ref in refs]
    rows = []
    for artifact in artifacts:
        result = score(store, artifact.ref, ScoreRequest(split=split, device=device))
        rows.append({"ref": artifact.ref, "kind": artifact.kind, "on": result["on"],
                     **{k: result[k] for k in ("tokens", "oov", "perplexity", "bits_per_token",
                                               "bits_per_char")}})
    datasets = {row["on"] for row in rows}
    with store.create("comparison", name, artifacts, {"split": split, "refs": refs}) as pending:
        write_json(pending.path / "comparison.json", {"split": split, "rows": rows})
        _chart(rows, pending.path / "comparison.png", split)
        pending.metrics = {"rows": rows, "same_tokens": len(datasets) == 1}
    return store.resolve(pending.extra["ref"], "comparison"), rows


def _chart(rows: list[dict[str, Any]], path, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(rows)), 3.6), dpi=100)
    colours = ["tab:blue" if r["kind"] == "model" else "tab:orange" for r in rows]
    bars = ax.bar([r["ref"].replace("@", "\n@") for r in rows],
                  [r["perplexity"] for r in rows], color=colours)
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel(f"perplexity on {split}")
    ax.set_title("RNN (blue) and n-gram (orange) models")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
