"""``lm serve``: a model behind a small web app (FastAPI + uvicorn).

``app`` builds the application (a JSON API with its OpenAPI spec, and one page), ``schemas``
its request bodies (the sampling one derived from ``SampleRequest``), ``errors`` the one-line
4xx answers, ``annotate`` what the page draws for a text, ``gate`` the one-slot queue in
front of the model, ``server`` uvicorn (in the foreground, or in a test's thread), ``config``
the command's settings and ``command`` the Typer command.
"""
