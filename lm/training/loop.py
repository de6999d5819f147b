"""The ``train`` stage: one readable loop, top to bottom.

Truncated BPTT over the training stream with the hidden state carried and detached, gradient
clipping, Adam or SGD with a learning-rate drop when validation stops improving, the best
weights kept, and a resumable checkpoint written periodically and on Ctrl-C/SIGTERM. The loop
never waits on the device inside a step: losses are summed on the device and read every
``log_every`` steps.

Speed, without changing what is learnt: bf16 autocast where the hardware multiplies bf16 fast
(CUDA GPUs; CPUs with AMX), with fp32 weights, optimizer and loss; cuDNN's fused RNNs on GPU;
the token stream moved to the device once (or, when too large, pinned and each window copied
ahead asynchronously); a full softmax on the CPU computed in one reused buffer; optional
``torch.compile``; an optional adaptive softmax for large vocabularies.

AWD-LSTM options: variable BPTT (``variable_bptt``, with the learning rate scaled by each
window's length), AR/TAR activation regularisation and NT-ASGD (``asgd``: once validation has
not beaten the best of all but the last ``nonmono`` evaluations, keep a running average of the
weights from then on, and validate and save the average).

Under ``torchrun --nproc_per_node N`` it trains with DistributedDataParallel (gloo on CPU, NCCL
on GPU): the batch's rows are split among the ranks, gradients averaged, and only rank 0
validates and writes checkpoints and the artifact.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: F401  (tests patch F.cross_entropy through here)

from lm.artifacts import Artifact, Store, fingerprint, write_json
from lm.data.prepare import load_split, split_characters
from lm.errors import LMError
from lm.evaluation.perplexity import evaluate
from lm.models import rnn
from lm.runtime import PRECISIONS, pick_device, pick_precision, reuse_freed_memory
from lm.training import checkpoint as ckpt
from lm.training.batching import Schedule, batchify

# Token streams up to this size live on the GPU whole; larger ones are fed window by window.
DEVICE_RESIDENT_BYTES = 2 << 30


@dataclass
class TrainConfig:
    cell: str = "lstm"
    layers: int = 2
    emb_size: int = 256
    hidden_size: int = 256
    dropout: float = 0.2
    tied: bool = False
    bptt: int = 64
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_decay: float = 0.25
    weight_decay: float = 0.0
    clip: float = 0.25
    epochs: int = 10
    max_steps: int | None = None
    max_time: float | None = None
    eval_every: int | None = None
    eval_tokens: int | None = None
    checkpoint_every: int = 500
    log_every: int = 20
    seed: int = 0
    device: str = "auto"
    # Speed (the same learning, faster).
    softmax: str = "full"
    cutoffs: list[int] | None = None
    precision: str = "auto"
    compile: bool = False
    impl: str = "fused"
    threads: int | None = None
    # AWD-LSTM regularisation and optimisation.
    locked_dropout: bool = False
    dropout_input: float | None = None
    dropout_hidden: float | None = None
    dropout_embed: float = 0.0
    weight_drop: float = 0.0
    variable_bptt: bool = False
    ar: float = 0.0
    tar: float = 0.0
    asgd: bool = False
    nonmono: int = 5

    def check(self) -> None:
        positive = {"--bptt": self.bptt, "--batch-size": self.batch_size, "--epochs": self.epochs,
                    "--checkpoint-every": self.checkpoint_every, "--log-every": self.log_every,
                    "--nonmono": self.nonmono}
        for flag, value in positive.items():
            if value < 1:
                raise LMError(f"{flag} must be at least 1, not {value}")
        if not self.lr > 0 or math.isnan(self.lr):
            raise LMError(f"--lr must be positive, not {self.lr}")
        if self.clip < 0:
            raise LMError(f"--clip must be ≥ 0 (0 turns clipping off), not {self.clip}")
        if self.optimizer not in ("adam", "sgd"):
            raise LMError(f"--optimizer must be adam or sgd, not {self.optimizer!r}")
        for flag, value in (("--max-steps", self.max_steps), ("--eval-every", self.eval_every),
                            ("--eval-tokens", self.eval_tokens), ("--threads", self.threads)):
            if value is not None and value < 1:
                raise LMError(f"{flag} must be at least 1, not {value}")
        if self.max_time is not None and not self.max_time > 0:
            raise LMError(f"--max-time must be positive seconds, not {self.max_time}")
        if self.precision not in PRECISIONS:
            raise LMError(f"--precision must be auto, fp32 or bf16, not {self.precision!r}")
        for flag, value in (("--ar", self.ar), ("--tar", self.tar)):
            if value < 0:
                raise LMError(f"{flag} must be ≥ 0, not {value}")
        self.model_config(1 << 30).check()  # the model's own flags; the vocabulary comes later

    def model_config(self, vocab_size: int) -> rnn.ModelConfig:
        cutoffs = self.cutoffs
        if self.softmax == "adaptive" and cutoffs and vocab_size <= max(cutoffs):
            raise LMError(f"--cutoffs {','.join(map(str, cutoffs))} must stay below the "
                          f"vocabulary size ({vocab_size})")
        return rnn.ModelConfig(
            vocab_size, self.cell, self.layers, self.emb_size, self.hidden_size, self.dropout,
            self.tied, softmax=self.softmax,
            cutoffs=list(cutoffs) if cutoffs else None, impl=self.impl,
            locked_dropout=self.locked_dropout, dropout_input=self.dropout_input,
            dropout_hidden=self.dropout_hidden, dropout_embed=self.dropout_embed,
            weight_drop=self.weight_drop)


# Fields added after the first release: left out of the fingerprint while at their defaults,
# so models trained before them are still found in the cache.
_LATER_FIELDS = ("softmax", "cutoffs", "precision", "compile", "impl", "threads",
                 "locked_dropout",
                 "dropout_input", "dropout_hidden", "dropout_embed", "weight_drop",
                 "variable_bptt", "ar", "tar", "asgd", "nonmono")
# A run may be resumed with a different length, device or speed flags, not other learning.
_HOW_LONG = ("epochs", "max_steps", "max_time", "checkpoint_every", "log_every", "device",
             "compile", "threads")


def fingerprint_params(config: TrainConfig) -> dict[str, Any]:
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return {k: v for k, v in asdict(config).items()
            if k not in _LATER_FIELDS or v != defaults[k]}


class _Stop:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so it can checkpoint and exit."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Interrupted(Exception):
    """Training stopped by a signal after writing a resumable checkpoint."""


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_group: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), world,
                   int(os.environ.get("LOCAL_RANK", "0")))

    def start(self, device: torch.device) -> None:
        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.started_group = True

    def stop(self) -> None:
        if self.started_group and dist.is_initialized():
            dist.destroy_process_group()

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean over ranks, in place (identity when alone)."""
        if self.active:
            dist.all_reduce(tensor)
            tensor /= self.world
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        if not self.active:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def from_main(self, values: list[float], device: torch.device) -> list[float]:
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.broadcast(tensor, 0)
        return tensor.tolist()

    def gather_rows(self, hidden: rnn.Hidden) -> rnn.Hidden:
        """Every rank's rows of the hidden state, in rank order (for the checkpoint)."""
        if not self.active:
            return hidden
        parts = hidden if isinstance(hidden, tuple) else (hidden,)
        whole = []
        for part in parts:
            pieces = [torch.empty_like(part) for _ in range(self.world)]
            dist.all_gather(pieces, part.contiguous())
            whole.append(torch.cat(pieces, dim=1))
        return tuple(whole) if isinstance(hidden, tuple) else whole[0]

    def own_rows(self, hidden: rnn.Hidden) -> rnn.Hidden:
        if not self.active:
            return hidden
        parts = hidden if isinstance(hidden, tuple) else (hidden,)
        mine = [p.chunk(self.world, dim=1)[self.rank].contiguous() for p in parts]
        return tuple(mine) if isinstance(hidden, tuple) else mine[0]


class Feeder:
    """Training windows on the device.

    A stream that fits (every usual corpus) is moved to the device once, and a window is a
    view: no copy per step. A larger one stays in host memory, pinned when the device is a
    GPU, and the next window is copied ahead asynchronously while this one computes.
    """

    def __init__(self, rows: torch.Tensor, device: torch.device,
                 resident_bytes: int = DEVICE_RESIDENT_BYTES) -> None:
        self.device = device
        self.resident = device.type == "cpu" or rows.numel() * 8 <= resident_bytes
        if self.resident:
            self.rows = rows.to(device)
        else:
            self.rows = rows.pin_memory() if device.type == "cuda" else rows
        self._ahead: tuple[tuple[int, int], torch.Tensor] | None = None

    def _copy(self, start: int, length: int) -> torch.Tensor:
        return self.rows[:, start:start + length + 1].to(self.device, non_blocking=True)

    def get(self, start: int, length: int, following: tuple[int, int] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets [B, length] of a window; ``following`` is fetched ahead."""
        if self.resident:
            return (self.rows[:, start:start + length],
                    self.rows[:, start + 1:start + 1 + length])
        if self._ahead is not None and self._ahead[0] == (start, length):
            window = self._ahead[1]
        else:
            window = self._copy(start, length)
        self._ahead = (following, self._copy(*following)) if following else None
        return window[:, :-1], window[:, 1:]


class Averager:
    """The running mean of the weights since averaging began (the A of NT-ASGD)."""

    def __init__(self, params: list[torch.Tensor], count: int = 1,
                 saved: list[torch.Tensor] | None = None) -> None:
        self.params = params
        self.count = count
        self.avg = saved if saved is not None else [p.detach().clone() for p in params]

    def update(self) -> None:
        self.count += 1
        torch._foreach_lerp_(self.avg, [p.detach() for p in self.params], 1.0 / self.count)

    @contextlib.contextmanager
    def swapped_in(self):
        """The model holds the averaged weights inside the block."""
        with torch.no_grad():
            kept = [p.detach().clone() for p in self.params]
            torch._foreach_copy_([p.data for p in self.params], self.avg)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self.params], kept)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"avg.{i}": t for i, t in enumerate(self.avg)}


def train(store: Store, dataset: Artifact, config: TrainConfig, name: str, resume: bool = False,
          use_wandb: bool = True, progress: bool = True, log=print) -> tuple[Artifact, bool]:
    """Train a model on a dataset artifact; returns (model artifact, reused)."""
    config.check()
    params = fingerprint_params(config)
    print_ = fingerprint("model", [dataset], params)
    run_print = fingerprint("run", [dataset], {k: v for k, v in params.items()
                                               if k not in _HOW_LONG})
    if not resume and config.max_time is None:
        cached = store.find_cached("model", name, print_)
        if cached is not None:
            return cached, True
    ranks = Distributed.from_env()
    device = pick_device(config.device)
    if ranks.active and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    ranks.start(device)
    try:
        return _train(store, dataset, config, name, resume, use_wandb and ranks.main,
                      progress and ranks.main, log if ranks.main else (lambda *_: None),
                      params, run_print, device, ranks)
    finally:
        ranks.stop()


def _train(store: Store, dataset: Artifact, config: TrainConfig, name: str, resume: bool,
           use_wandb: bool, progress: bool, log, params: dict[str, Any], run_print: str,
           device: torch.device, ranks: Distributed) -> tuple[Artifact, bool]:
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        # One thread per core by default. On a machine whose cores other programs keep busy,
        # fewer threads (--threads 1) can be many times faster: OpenMP's threads wait for one
        # another at every operation, and one of them is often descheduled.
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // ranks.world))
        reuse_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    autocast_dtype = pick_precision(config.precision, device)
    vocab_size = dataset.metrics["vocab_size"]
    if config.batch_size % ranks.world:
        raise LMError(f"--batch-size {config.batch_size} must divide evenly among the "
                      f"{ranks.world} processes")
    rows_here = config.batch_size // ranks.world
    all_rows = batchify(load_split(dataset, "train"), config.batch_size)
    if all_rows.shape[1] - 1 < config.bptt:
        raise LMError(f"--bptt {config.bptt} is longer than each batch row "
                      f"({all_rows.shape[1] - 1} tokens): lower --bptt or --batch-size")
    feeder = Feeder(all_rows[ranks.rank * rows_here:(ranks.rank + 1) * rows_here], device)
    schedule = Schedule(all_rows.shape[1], config.bptt, config.epochs, config.variable_bptt,
                        config.seed)
    valid_ids = load_split(dataset, "valid")
    if len(valid_ids) == 0:
        log("warning: the dataset has no valid split; validating on the train split")
        valid_ids = load_split(dataset, "train")
    if config.eval_tokens:
        valid_ids = valid_ids[: config.eval_tokens]
    total_steps = schedule.total()
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    model = rnn.RNNLM(config.model_config(vocab_size)).to(device)
    if ranks.active:  # the same initial weights everywhere, other dropout masks on each rank
        torch.manual_seed(config.seed + 1000 * ranks.rank)
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr,
                                    weight_decay=config.weight_decay)

    run_dir = store.root / "runs" / name
    state_dir = run_dir / "checkpoint"
    record: dict[str, Any] = {"step": 0, "best_valid": None, "bad_evals": 0, "history": [],
                              "train_seconds": 0.0, "fingerprint": run_print,
                              "base_lr": config.lr}
    hidden = model.init_hidden(rows_here, device)
    averager: Averager | None = None
    found = ckpt.find_checkpoint(state_dir)
    if resume:
        if found is None:
            raise LMError(f"nothing to resume for {name!r} in {run_dir}: run without --resume")
        saved = json.loads((found / ckpt.STATE).read_text())
        if saved.get("fingerprint") != run_print:
            raise LMError(f"the checkpoint in {run_dir} was made with other data or settings: "
                          "resume with the same flags, or train without --resume")
        record, hidden = ckpt.load_checkpoint(found, model, optimizer, device)
        hidden = ranks.own_rows(hidden)
        record.setdefault("base_lr", optimizer.param_groups[0]["lr"])
        if record.get("asgd_from") is not None:
            extra = ckpt.load_extra(found, device)
            averager = Averager(list(model.parameters()), record["avg_count"],
                                [extra[f"avg.{i}"] for i in range(len(extra))])
        if ranks.active:
            torch.manual_seed(config.seed + 1000 * ranks.rank + record["step"])
        log(f"resuming {name} at step {record['step']}")
    elif found is not None:
        log(f"note: starting {name} afresh; the earlier run's checkpoint is replaced "
            "(use --resume to continue it)")
    run_dir.mkdir(parents=True, exist_ok=True)

    step_module: torch.nn.Module = rnn.TrainingStep(model, config.ar, config.tar)
    if ranks.active:
        from torch.nn.parallel import DistributedDataParallel

        step_module = DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.softmax == "adaptive")
    if config.compile:
        if config.impl == "explicit":
            model.compile_cells()
        else:
            step_module = torch.compile(step_module, dynamic=config.variable_bptt or None)
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype
                else contextlib.nullcontext())

    tracker = _wandb_run(name, params, run_dir) if use_wandb else None
    valid_chars = split_characters(dataset, "valid")

    def run_validation(step: int) -> float:
        nats = ppl = math.nan
        if ranks.main:
            with averager.swapped_in() if averager else contextlib.nullcontext():
                result = evaluate(model, valid_ids, batch_size=10, device=device)
                nats, ppl = result.nats_per_token, result.perplexity
        nats, ppl = ranks.from_main([nats, ppl], device)
        if not math.isfinite(nats):
            raise LMError(
                f"the validation loss became NaN/inf at step {step}: lower --lr (now "
                f"{config.lr}) or set --clip (now {config.clip}); the best checkpoint so far "
                f"is kept in {run_dir}"
            )
        earlier = [h["valid_loss"] for h in record["history"]]
        improved = record["best_valid"] is None or ppl < record["best_valid"]
        if improved:
            record["best_valid"] = ppl
            record["best_step"] = step
            record["bad_evals"] = 0
            if ranks.main:
                with averager.swapped_in() if averager else contextlib.nullcontext():
                    rnn.save(model, run_dir, "best.safetensors")
        else:
            record["bad_evals"] += 1
        note = ""
        if config.asgd and averager is None:
            # NT-ASGD: average once validation is worse than the best but the last `nonmono`.
            if len(earlier) > config.nonmono and nats > min(earlier[:-config.nonmono]):
                start_averaging(step)
                note = " — averaging the weights from here (NT-ASGD)"
        elif not improved:
            record["base_lr"] *= config.lr_decay  # drop the learning rate on a plateau
            for group in optimizer.param_groups:
                group["lr"] *= config.lr_decay
            note = f" — lr now {record['base_lr']:.3g}"
        entry = {"step": step,
                 "tokens": record.get("train_tokens", step * config.batch_size * config.bptt),
                 "train_loss": record.get("last_loss"), "valid_loss": nats,
                 "valid_ppl": ppl, "lr": record["base_lr"],
                 "seconds": record["train_seconds"]}
        if valid_chars and len(valid_ids) == dataset.metrics["splits"]["valid"]["tokens"]:
            entry["valid_bpc"] = nats * len(valid_ids) / math.log(2) / valid_chars
        record["history"].append(entry)
        if tracker:
            tracker.log({k: v for k, v in entry.items() if v is not None}, step=step)
        log(f"step {step}: valid ppl {ppl:.2f}" + (" (best)" if improved else "") + note)
        return ppl

    def start_averaging(step: int) -> None:
        nonlocal averager
        averager = Averager(list(model.parameters()))
        record["asgd_from"] = step
        record["avg_count"] = 1

    def save_state() -> None:
        whole = ranks.gather_rows(hidden)
        if ranks.main:
            if averager:
                record["avg_count"] = averager.count
            ckpt.save_checkpoint(state_dir, model, optimizer, whole, record,
                                 averager.tensors() if averager else None)

    # ---------------------------------------------------------------- the loop
    model.train()
    start_step = record["step"]
    started = time.time()
    window_loss = torch.zeros((), device=device)
    losses = torch.zeros(config.log_every, device=device)
    window_start, window_tokens, tokens_per_s = time.time(), 0, 0.0
    bar = _progress(progress, total_steps, start_step)
    stopped_by: int | None = None
    epoch, index = schedule.locate(start_step)
    windows = schedule.windows(epoch)
    with _Stop() as stop:
        step = start_step
        while step < total_steps:
            if index == 0:
                hidden = model.init_hidden(rows_here, device)
            start, length = windows[index]
            last_of_epoch = index + 1 == len(windows)
            following = (schedule.windows(epoch + 1)[0] if last_of_epoch
                         and epoch + 1 < config.epochs else
                         None if last_of_epoch else windows[index + 1])
            inputs, targets = feeder.get(start, length, following)
            if config.variable_bptt:  # AWD: the step size follows the window's length
                for group in optimizer.param_groups:
                    group["lr"] = record["base_lr"] * length / config.bptt
            hidden = rnn.detach(hidden)
            with autocast:
                objective, loss, hidden = step_module(inputs, targets, hidden)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if config.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            if averager:
                averager.update()
            if autocast_dtype:  # carry the state in fp32 between windows
                hidden = tuple(h.float() for h in hidden) if isinstance(hidden, tuple) \
                    else hidden.float()
            losses[step % config.log_every] = loss.detach()
            window_loss += loss.detach()
            window_tokens += targets.numel() * ranks.world
            record["train_tokens"] = record.get("train_tokens", 0) + targets.numel() * ranks.world
            step += 1
            record["step"] = step
            index += 1
            if last_of_epoch:
                epoch, index = epoch + 1, 0
                windows = schedule.windows(epoch) if epoch < config.epochs else windows

            logged = step % config.log_every == 0 or step == total_steps
            if logged:
                count = (step - 1) % config.log_every + 1
                ranks.mean(losses)
                ranks.mean(window_loss)
                recent = losses[:count]
                if not bool(torch.isfinite(recent).all()):
                    bad = step - count + int((~torch.isfinite(recent)).nonzero()[0])
                    raise LMError(
                        f"the training loss became NaN/inf at step {bad + 1}: lower --lr "
                        f"(now {config.lr}) or set --clip (now {config.clip}); the best "
                        f"checkpoint so far is kept in {run_dir}"
                    )
                mean_loss = float(window_loss) / count
                window_loss.zero_()
                now = time.time()
                tokens_per_s = window_tokens / max(now - window_start, 1e-9)
                record["train_seconds"] += now - window_start
                window_start, window_tokens = now, 0
                record["last_loss"] = mean_loss
                if tracker:
                    tracker.log({"train_loss": mean_loss, "tokens_per_s": tokens_per_s}, step=step)
                bar.update(step, mean_loss, tokens_per_s)
            evaluated = False
            if ((config.eval_every and step % config.eval_every == 0)
                    or (not config.eval_every and last_of_epoch) or step == total_steps):
                paused = time.time()
                run_validation(step)
                evaluated = True
                window_start += time.time() - paused  # validation is not training time
            if step % config.checkpoint_every == 0:
                save_state()
            # Alone, stop checks are free; under DDP every rank must agree, at log steps.
            if ranks.active and not logged:
                continue
            if ranks.any(stop.signal is not None, device):
                stopped_by = stop.signal or signal.SIGTERM
                break
            out_of_time = bool(config.max_time and time.time() - started > config.max_time)
            if ranks.any(out_of_time, device):
                if not evaluated:
                    paused = time.time()
                    run_validation(step)
                    window_start += time.time() - paused
                break
    bar.close()
    record["train_seconds"] += time.time() - window_start
    save_state()
    if tracker:
        tracker.finish()
    if stopped_by is not None:
        raise Interrupted(f"stopped by signal {stopped_by} at step {record['step']}; "
                          f"resume with: lm train {dataset.name} --name {name} --resume")

    ref = None
    if ranks.main:
        ref = _write_model(store, dataset, config, name, params, record, schedule, run_dir,
                           device)
    if ranks.active:
        shared = [ref]
        dist.broadcast_object_list(shared, src=0)
        ref = shared[0]
    return store.resolve(ref, "model"), False


def _write_model(store: Store, dataset: Artifact, config: TrainConfig, name: str,
                 params: dict[str, Any], record: dict[str, Any], schedule: Schedule,
                 run_dir: Path, device: torch.device) -> str:
    seconds = record["train_seconds"]
    train_tokens = record.get("train_tokens", record["step"] * config.batch_size * config.bptt)
    epoch, index = schedule.locate(record["step"])
    epochs = epoch + index / max(schedule.per_epoch(epoch), 1)
    with store.create("model", name, [dataset], params) as pending:
        model_best = rnn.load(run_dir, "best.safetensors", device="cpu")
        rnn.save(model_best, pending.path)
        (pending.path / "tokenizer.json").write_bytes(dataset.file("tokenizer.json").read_bytes())
        write_json(pending.path / "history.json", record["history"])
        _plot_curve(record["history"], pending.path / "curve.png", name)
        pending.metrics = {
            "best_valid_ppl": record["best_valid"],
            "best_step": record.get("best_step"),
            "steps": record["step"],
            "epochs": epochs,
            "train_tokens": train_tokens,
            "train_seconds": seconds,
            "tokens_per_s": train_tokens / max(seconds, 1e-9),
            "parameters": sum(p.numel() for p in model_best.parameters()),
            "device": str(device),
        }
        if record.get("asgd_from") is not None:
            pending.metrics["asgd_from"] = record["asgd_from"]
        pending.extra["level"] = dataset.manifest.get("level")
        pending.extra["run_dir"] = str(run_dir)
    return pending.extra["ref"]


def _wandb_run(name: str, params: dict, run_dir: Path):
    """A wandb run: online if the user is logged in, offline (local files) otherwise."""
    try:
        import wandb
    except ImportError:
        return None
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or _netrc_has_wandb()
    mode = os.environ.get("WANDB_MODE") or ("online" if logged_in else "offline")
    try:
        return wandb.init(project="lm", name=name, config=params, dir=str(run_dir), mode=mode,
                          reinit="finish_previous")
    except Exception as exc:  # a logging failure must not stop training
        print(f"warning: wandb disabled ({str(exc).splitlines()[0][:120]})")
        return None


def _netrc_has_wandb() -> bool:
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def _plot_curve(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["valid_loss"] for h in history], "o-", label="valid")
    train = [(h["step"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), "s--", label="train (last window)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"{title}: training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class _progress:
    """A rich progress bar with loss, perplexity and tokens/s, or nothing."""

    def __init__(self, enabled: bool, total: int, completed: int) -> None:
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]} ppl {task.fields[ppl]} "
                           "{task.fields[speed]} tok/s"),
                TimeElapsedColumn(), TimeRemainingColumn(),
            )
            self.task = self.bar.add_task("train", total=total, completed=completed,
                                          loss="-", ppl="-", speed="-")
            self.bar.start()

    def update(self, step: int, loss: float, speed: float) -> None:
        if self.bar:
            self.bar.update(self.task, completed=step, loss=f"{loss:.3f}",
                            ppl=f"{math.exp(min(loss, 50)):.1f}", speed=f"{speed:,.0f}")

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
