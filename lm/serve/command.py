"""``lm serve MODEL``: the poem workbench and its JSON API on 127.0.0.1:8000."""

from __future__ import annotations

import typer

from lm.cli_common import err, store
from lm.serve.config import ServeConfig
from lm.settings import with_settings


@with_settings(ServeConfig)
def serve(
    model: str = typer.Argument(..., help="Model (or n-gram) artifact to serve."),
    *,
    config: ServeConfig,
) -> None:
    """Serve a page (generate, tint by surprisal, rank lines) and a JSON API for a model."""
    from lm.serve.app import create_app
    from lm.serve.server import serve_forever

    app = create_app(store(), model, config)
    served = ", ".join(d.artifact.ref for d in app.state.workbench.decoders)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    err.print(f"serving {served} at http://{shown}:{config.port}/ (API docs at /docs)",
              markup=False)
    serve_forever(app, config.host, config.port)
