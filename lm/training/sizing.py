"""``--size auto``: the depth, width and batch that learn most in the tokens a machine reads.

A bigger network learns more from each token but reads fewer tokens a second, so which one ends
best depends on the budget and the machine. The lever study (``bench/levers.py``, README
"Levers at fixed training tokens") measured each candidate's Tang test perplexity at several fixed
token budgets; those measurements are ``CANDIDATES``. Given the budget in tokens
(``--max-tokens``), or in seconds (``--max-time``) turned into tokens by a short timed probe of
each candidate's real training step on this machine, ``choose`` predicts each candidate's
perplexity at its own token count (between two measured budgets by the straight line in
log-log; beyond a curve's last budget, by the shape of the longest curve) and picks the lowest.

The curves are Tang's (6,000 characters); elsewhere they rank the widths by the same token
counts, a rough guide. The choice, its reason and the probe are printed first and kept in the
model's record; the chosen sizes are ordinary settings, so they are in its fingerprint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lm.errors import LMError

SIZES = ("given", "auto")
PROBE_SECONDS = 3.0     # timed steps per candidate, after two warm-up steps
SAVED = "size.json"     # the choice, beside the run's checkpoint, for --resume
VALIDATION_SHARE = 0.03  # the part of a time budget that validation takes (measured: 2-3%)


@dataclass(frozen=True)
class Candidate:
    """A network's depth and width (embedding = hidden) with its batch, and its measured
    learning curve: (training tokens, Tang test perplexity) at each budget of the lever study."""

    layers: int
    width: int
    batch: int
    curve: tuple[tuple[int, float], ...]

    @property
    def label(self) -> str:
        return f"{self.layers}×{self.width}, batch {self.batch}"

    def predicted(self, tokens: float, longest: Candidate | None = None) -> float:
        """Test perplexity after ``tokens``: the straight line in log-log between the measured
        budgets around it. Past this curve's last budget, when ``longest`` (the candidate
        measured furthest) goes further, it falls by the ratio ``longest`` falls from there:
        the curves flatten (the rate drops, the epochs repeat), so a short curve's last slope
        would promise too much. Otherwise the nearest two points' slope carries on."""
        last_tokens, last_ppl = max(self.curve)
        if longest is not None and tokens > last_tokens and max(longest.curve)[0] > last_tokens:
            return last_ppl * longest.predicted(tokens) / longest.predicted(last_tokens)
        points = sorted(self.curve)
        logs = [(math.log(t), math.log(p)) for t, p in points]
        x = math.log(max(tokens, 1.0))
        i = next((k for k in range(1, len(logs) - 1) if x < logs[k][0]), len(logs) - 1)
        (x0, y0), (x1, y1) = logs[i - 1], logs[i]
        return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


# Measured by bench/levers.py (README, "Levers at fixed training tokens"; AMD EPYC, 2 cores):
# pipelines/tang.yaml's train stage with one layer (`shipped+shallow`) at each width, Tang test
# perplexity on the whole test split after each budget of training tokens.
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(1, 256, 32, ((3_000_000, 102.45), (5_000_000, 91.57), (10_000_000, 81.09),
                           (20_000_000, 78.50))),
    Candidate(1, 384, 32, ((3_000_000, 96.42), (5_000_000, 87.38), (10_000_000, 75.47))),
    Candidate(1, 512, 32, ((3_000_000, 92.82), (5_000_000, 84.99), (10_000_000, 79.67))),
)
# Left out, as the study found them no better per token and no faster: two layers (2 × 256:
# 124.5, 106.0, 91.5 at 3M, 5M, 10M; 2 × 384: 115.6, 99.6, 86.2), three layers (155.9, 124.9
# at 3M, 5M), and batch 16 (1 × 256: 102.5, 94.1 at 3M, 5M).


@dataclass
class Choice:
    """The picked candidate, what every candidate was predicted to reach, and why."""

    picked: Candidate
    rows: list[dict[str, Any]]     # per candidate: tokens, predicted perplexity, tokens/s
    budget: str                    # "5,000,000 tokens" or "600 s"
    probe_seconds: float | None = None

    def lines(self) -> list[str]:
        head = (f"size: {self.picked.label} (--size auto: of the candidates, the lowest "
                f"predicted Tang test perplexity in {self.budget})")
        shown = []
        for row in self.rows:
            speed = f"{row['tokens_per_s']:,.0f} tok/s → " if row.get("tokens_per_s") else ""
            shape = f"{row['layers']}×{row['width']}×{row['batch']}"
            shown.append(f"{shape}: {speed}{row['tokens'] / 1e6:.1f}M tokens → "
                         f"{row['predicted']:.1f}")
        probe = (f"probe {self.probe_seconds:.0f} s; " if self.probe_seconds is not None
                 else "")
        return [head, f"size: {probe}" + " · ".join(shown)]

    def record(self) -> dict[str, Any]:
        return {"layers": self.picked.layers, "width": self.picked.width,
                "batch": self.picked.batch, "budget": self.budget,
                "candidates": self.rows, "probe_seconds": self.probe_seconds}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Choice:
        """A saved choice (``record``), as a resumed run keeps it."""
        picked = Candidate(record["layers"], record["width"], record["batch"], ())
        return cls(picked, record["candidates"], record["budget"], record["probe_seconds"])


def sized(config, candidate: Candidate):
    """``config`` (a TrainConfig) with the candidate's depth, width and batch."""
    model = replace(config.model, layers=candidate.layers, emb_size=candidate.width,
                    hidden_size=candidate.width)
    return replace(config, model=model, batch_size=candidate.batch)


def choose(config, rate: Callable[[Any], float] | None,
           candidates: tuple[Candidate, ...] | None = None) -> Choice:
    """Pick the candidate predicted to end lowest within the budget: ``config.max_tokens``,
    or ``config.max_time`` × the tokens/s that ``rate(sized config)`` measures, whichever is
    smaller. ``rate`` is called only with a time budget."""
    candidates = CANDIDATES if candidates is None else candidates
    if not candidates:
        raise LMError("--size auto has no measured candidates: give --emb-size, "
                      "--hidden-size and --batch-size instead")
    if not (config.max_tokens or config.max_time):
        raise LMError("--size auto picks the size for a budget: add --max-time SECONDS or "
                      "--max-tokens N, or drop --size auto")
    longest = max(candidates, key=lambda c: max(c.curve)[0])
    rows = []
    for candidate in candidates:
        row: dict[str, Any] = {"layers": candidate.layers, "width": candidate.width,
                               "batch": candidate.batch}
        tokens = float(config.max_tokens or math.inf)
        if config.max_time and rate is not None:
            row["tokens_per_s"] = rate(sized(config, candidate))
            tokens = min(tokens, row["tokens_per_s"] * config.max_time
                         * (1 - VALIDATION_SHARE))
        row["tokens"] = tokens
        row["predicted"] = candidate.predicted(tokens, longest)
        rows.append(row)
    best = min(range(len(rows)), key=lambda k: rows[k]["predicted"])
    budget = (f"{config.max_time:g} s" if config.max_time and rate is not None
              else f"{config.max_tokens:,} tokens")
    return Choice(candidates[best], rows, budget)
