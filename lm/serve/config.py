"""The settings of ``lm serve``: where it binds and what a request may ask for."""

from __future__ import annotations

from dataclasses import dataclass

from lm.settings import check_settings, setting


@dataclass
class ServeConfig:
    """Each field is a flag of ``lm serve``; the limits keep one request from taking the box."""

    ngram: str | None = setting(None, "An n-gram artifact served beside the model; a request "
                                "picks it with \"model\".")
    host: str = setting("127.0.0.1", "Address to bind; 0.0.0.0 opens the server to the "
                        "network.")
    port: int = setting(8000, "Port to listen on (0: any free port).", at_least=0,
                        at_most=65535, rule="a port number, 0 to 65535")
    device: str = setting("auto", "auto, cpu, cuda or mps.")
    limit_body: int = setting(1_000_000, "Largest request body, in bytes (413 beyond).",
                              at_least=1)
    limit_num: int = setting(64, "Most samples one /sample request may ask for.", at_least=1)
    limit_tokens: int = setting(1000, "Largest max_tokens of a /sample request.", at_least=1)
    limit_beam: int = setting(16, "Widest beam of a /sample request.", at_least=1)
    limit_texts: int = setting(256, "Most texts in one /score request.", at_least=1)
    limit_chars: int = setting(4000, "Longest text of a /score request, prime or style, in "
                               "characters.", at_least=1)
    limit_queue: int = setting(32, "Requests that may wait for the model (one runs at a "
                               "time); more get 429.", at_least=1)
    limit_seconds: float = setting(30.0, "Most seconds one request may run on the model; it is "
                                   "then stopped and answered 503 with Retry-After.", above=0,
                                   rule="a number of seconds > 0")

    def check(self) -> None:
        check_settings(self)
