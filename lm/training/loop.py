"""The ``train`` stage: one readable loop, top to bottom.

Truncated BPTT over the training stream with the hidden state carried and detached, gradient
clipping (the norms before it recorded by :mod:`lm.training.telemetry`), Adam or SGD with the
learning-rate policy of :mod:`lm.training.optimization`, the best weights kept, and a
resumable checkpoint written periodically and on Ctrl-C/SIGTERM. The loop never waits on the
device inside a step: losses and gradient norms are kept on the device and read every
``log_every`` steps.

Speed, without changing what is learnt, comes from the modules around the loop: the device,
bf16 autocast and the allocator (:mod:`lm.runtime`), windows on the device
(:mod:`lm.training.batching`), DDP under ``torchrun`` (:mod:`lm.training.distributed`),
optional ``torch.compile`` and the adaptive softmax. Validation, averaging and reporting are
each a method or a module of their own.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import replace
from typing import Any

import torch

from lm.artifacts import Artifact, Store, fingerprint, write_json
from lm.data.prepare import load_split, split_characters
from lm.errors import LMError
from lm.evaluation.perplexity import evaluate
from lm.models import rnn
from lm.models.state import RecurrentState
from lm.runtime import pick_device, pick_precision, reuse_freed_memory
from lm.settings import fingerprint_params, resumable_names
from lm.training import checkpoint as ckpt
from lm.training import sizing, telemetry
from lm.training.batching import BatchRamp, Feeder, Schedule, batchify
from lm.training.config import TrainConfig
from lm.training.distributed import Distributed
from lm.training.optimization import (
    Averager,
    LearningRate,
    averaged,
    budget_progress,
    make_optimizer,
)
from lm.training.reporting import LossMeter, ProgressBar, plot_curve, wandb_run
from lm.training.signals import Interrupted, StopSignals
from lm.training.state import TrainState
from lm.training.telemetry import GradientMeter, clip_and_measure

__all__ = ["Interrupted", "TrainConfig", "train"]


def train(store: Store, dataset: Artifact, config: TrainConfig, name: str, resume: bool = False,
          use_wandb: bool = True, progress: bool = True, log=print) -> tuple[Artifact, bool]:
    """Train a model on a dataset artifact; returns (model artifact, reused)."""
    config.check()
    ranks = Distributed.from_env()
    say = log if ranks.main else (lambda *_: None)
    device = _pick_device(config, ranks)
    config, layer = _pick_output_layer(config, dataset)
    choice = None
    if config.size == "auto":  # first, so the probe times the output layer that will train
        config, choice = _pick_size(store, dataset, config, name, device, ranks, resume)
        for line in choice.lines():
            say(line)
    say(layer)
    params = fingerprint_params(config)
    if not resume and config.max_time is None:
        cached = store.find_cached("model", name, fingerprint("model", [dataset], params))
        if cached is not None:
            return cached, True
    ranks.start(device)
    run = None
    try:
        run = Run(store, dataset, config, name, device, ranks, say)
        run.sizing = choice
        run.begin(resume)
        run.loop(ProgressBar(progress and ranks.main, run.total_steps, run.state.step),
                 wandb_run(name, params, run.run_dir) if use_wandb and ranks.main else None)
        ref = run.write_model(params) if ranks.main else None
        return store.resolve(ranks.object_from_main(ref), "model"), False
    finally:
        if run is not None:  # DDP holds the process group: it ends with the group, not
            run.step_module = None  # whenever the collector finds the run (its threads too)
        ranks.stop()


def _pick_device(config: TrainConfig, ranks: Distributed) -> torch.device:
    device = pick_device(config.device)
    if ranks.active and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    return device


def _pick_size(store: Store, dataset: Artifact, config: TrainConfig, name: str,
               device: torch.device, ranks: Distributed, resume: bool
               ) -> tuple[TrainConfig, sizing.Choice]:
    """``--size auto`` decided before the fingerprint: for a token budget from the study's
    curves alone; for a time budget with a probe of each candidate's own training step here.
    A resumed run keeps the choice its run made (saved beside its checkpoint)."""
    saved = store.root / "runs" / name / sizing.SAVED
    if resume and saved.is_file():
        choice = sizing.Choice.from_record(json.loads(saved.read_text()))
        return sizing.sized(config, choice.picked), choice
    if resume and saved.parent.is_dir():
        raise LMError(f"{name}'s run did not pick its size with --size auto: resume it "
                      "without --size auto, with the sizes it was trained with")
    if config.max_time and not config.max_tokens and ranks.active:
        raise LMError("--size auto with --max-time times each candidate in one process: under "
                      "torchrun give --max-tokens, or the sizes (--emb-size, --hidden-size, "
                      "--batch-size)")

    def rate(candidate: TrainConfig) -> float:
        probe = Run(store, dataset, candidate, name, device, ranks, lambda *_: None)
        return probe.probe(sizing.PROBE_SECONDS)

    started = time.perf_counter()
    choice = sizing.choose(config, rate if config.max_time else None)
    if config.max_time:
        choice.probe_seconds = time.perf_counter() - started
    return sizing.sized(config, choice.picked), choice


def usable_cores() -> int:
    """The cores this process may run on (``taskset`` and cgroup CPU sets narrow them), not
    every core of the machine, which ``os.cpu_count`` counts."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pick_output_layer(config: TrainConfig, dataset: Artifact) -> tuple[TrainConfig, str]:
    """``--softmax auto`` decided and an adaptive softmax's cutoffs fitted to the train split
    before anything is fingerprinted, so the model's record says what was trained; and the
    line that says so."""
    model = rnn.pick_output_layer(config.model_for(dataset.metrics["vocab_size"]),
                                  load_split(dataset, "train"))
    return replace(config, model=model), rnn.describe_output_layer(model, config.model.softmax)


class Run:
    """One training run: its data, model, optimizer and progress, and the steps it takes."""

    clock = staticmethod(time.time)  # the run's clock (a test may put a fake one here)

    def __init__(self, store: Store, dataset: Artifact, config: TrainConfig, name: str,
                 device: torch.device, ranks: Distributed, log) -> None:
        self.store, self.dataset, self.config, self.name = store, dataset, config, name
        self.device, self.ranks, self.log = device, ranks, log
        self._set_up_runtime()
        self._set_up_data()
        self.model = rnn.RNNLM(config.model_for(dataset.metrics["vocab_size"])).to(device)
        if ranks.active:  # the same initial weights everywhere, other dropout masks on each rank
            torch.manual_seed(config.seed + 1000 * ranks.rank)
        self.optimizer = make_optimizer(self.model, config)
        self.run_dir = store.root / "runs" / name
        learning = {k: v for k, v in fingerprint_params(config).items()
                    if k not in resumable_names(TrainConfig)}
        self.state = TrainState(fingerprint("run", [dataset], learning), config.lr)
        self.lr = LearningRate(self.optimizer, config, self.state)
        self.hidden = self.model.init_hidden(self.rows_here, device)
        self.averager: Averager | None = None
        self.meter = LossMeter(config.log_every, device)
        self.grads = GradientMeter(config.log_every, device)
        self.sizing: sizing.Choice | None = None  # --size auto's choice, when it made one

    def _set_up_runtime(self) -> None:
        config, device = self.config, self.device
        torch.manual_seed(config.seed)
        if device.type == "cpu":
            # One thread per core this process may run on by default. On a machine whose
            # cores other programs keep busy, fewer threads (--threads 1) can be many times
            # faster: OpenMP's threads wait for one another at every operation, and one of
            # them is often descheduled.
            torch.set_num_threads(config.threads
                                  or max(1, usable_cores() // self.ranks.world))
            reuse_freed_memory()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.autocast_dtype = pick_precision(config.precision, device)

    def _set_up_data(self) -> None:
        config, ranks = self.config, self.ranks
        if config.batch_size % ranks.world:
            raise LMError(f"--batch-size {config.batch_size} must divide evenly among the "
                          f"{ranks.world} processes")
        self.rows_here = rows = config.batch_size // ranks.world
        all_rows = batchify(load_split(self.dataset, "train"), config.batch_size)
        if all_rows.shape[1] - 1 < config.bptt:
            raise LMError(f"--bptt {config.bptt} is longer than each batch row "
                          f"({all_rows.shape[1] - 1} tokens): lower --bptt or --batch-size")
        self.feeder = Feeder(all_rows[ranks.rank * rows:(ranks.rank + 1) * rows], self.device)
        self.schedule = Schedule(all_rows.shape[1], config.bptt, config.epochs,
                                 config.variable_bptt, config.seed)
        self.valid_ids = load_split(self.dataset, "valid")
        if len(self.valid_ids) == 0:
            self.log("warning: the dataset has no valid split; validating on the train split")
            self.valid_ids = load_split(self.dataset, "train")
        if config.eval_tokens:
            self.valid_ids = self.valid_ids[: config.eval_tokens]
        self.ramp = (BatchRamp(config.batch_start, config.batch_size, config.batch_ramp,
                               ranks.world) if config.batch_start else None)
        self.epoch_steps = self.schedule.total()
        self.total_steps = min(self.epoch_steps, config.max_steps or math.inf)
        if config.max_tokens:  # every step reads rows × window-length targets
            self.total_steps = min(self.total_steps, self.schedule.steps_for_tokens(
                config.max_tokens, self.ramp.rows if self.ramp else config.batch_size))

    # ------------------------------------------------------------------------ set-up
    def begin(self, resume: bool) -> None:
        """Continue from the checkpoint (with ``resume``), then wrap the step for speed."""
        state_dir = self.run_dir / "checkpoint"
        found = ckpt.find_checkpoint(state_dir)
        if resume:
            self._resume(found)
        elif found is not None:
            self.log(f"note: starting {self.name} afresh; the earlier run's checkpoint is "
                     "replaced (use --resume to continue it)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.sizing and self.ranks.main:  # a resumed run keeps this choice
            write_json(self.run_dir / sizing.SAVED, self.sizing.record())
        config = self.config
        step: torch.nn.Module = rnn.TrainingStep(self.model, config.ar, config.tar)
        step = self.ranks.wrap(step, self.device, config.model.softmax == "adaptive")
        if config.compile:
            if config.model.impl == "explicit":
                self.model.compile_cells()
            else:
                step = torch.compile(step, dynamic=config.variable_bptt or None)
        self.step_module = step
        self.valid_chars = split_characters(self.dataset, "valid")

    def probe(self, seconds: float, warmup: int = 2) -> float:
        """Training tokens/s of this run's own step on this machine: the first windows, timed
        for about ``seconds`` after ``warmup`` steps. It moves the weights, so a Run made for
        a probe is thrown away after it."""
        self.step_module = rnn.TrainingStep(self.model, self.config.ar, self.config.tar)
        windows, tokens, index, start = self.schedule.windows(0), 0, 0, 0.0
        while True:
            if index == warmup:
                tokens, start = 0, self._synced_clock()
            tokens += self.train_step(0, index % len(windows))[1]
            index += 1
            if index > warmup and self._synced_clock() - start >= seconds:
                return tokens / (self._synced_clock() - start)

    def _synced_clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _resume(self, found) -> None:
        if found is None:
            raise LMError(f"nothing to resume for {self.name!r} in {self.run_dir}: run "
                          "without --resume")
        if ckpt.saved_fingerprint(found) != self.state.fingerprint:
            raise LMError(f"the checkpoint in {self.run_dir} was made with other data or "
                          "settings: resume with the same flags, or train without --resume")
        self.state, hidden = ckpt.load_checkpoint(found, self.model, self.optimizer,
                                                  self.device)
        self.lr.state = self.state
        self.state.resumed_at.append(self.state.step)
        self.hidden = self.ranks.own_rows(hidden)
        if self.state.asgd_from is not None:
            extra = ckpt.load_extra(found, self.device)
            self.averager = Averager(list(self.model.parameters()), self.state.avg_count,
                                     [extra[f"avg.{i}"] for i in range(len(extra))])
        if self.ranks.active:
            torch.manual_seed(self.config.seed + 1000 * self.ranks.rank + self.state.step)
        self.log(f"resuming {self.name} at step {self.state.step} "
                 f"(of {self.total_steps})")

    # ------------------------------------------------------------------------ the loop
    def loop(self, bar: ProgressBar, tracker: Any) -> None:
        """Steps until the schedule, --max-steps, --max-tokens or --max-time ends the run, or
        a signal."""
        config, ranks, state = self.config, self.ranks, self.state
        self.model.train()
        self.tracker, started = tracker, self.clock()
        origin = started - state.elapsed_seconds  # the run's clock goes on across resumes
        self.meter = meter = LossMeter(config.log_every, self.device)
        meter.restore(state.step, state.unread_losses)
        self.grads = GradientMeter(config.log_every, self.device)
        self.grads.restore(state.step, state.unread_grad_norms)
        epoch, index = self.schedule.locate(state.step)
        stopped_by: int | None = None
        with StopSignals() as stop:
            while state.step < self.total_steps:
                windows = self.schedule.windows(epoch)
                if index == 0:
                    self.hidden = self.model.init_hidden(self.rows_here, self.device)
                loss, tokens = self.train_step(epoch, index)
                meter.add(state.step, loss, tokens)
                state.step += 1
                state.train_tokens += tokens
                epoch, index = (epoch + 1, 0) if index + 1 == len(windows) else (epoch, index + 1)
                logged = state.step % config.log_every == 0 or state.step == self.total_steps
                if logged:
                    self._report(meter, bar)
                evaluated = self._validate_if_due(index == 0, meter)
                if not ranks.active or logged:  # under DDP every rank must agree, at log steps
                    now = self.clock()
                    state.elapsed_seconds = ranks.from_main([now - origin], self.device)[0]
                if state.step % config.checkpoint_every == 0:
                    self.save()
                if ranks.active and not logged:
                    continue
                if ranks.any(stop.signal is not None, self.device):
                    stopped_by = stop.signal or signal.SIGTERM
                    break
                if ranks.any(self._out_of_time(now - started), self.device):
                    if not evaluated:
                        with meter.paused():
                            self.validate()
                    break
        bar.close()
        self._finish(meter, stopped_by)

    def _out_of_time(self, here: float) -> bool:
        """--max-time: with a budget schedule the run's clock, whose end the rate decays to,
        counts (across resumes); with plateau, as ever, this process's seconds (``here``)."""
        limit = self.config.max_time
        if not limit:
            return False
        if self.lr.follows_budget:
            return self.state.elapsed_seconds >= limit
        return here > limit

    def train_step(self, epoch: int, index: int) -> tuple[torch.Tensor, int]:
        """One window forward and backward, one optimizer step; (loss on device, tokens)."""
        start, length = self.schedule.windows(epoch)[index]
        inputs, targets = self.feeder.get(start, length, self.schedule.following(epoch, index))
        progress = (budget_progress(self.config, self.state, self.epoch_steps)
                    if self.lr.follows_budget else 0.0)
        self.lr.for_window(length, progress)
        rows = self._rows_now()
        inputs, targets = inputs[:rows], targets[:rows]
        hidden = self.hidden.detach().map(lambda part: part[:, :rows])
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype else contextlib.nullcontext())
        with autocast:
            objective, loss, hidden = self.step_module(inputs, targets, hidden)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        norm = clip_and_measure(list(self.model.parameters()), self.config.clip)
        self.grads.add(self.state.step, norm)  # kept on the device, read at logging time
        self.optimizer.step()
        if self.averager:
            self.averager.update()
        hidden = hidden.float() if self.autocast_dtype else hidden  # carry fp32 state
        self.hidden = hidden if rows == self.rows_here else RecurrentState(tuple(
            torch.cat([new, old[:, rows:]], 1) for new, old in zip(
                hidden.parts, self.hidden.parts, strict=True)))  # rows not yet read wait
        return loss, targets.numel() * self.ranks.world

    def _rows_now(self) -> int:
        """This rank's rows for the next step: all of them, or fewer while the batch grows."""
        if self.ramp is None:
            return self.rows_here
        return self.ramp.rows(self.state.train_tokens) // self.ranks.world

    def _report(self, meter: LossMeter, bar: ProgressBar) -> None:
        step = self.state.step
        self.ranks.mean(meter.losses)
        self.ranks.mean(meter.window_loss)
        gradients = self._read_gradients(step)
        bad = meter.first_non_finite(step)
        if bad is not None:
            self._say_if_exploded()
            raise self._diverged("training", bad)
        mean_loss, tokens_per_s, seconds = meter.read(step)
        self.state.train_seconds += seconds
        self.state.last_loss = mean_loss
        if self.tracker:
            self.tracker.log({"train_loss": mean_loss, "tokens_per_s": tokens_per_s,
                              **gradients}, step=step)
        bar.update(step, mean_loss, tokens_per_s)

    def _read_gradients(self, step: int) -> dict[str, float]:
        """Read this window's gradient norms: a window record, and the norms since validation.

        (Under DDP the gradients are averaged before the norm, so every rank has the same.)
        """
        norms = self.grads.read(step)
        if not norms:
            return {}
        state, first = self.state, step - len(norms) + 1
        record = telemetry.window(norms, step, self.config.clip)
        state.grad_windows.append(record)
        validated = state.history[-1]["step"] if state.history else 0
        state.grad_since_eval.extend(n for i, n in enumerate(norms) if first + i > validated)
        return {k: record[k] for k in ("grad_norm", "grad_norm_max", "clip_fraction")}

    def _gradients_since_validation(self) -> dict[str, float | None]:
        """Mean and largest norm and clip fraction of the steps since the last validation."""
        state, step = self.state, self.state.step
        unread = self.grads.unread(step)
        first = step - len(unread) + 1
        validated = state.history[-1]["step"] if state.history else 0
        norms = state.grad_since_eval + [n for i, n in enumerate(unread) if first + i > validated]
        state.grad_since_eval = []
        return telemetry.summary(norms, self.config.clip)

    def _windows_so_far(self) -> list[dict[str, Any]]:
        """The logging windows read so far, and the steps not yet read as a last one (left
        unread in the run's state, so a resumed run continues the same window)."""
        windows = list(self.state.grad_windows)
        unread = self.grads.unread(self.state.step)
        if unread:
            windows.append(telemetry.window(unread, self.state.step, self.config.clip))
        return windows

    def _say_if_exploded(self) -> None:
        """One line if the gradients exploded, the steps not yet read included."""
        found = telemetry.explosion(self._windows_so_far())
        if found is not None:
            self.log(telemetry.explosion_line(found, self.config.clip))

    def _diverged(self, which: str, step: int) -> LMError:
        return LMError(f"the {which} loss became NaN/inf at step {step}: lower --lr (now "
                       f"{self.config.lr}) or set --clip (now {self.config.clip}); the best "
                       f"checkpoint so far is kept in {self.run_dir}")

    def _validate_if_due(self, epoch_ended: bool, meter: LossMeter) -> bool:
        every, step = self.config.eval_every, self.state.step
        if not ((every and step % every == 0) or (not every and epoch_ended)
                or step == self.total_steps):
            return False
        with meter.paused():
            self.validate()
        return True

    # ------------------------------------------------------------------------ validation
    def validate(self) -> float:
        """Validation perplexity; keeps the best weights and applies the lr policy."""
        state, step = self.state, self.state.step
        trained = state.train_seconds + self.meter.seconds_since_read()  # up to this step
        nats = ppl = math.nan
        if self.ranks.main:
            with averaged(self.averager):
                result = evaluate(self.model, self.valid_ids, batch_size=10, device=self.device)
            nats, ppl = result.nats_per_token, result.perplexity
        nats, ppl = self.ranks.from_main([nats, ppl], self.device)
        if not math.isfinite(nats):
            self._say_if_exploded()
            raise self._diverged("validation", step)
        improved = state.improves(ppl)
        if improved:
            state.best_valid, state.best_step = ppl, step
            if self.ranks.main:
                with averaged(self.averager):
                    rnn.save(self.model, self.run_dir, "best.safetensors")
        averaging = self.averager is not None
        note = self.lr.after_validation(improved, averaging)
        if self.lr.should_average(nats, averaging):
            self.averager = Averager(list(self.model.parameters()))
            state.asgd_from, state.avg_count = step, 1
            note = " — averaging the weights from here (NT-ASGD)"
        self._record(nats, ppl, trained)
        self.log(f"step {step}: valid ppl {ppl:.2f}" + (" (best)" if improved else "") + note
                 + f" · {state.train_tokens:,} tokens in {trained:.1f} s")
        return ppl

    def _record(self, nats: float, ppl: float, trained: float) -> None:
        state = self.state
        entry = {"step": state.step, "tokens": state.train_tokens,
                 "train_loss": state.last_loss, "valid_loss": nats, "valid_ppl": ppl,
                 "lr": state.base_lr, "seconds": trained,
                 **self._gradients_since_validation()}
        if (self.valid_chars
                and len(self.valid_ids) == self.dataset.metrics["splits"]["valid"]["tokens"]):
            entry["valid_bpc"] = nats * len(self.valid_ids) / math.log(2) / self.valid_chars
        state.history.append(entry)
        if self.tracker:
            self.tracker.log({k: v for k, v in entry.items() if v is not None}, step=state.step)

    # ------------------------------------------------------------------------ the end
    def save(self) -> None:
        """A resumable checkpoint (rank 0 writes every rank's rows of the hidden state)."""
        whole = self.ranks.gather_rows(self.hidden)
        if self.ranks.main:
            if self.averager:
                self.state.avg_count = self.averager.count
            self.state.unread_losses = self.meter.unread(self.state.step)
            self.state.unread_grad_norms = self.grads.unread(self.state.step)
            ckpt.save_checkpoint(self.run_dir / "checkpoint", self.model, self.optimizer,
                                 whole, self.state,
                                 self.averager.tensors() if self.averager else None)

    def _finish(self, meter: LossMeter, stopped_by: int | None) -> None:
        self.state.train_seconds += meter.seconds_since_read()
        self.save()
        self._say_if_exploded()
        if self.tracker:
            self.tracker.finish()
        if stopped_by is not None:
            raise Interrupted(f"stopped by signal {stopped_by} at step {self.state.step}; "
                              f"resume with: lm train {self.dataset.name} --name {self.name} "
                              "--resume")

    def write_model(self, params: dict[str, Any]) -> str:
        """The model artifact: the best weights, tokenizer, history and curve."""
        state = self.state
        epoch, index = self.schedule.locate(state.step)
        with self.store.create("model", self.name, [self.dataset], params) as pending:
            model_best = rnn.load(self.run_dir, "best.safetensors", device="cpu")
            rnn.save(model_best, pending.path)
            (pending.path / "tokenizer.json").write_bytes(
                self.dataset.file("tokenizer.json").read_bytes())
            write_json(pending.path / "history.json", state.history)
            windows = self._windows_so_far()
            write_json(pending.path / "gradients.json", windows)
            plot_curve(state.history, pending.path / "curve.png", self.name, windows,
                       self.config.clip)
            pending.metrics = {
                "best_valid_ppl": state.best_valid, "best_step": state.best_step,
                "steps": state.step,
                "epochs": epoch + index / max(self.schedule.per_epoch(epoch), 1),
                "train_tokens": state.train_tokens, "train_seconds": state.train_seconds,
                "tokens_per_s": state.train_tokens / max(state.train_seconds, 1e-9),
                "parameters": sum(p.numel() for p in model_best.parameters()),
                "device": str(self.device),
            }
            if state.asgd_from is not None:
                pending.metrics["asgd_from"] = state.asgd_from
            if state.resumed_at:
                pending.metrics["resumed_at"] = state.resumed_at
            if self.sizing:
                pending.metrics["size_auto"] = self.sizing.record()
            pending.extra["level"] = self.dataset.manifest.get("level")
            pending.extra["run_dir"] = str(self.run_dir)
        return pending.extra["ref"]
