"""``lm export``: a model's decoding step as ONNX, with its tokenizer and a sidecar."""

from __future__ import annotations

from pathlib import Path

import typer

from lm.cli_common import out, store


def export(
    model: str = typer.Argument(..., help="Model artifact (NAME, NAME@v2, ...)."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx file; tokenizer.json and "
                              "NAME.onnx.json (inputs, outputs, start token) go beside it."),
) -> None:
    """Export one decoding step (token ids + state → log-probs + state) to ONNX."""
    from lm.models.export import export_model

    result = export_model(store(), model, onnx)
    out.print(f"wrote {result.onnx}, {result.tokenizer} and {result.sidecar}")
    out.print(f"onnxruntime agrees with PyTorch to {result.max_difference:.1e} (max abs "
              "log-prob difference)")
