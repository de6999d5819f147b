"""``--size auto``: the study's curves predict each candidate's perplexity at its own token
count, the lowest wins; with a time budget a probe of each candidate's real step on this
machine turns seconds into tokens. The choice is printed first and recorded."""

import json
import math

import pytest

from lm.errors import LMError
from lm.settings import fingerprint_params
from lm.training import sizing
from lm.training.loop import Run, TrainConfig, train
from lm.training.sizing import Candidate, choose

SMALL = Candidate(2, 256, 32, ((1_000_000, 200.0), (4_000_000, 100.0)))
LARGE = Candidate(1, 512, 16, ((1_000_000, 160.0), (4_000_000, 90.0)))


def test_prediction_is_log_log_between_points_and_beyond():
    assert SMALL.predicted(1_000_000) == pytest.approx(200.0)
    assert SMALL.predicted(2_000_000) == pytest.approx(200.0 * 0.5 ** 0.5)  # halfway in log
    assert SMALL.predicted(16_000_000) == pytest.approx(50.0)  # the same slope on
    assert SMALL.predicted(250_000) == pytest.approx(400.0)    # and back
    three = Candidate(1, 1, 1, ((1, 100.0), (10, 50.0), (100, 40.0)))
    assert three.predicted(1000) == pytest.approx(32.0)  # beyond: the last two points' slope


def test_past_its_last_budget_a_short_curve_follows_the_longest_ones_shape():
    """The long curve falls 160 → 120 from 2M to 8M; the short one, measured to 2M, falls by
    that ratio (80 → 60), not by its own last slope (which would say 51.2)."""
    short = Candidate(1, 1, 1, ((1_000_000, 100.0), (2_000_000, 80.0)))
    long = Candidate(1, 2, 1, ((1_000_000, 200.0), (2_000_000, 160.0), (8_000_000, 120.0)))
    assert short.predicted(8_000_000) == pytest.approx(51.2)
    assert short.predicted(8_000_000, long) == pytest.approx(60.0)
    assert short.predicted(1_500_000, long) == pytest.approx(short.predicted(1_500_000))
    assert long.predicted(16_000_000, long) == pytest.approx(long.predicted(16_000_000))
    choice = choose(TrainConfig.of(max_tokens=8_000_000, size="auto"), None,
                    candidates=(short, long))
    assert [round(row["predicted"], 1) for row in choice.rows] == [60.0, 120.0]


def test_a_token_budget_picks_by_the_curves_alone():
    config = TrainConfig.of(max_tokens=2_000_000, size="auto")
    choice = choose(config, rate=None, candidates=(SMALL, LARGE))
    assert choice.picked is LARGE and choice.budget == "2,000,000 tokens"
    assert [row["tokens"] for row in choice.rows] == [2_000_000, 2_000_000]
    sized = sizing.sized(config, choice.picked)
    assert (sized.model.layers, sized.model.emb_size, sized.model.hidden_size,
            sized.batch_size) == (1, 512, 512, 16)


def test_a_time_budget_turns_each_candidates_speed_into_tokens():
    """The large one reads a quarter of the small one's tokens: the small one wins."""
    speeds = {256: 10_000.0, 512: 2_500.0}
    config = TrainConfig.of(max_time=400, size="auto")
    choice = choose(config, rate=lambda c: speeds[c.model.hidden_size],
                    candidates=(SMALL, LARGE))
    tokens = [row["tokens"] for row in choice.rows]
    assert tokens == pytest.approx([s * 400 * (1 - sizing.VALIDATION_SHARE)
                                    for s in speeds.values()])
    assert choice.picked is SMALL
    assert choice.rows[1]["predicted"] == pytest.approx(LARGE.predicted(tokens[1]))
    head, detail = choice.lines()
    assert head.startswith("size: 2×256, batch 32 (--size auto") and "400 s" in head
    assert "2×256×32: 10,000 tok/s → 3.9M tokens → " in detail
    # a token budget that ends sooner caps the tokens
    capped = choose(TrainConfig.of(max_time=400, max_tokens=1_000_000, size="auto"),
                    rate=lambda c: speeds[c.model.hidden_size], candidates=(SMALL, LARGE))
    assert capped.rows[0]["tokens"] == 1_000_000 and capped.picked is LARGE


def test_auto_needs_a_budget_and_candidates():
    with pytest.raises(LMError, match="--size auto picks the size for a budget"):
        choose(TrainConfig.of(size="auto"), None, candidates=(SMALL,))
    with pytest.raises(LMError, match="no measured candidates"):
        choose(TrainConfig.of(size="auto", max_tokens=5), None, candidates=())


def test_the_shipped_candidates_are_measured_curves():
    assert len(sizing.CANDIDATES) >= 2
    for candidate in sizing.CANDIDATES:
        assert len(candidate.curve) >= 2
        tokens = [t for t, _ in candidate.curve]
        assert tokens == sorted(set(tokens))
        assert all(math.isfinite(p) and p > 1 for _, p in candidate.curve)


def test_the_measured_curves_favour_width_per_token_and_speed_per_second():
    """At a fixed 3M tokens the widest network wins (92.8, measured); in 600 s at this 2-core
    CPU's speeds the middle one does (9.4M tokens → 76.4), and on one core the narrowest."""
    by_tokens = choose(TrainConfig.of(max_tokens=3_000_000, size="auto"), None)
    assert (by_tokens.picked.layers, by_tokens.picked.width) == (1, 512)
    two_cores = {256: 27_000.0, 384: 16_200.0, 512: 10_000.0}
    by_time = choose(TrainConfig.of(max_time=600, size="auto"),
                     rate=lambda c: two_cores[c.model.hidden_size])
    assert by_time.picked.width == 384
    assert [round(row["predicted"], 1) for row in by_time.rows] == [79.4, 76.4, 83.8]
    one_core = {256: 15_000.0, 384: 8_500.0, 512: 5_300.0}
    slow = choose(TrainConfig.of(max_time=600, size="auto"),
                  rate=lambda c: one_core[c.model.hidden_size])
    assert slow.picked.width == 256


def test_a_timed_run_probes_prints_first_and_records_the_choice(data, monkeypatch):
    """Two tiny candidates; the probe times the real step of each (0.05 s); whichever the
    curves favour at the measured speeds is trained, and its sizes are the model's."""
    store, artifact = data
    tiny = (Candidate(1, 8, 2, ((100, 30.0), (10_000, 20.0))),
            Candidate(2, 12, 4, ((100, 29.0), (10_000, 19.0))))
    monkeypatch.setattr(sizing, "CANDIDATES", tiny)
    monkeypatch.setattr(sizing, "PROBE_SECONDS", 0.05)
    probed: list[int] = []
    real_probe = Run.probe

    def counting(self, seconds, warmup=2):
        probed.append(self.config.model.hidden_size)
        return real_probe(self, seconds, warmup)

    monkeypatch.setattr(Run, "probe", counting)
    said: list[str] = []
    config = TrainConfig.of(size="auto", max_time=2, layers=1, bptt=8, device="cpu",
                            threads=1, max_steps=6, emb_size=99, hidden_size=99)
    model, _ = train(store, artifact, config, "m", use_wandb=False, progress=False,
                     log=said.append)
    assert probed == [8, 12]
    assert said[0].startswith("size: ") and said[1].startswith("size: probe ")
    assert said[2].startswith("output layer:")
    record = model.metrics["size_auto"]
    picked = record["width"]
    assert picked in (8, 12) and [r["width"] for r in record["candidates"]] == [8, 12]
    assert all(r["tokens_per_s"] > 0 for r in record["candidates"])
    saved = json.loads(model.file("config.json").read_text())
    assert saved["emb_size"] == saved["hidden_size"] == picked
    assert saved["layers"] == record["layers"] == {8: 1, 12: 2}[picked]
    # the fingerprint's parameters: --size auto and the sizes it chose
    assert model.params["size"] == "auto"
    assert (model.params["hidden_size"], model.params["batch_size"]) == (picked,
                                                                          record["batch"])
    assert model.params == fingerprint_params(
        sizing.sized(model_config(config, model),
                     Candidate(record["layers"], picked, record["batch"], ())))


def model_config(config, model):
    """The run's config as train() fingerprints it: the output layer picked, sizes aside."""
    from dataclasses import replace

    saved = json.loads(model.file("config.json").read_text())
    return replace(config, model=replace(config.model, softmax=saved["softmax"],
                                         cutoffs=saved["cutoffs"]))


def test_a_resumed_run_keeps_its_choice_without_probing(data, monkeypatch):
    store, artifact = data
    tiny = (Candidate(1, 8, 2, ((100, 30.0), (10_000, 20.0))),
            Candidate(1, 12, 4, ((100, 40.0), (10_000, 30.0))))
    monkeypatch.setattr(sizing, "CANDIDATES", tiny)
    monkeypatch.setattr(sizing, "PROBE_SECONDS", 0.05)
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    config = TrainConfig.of(size="auto", max_time=2, layers=1, bptt=8, device="cpu",
                            threads=1, max_steps=4)
    first, _ = train(store, artifact, config, "m", **quiet)
    assert first.metrics["size_auto"]["width"] == 8
    monkeypatch.setattr(Run, "probe", lambda *a, **k: pytest.fail("probed on resume"))
    said: list[str] = []
    longer = TrainConfig.of(size="auto", max_time=2, layers=1, bptt=8, device="cpu",
                            threads=1, max_steps=8)
    resumed, _ = train(store, artifact, longer, "m", resume=True, use_wandb=False,
                       progress=False, log=said.append)
    assert resumed.metrics["steps"] == 8
    assert said[0].startswith("size: 1×8, batch 2")
    assert resumed.metrics["size_auto"]["width"] == 8


def test_under_torchrun_a_time_budget_is_refused_before_any_probe(data, monkeypatch):
    """Each rank would probe on its own and could choose differently: refused, with the fix."""
    store, artifact = data
    monkeypatch.setattr(sizing, "CANDIDATES", (SMALL, LARGE))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(Run, "probe", lambda *a, **k: pytest.fail("probed under torchrun"))
    config = TrainConfig.of(size="auto", max_time=2, layers=1, bptt=8, device="cpu")
    with pytest.raises(LMError, match="under torchrun give --max-tokens"):
        train(store, artifact, config, "m", use_wandb=False, progress=False)


def test_resuming_a_run_sized_by_hand_with_auto_is_refused(data, monkeypatch):
    """Its checkpoint has the sizes it was given; a fresh choice could differ from them."""
    store, artifact = data
    quiet = {"use_wandb": False, "progress": False, "log": lambda *_: None}
    given = TrainConfig.of(max_steps=2, layers=1, bptt=8, device="cpu", threads=1,
                           emb_size=8, hidden_size=8, batch_size=2)
    train(store, artifact, given, "m", **quiet)
    monkeypatch.setattr(Run, "probe", lambda *a, **k: pytest.fail("probed"))
    auto = TrainConfig.of(size="auto", max_time=2, max_steps=4, layers=1, bptt=8,
                          device="cpu", threads=1)
    with pytest.raises(LMError, match="did not pick its size with --size auto"):
        train(store, artifact, auto, "m", resume=True, **quiet)
