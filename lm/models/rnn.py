"""The recurrent language model: embedding → stacked RNN/GRU/LSTM → dropout → softmax.

Weights are saved with safetensors (never pickle) and the configuration as JSON, so a model
can be loaded without running any code from the file.

Options beyond the plain model (all off by default, so a plain config builds what it always
built):

- ``softmax="adaptive"``: ``nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017) — a head with
  the frequent words and one cluster entry per tail, cheaper tails for the rare words. For a
  large word vocabulary it removes most of the softmax's cost. ``forward`` then returns
  log-probabilities instead of logits; ``log_softmax`` of either gives the next-token
  log-probabilities, so callers that take a ``log_softmax`` work with both. With ``tied`` the
  input embedding is adaptive too (``lm.models.adaptive``, Baevski & Auli 2018): it is built
  from the softmax's own head and tail weights, the same Parameters. ``fit_cutoffs`` sets the
  cutoffs from the train split's token frequencies (``adaptive.frequency_cutoffs``).
- ``impl="explicit"``: the recurrence runs through ``lm.models.cells`` (the equations written
  out) instead of cuDNN/oneDNN; the state dict is the same.
- AWD-LSTM regularisation (Merity et al. 2017): ``locked_dropout`` (one dropout mask per
  sequence, shared by all time steps, on the embeddings, between layers and on the output),
  ``dropout_input``/``dropout_hidden`` (their own rates), ``dropout_embed`` (drop whole words
  from the embedding matrix) and ``weight_drop`` (DropConnect on the hidden-to-hidden weights,
  one mask per batch, so cuDNN can still run the recurrence). With either of the last two or
  locked dropout the layers are separate modules, and with tied weights the last layer's
  hidden size is the embedding size (no projection), as in AWD-LSTM.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from lm.errors import LMError
from lm.models.adaptive import AdaptiveInput
from lm.models.adaptive import frequency_cutoffs as frequency_cutoffs
from lm.models.cells import CELLS, ExplicitRNN, cell_spec
from lm.models.state import RecurrentState
from lm.settings import check_settings, comma_ints, setting

SOFTMAXES = ("auto", "full", "adaptive")
# --softmax auto (the default) takes the adaptive softmax from this vocabulary size on, the full
# one below it. Set by bench/speedrun.py: its softmax sweep times both output layers on the
# same network over a range of vocabulary sizes, and its PTB-small and Tang runs check that
# the adaptive softmax loses no test perplexity at equal wall time (README, "Speedrun").
AUTO_ADAPTIVE_FROM = 4000
IMPLS = ("fused", "explicit")

# cuDNN warns on every call when weight drop hands it weights outside its flat buffer.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single")


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``x W^T + b`` without the usual [N, V] temporaries.

    The plain path allocates three [N, V] buffers a step (logits, log-softmax, its gradient);
    for a 33k-word vocabulary each is ~90 MB, which the C allocator maps fresh from the kernel
    every step, and the kernel zeroes every page: on a CPU that alone was ~30% of a step. Here
    one buffer is kept between steps; it receives the logits, is turned into log-probabilities
    in place, and in the backward pass into ``softmax − onehot`` in place, whose products with
    ``x`` and ``W`` give the gradients. The same arithmetic as ``F.cross_entropy(F.linear(..))``
    up to float rounding (the tests check it).
    """

    _spare: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def forward(ctx, x, weight, bias, targets):  # noqa: ANN001, ANN205
        key = (x.shape[0], weight.shape[0], x.dtype, x.device)
        buf = _LinearCrossEntropy._spare.pop(key, None)
        if buf is None:
            buf = torch.empty(key[0], key[1], dtype=x.dtype, device=x.device)
        torch.addmm(bias, x, weight.t(), out=buf)
        torch.ops.aten._log_softmax.out(buf, 1, False, out=buf)
        loss = -buf.gather(1, targets[:, None]).mean()
        ctx.save_for_backward(x, weight, targets)
        ctx.buf = buf
        return loss

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, weight, targets = ctx.saved_tensors
        buf, ctx.buf = ctx.buf, None
        scale = grad / x.shape[0]
        buf.exp_()                                                  # softmax
        buf[torch.arange(x.shape[0], device=buf.device), targets] -= 1  # − onehot
        grad_x = torch.mm(buf, weight).mul_(scale)
        grad_w = torch.mm(buf.t(), x).mul_(scale)
        grad_b = buf.sum(0).mul_(scale)
        _LinearCrossEntropy._spare = {(buf.shape[0], buf.shape[1], buf.dtype, buf.device): buf}
        return grad_x, grad_w, grad_b, None


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _fp32(x: torch.Tensor):
    """Autocast off: the adaptive softmax mixes dtypes it builds itself (fp32) with the
    clusters' outputs, which under autocast would be bf16; its matrices are small."""
    return torch.autocast(x.device.type, enabled=False)


def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         targets: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(F.linear(x, weight, bias), targets)`` for x [N, D], in place."""
    return _LinearCrossEntropy.apply(x, weight, bias, targets)


def default_cutoffs(vocab_size: int) -> list[int]:
    """Adaptive-softmax cluster bounds: a 2,000-word head, then tails growing about five-fold."""
    cutoffs = [c for c in (2000, 10000, 50000, 200000) if c < 0.9 * vocab_size]
    return cutoffs or [max(1, vocab_size // 4)]


def pick_output_layer(config: ModelConfig, train_ids=None) -> ModelConfig:
    """``config`` with ``--softmax auto`` decided by the vocabulary size (adaptive from
    ``AUTO_ADAPTIVE_FROM`` on) and, given the train split's ids, an adaptive softmax's cutoffs
    fitted to its token frequencies (``fit_cutoffs``)."""
    if config.softmax == "auto":
        large = config.vocab_size >= AUTO_ADAPTIVE_FROM
        config = replace(config, softmax="adaptive" if large else "full")
    return config if train_ids is None else fit_cutoffs(config, train_ids)


def describe_output_layer(config: ModelConfig, asked: str) -> str:
    """One line saying which output layer a run trains, and why when ``auto`` chose it."""
    layer = (f"adaptive softmax, cutoffs {','.join(map(str, config.adaptive_cutoffs()))}"
             if config.softmax == "adaptive" else "full softmax")
    if asked != "auto":
        return f"output layer: {layer}"
    side = "≥" if config.softmax == "adaptive" else "<"
    return (f"output layer: {layer} (--softmax auto: a {config.vocab_size:,}-token vocabulary "
            f"{side} {AUTO_ADAPTIVE_FROM:,})")


def fit_cutoffs(config: ModelConfig, train_ids) -> ModelConfig:
    """``config`` with adaptive-softmax cutoffs set from the train split's token frequencies
    (``frequency_cutoffs``), when it has an adaptive softmax and no ``--cutoffs``; otherwise
    ``config`` itself. The cutoffs land in the saved config.json, so loading needs no data."""
    if config.softmax != "adaptive" or config.cutoffs:
        return config
    ids = np.asarray(train_ids).reshape(-1)  # a memory-mapped split: counted block by block
    counts = np.zeros(config.vocab_size, np.int64)
    for start in range(0, len(ids), 1 << 24):
        block = np.bincount(ids[start:start + (1 << 24)], minlength=config.vocab_size)
        counts += block[:config.vocab_size]
    return replace(config, cutoffs=frequency_cutoffs(counts))


def _dropout_rate(value: float) -> bool:
    return 0.0 <= value < 1.0


@dataclass
class ModelConfig:
    """The network's shape and regularisation; its settings are ``lm train`` flags."""

    vocab_size: int = setting(0, "Vocabulary size (from the dataset).", cli=False)
    cell: str = setting("lstm", "Recurrent cell.", choices=lambda: CELLS)
    layers: int = setting(2, "Stacked recurrent layers.", at_least=1)
    emb_size: int = setting(256, "Embedding size.", at_least=1)
    hidden_size: int = setting(256, "Hidden state size.", at_least=1)
    dropout: float = setting(0.2, "Dropout on embeddings, between layers and output.",
                             valid=_dropout_rate, rule="in [0, 1)")
    tied: bool = setting(False, "Tie input and output embeddings (with --softmax adaptive: "
                         "adaptive input embeddings sharing the softmax's clusters).")
    softmax: str = setting("auto", "auto (adaptive for vocabularies of "
                           f"{AUTO_ADAPTIVE_FROM:,} tokens or more, else full), full, or "
                           "adaptive (AdaptiveLogSoftmaxWithLoss: the frequent tokens in a "
                           "small head, the rare ones in cheaper clusters).", choices=SOFTMAXES,
                           later=True, was="full")
    cutoffs: list[int] | None = setting(None, "Adaptive-softmax cluster bounds, e.g. "
                                        "2000,10000 (default: where the train split's tokens "
                                        "reach 80% and 95% of its text).",
                                        parse=comma_ints, later=True)
    impl: str = setting("fused", "fused (cuDNN/oneDNN) or explicit (the cell equations of "
                        "lm.models.cells; cells without a fused layer always run explicit).",
                        choices=IMPLS, later=True)
    locked_dropout: bool = setting(False, "AWD: one dropout mask per sequence (variational) on "
                                   "inputs, between layers, output.", later=True)
    dropout_input: float | None = setting(None, "Dropout on the embeddings (default: "
                                          "--dropout).", valid=_dropout_rate,
                                          rule="in [0, 1)", later=True)
    dropout_hidden: float | None = setting(None, "Dropout between layers (default: "
                                           "--dropout).", valid=_dropout_rate,
                                           rule="in [0, 1)", later=True)
    dropout_embed: float = setting(0.0, "AWD: drop whole words from the embedding matrix.",
                                   valid=_dropout_rate, rule="in [0, 1)", later=True)
    weight_drop: float = setting(0.0, "AWD: DropConnect on the hidden-to-hidden weights.",
                                 valid=_dropout_rate, rule="in [0, 1)", later=True)

    def check(self) -> None:
        check_settings(self)
        if self.softmax == "adaptive":
            cutoffs = self.adaptive_cutoffs()
            unordered = any(b <= a for a, b in zip(cutoffs, cutoffs[1:], strict=False))
            too_large = bool(self.vocab_size) and cutoffs[-1] >= self.vocab_size
            if unordered or cutoffs[0] < 1 or too_large:
                raise LMError(f"--cutoffs {','.join(map(str, cutoffs))} must increase and lie "
                              f"between 1 and the vocabulary size ({self.vocab_size}) − 1")

    def adaptive_cutoffs(self) -> list[int]:
        return list(self.cutoffs) if self.cutoffs else default_cutoffs(self.vocab_size)

    @property
    def per_layer(self) -> bool:
        """Whether the layers are separate modules (AWD options need that)."""
        return self.locked_dropout or self.weight_drop > 0


def _recurrent(cell: str, impl: str, input_size: int, hidden_size: int, layers: int,
               dropout: float) -> nn.Module:
    fused = cell_spec(cell).fused
    if impl == "explicit" or fused is None:
        return ExplicitRNN(cell, input_size, hidden_size, layers, dropout)
    return fused(input_size, hidden_size, layers, dropout)


class RNNLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config = pick_output_layer(config)
        config.check()
        self.config = config
        self.spec = cell_spec(config.cell)
        adaptive_input = config.tied and config.softmax == "adaptive"
        self.embedding = None if adaptive_input else nn.Embedding(config.vocab_size,
                                                                  config.emb_size)
        self.dropout = nn.Dropout(config.dropout)
        self.p_input = config.dropout if config.dropout_input is None else config.dropout_input
        self.p_hidden = (config.dropout if config.dropout_hidden is None
                         else config.dropout_hidden)
        self.projection = None
        out_size = config.hidden_size
        if config.per_layer:
            self.sizes = [config.hidden_size] * config.layers
            if config.tied:
                self.sizes[-1] = config.emb_size
            widths = [config.emb_size, *self.sizes[:-1]]
            self.rnns = nn.ModuleList(_recurrent(config.cell, config.impl, w, h, 1, 0.0)
                                      for w, h in zip(widths, self.sizes, strict=True))
            out_size = self.sizes[-1]
        else:
            between = self.p_hidden if config.layers > 1 else 0.0
            self.rnn = _recurrent(config.cell, config.impl, config.emb_size, config.hidden_size,
                                  config.layers, between)
            # Tying needs the decoder's input to be the embedding's size: project if they differ.
            if config.tied and config.hidden_size != config.emb_size:
                self.projection = nn.Linear(config.hidden_size, config.emb_size)
                out_size = config.emb_size
        self.out_size = out_size
        if config.softmax == "adaptive":
            cutoffs = config.adaptive_cutoffs()
            div = 4.0  # each tail cluster 4× narrower than the one before
            while div > 1 and out_size // div ** len(cutoffs) < 1:
                div /= 2
            self.decoder = nn.AdaptiveLogSoftmaxWithLoss(
                out_size, config.vocab_size, cutoffs, div_value=max(div, 1.0))
        else:
            self.decoder = nn.Linear(out_size, config.vocab_size)
        if adaptive_input:  # the softmax's head and tails are the input embedding too
            self.embedding = AdaptiveInput(self.decoder)
        self._init_weights()
        if config.tied and not adaptive_input:
            self.decoder.weight = self.embedding.weight

    def _init_weights(self) -> None:
        if isinstance(self.embedding, nn.Embedding):
            nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if isinstance(self.decoder, nn.Linear):
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)

    def compile_cells(self) -> None:
        """``torch.compile`` the explicit cells' step (no-op for the fused implementation)."""
        for module in self.modules():
            if isinstance(module, ExplicitRNN):
                module.compile_step()

    # ------------------------------------------------------------------ recurrent state
    def init_hidden(self, batch_size: int, device: torch.device | str = "cpu"
                    ) -> RecurrentState:
        """Zeros: the cell's state parts for the whole stack, or for each layer in turn."""
        per = self.spec.state_parts
        if self.config.per_layer:  # layer 0's parts, then layer 1's, ...
            return RecurrentState(tuple(torch.zeros(1, batch_size, size, device=device)
                                        for size in self.sizes for _ in range(per)))
        shape = (self.config.layers, batch_size, self.config.hidden_size)
        return RecurrentState(tuple(torch.zeros(shape, device=device) for _ in range(per)))

    def _as_module_state(self, parts: tuple[torch.Tensor, ...]):
        """torch's layers take ``h`` alone, or ``(h, c)``: the cell says which."""
        return parts if self.spec.state_parts > 1 else parts[0]

    def _from_module_state(self, state) -> tuple[torch.Tensor, ...]:
        return tuple(state) if self.spec.state_parts > 1 else (state,)

    # --------------------------------------------------------------------- the network
    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        p = self.config.dropout_embed
        if self.training and p > 0 and isinstance(self.embedding, AdaptiveInput):
            keep = self.embedding.softmax.head.weight.new_empty(self.config.vocab_size)
            keep = keep.bernoulli_(1 - p) / (1 - p)  # drop whole words, one draw per word
            return self.embedding(ids) * keep[ids].unsqueeze(-1)
        if self.training and p > 0:  # drop whole words: rows of the embedding matrix
            weight = self.embedding.weight
            mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
            return F.embedding(ids, weight * mask)
        return self.embedding(ids)

    def _drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or p == 0:
            return x
        if self.config.locked_dropout:  # one mask per sequence, the same at every step
            mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
            return x * mask
        return F.dropout(x, p, True)

    def _run(self, module: nn.Module, x: torch.Tensor, hidden) -> tuple:
        if self.training and self.config.weight_drop > 0:
            weight = module.weight_hh_l0
            dropped = F.dropout(weight, self.config.weight_drop, True)
            return torch.func.functional_call(module, {"weight_hh_l0": dropped}, (x, hidden))
        return module(x, hidden)

    def _recur(self, module: nn.Module, x: torch.Tensor, parts: tuple[torch.Tensor, ...]
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        output, state = self._recur_module(module, x, self._as_module_state(parts))
        return output, self._from_module_state(state)

    def _recur_module(self, module: nn.Module, x: torch.Tensor, hidden) -> tuple:
        if x.device.type == "cpu" and self.config.impl == "fused":
            # oneDNN's CPU RNNs have no mixed-precision kernel: run the recurrence in fp32 and
            # let autocast speed up the projections and the softmax, where the time goes.
            with torch.autocast("cpu", enabled=False):
                low = x.dtype in (torch.bfloat16, torch.float16)
                return self._run(module, x.float() if low else x, hidden)
        return self._run(module, x, hidden)

    def _features(self, ids: torch.Tensor, hidden: RecurrentState
                  ) -> tuple[torch.Tensor, RecurrentState, torch.Tensor]:
        """(dropped top-layer output, next hidden state, top-layer output before dropout)."""
        x = self._drop(self._embed(ids), self.p_input)
        if not self.config.per_layer:
            raw, parts = self._recur(self.rnn, x, hidden.parts)
        else:
            per, parts = self.spec.state_parts, ()
            for layer, module in enumerate(self.rnns):
                x, state = self._recur(module, x, hidden.parts[layer * per:(layer + 1) * per])
                parts += state
                raw = x
                if layer < len(self.rnns) - 1:
                    x = self._drop(x, self.p_hidden)
        hidden = RecurrentState(parts)
        output = self._drop(raw, self.config.dropout)
        if self.projection is not None:
            output = self.projection(output)
        return output, hidden, raw

    def features(self, ids: torch.Tensor, hidden: RecurrentState
                 ) -> tuple[torch.Tensor, RecurrentState]:
        """Top-layer outputs [B, T, E or H] for token ids [B, T], and the next hidden state."""
        output, hidden, _ = self._features(ids, hidden)
        return output, hidden

    # ---------------------------------------------------------------------- the softmax
    def scores(self, output: torch.Tensor) -> torch.Tensor:
        """[B, T, V] whose log_softmax is the next-token distribution: logits (full softmax)
        or log-probabilities (adaptive)."""
        if isinstance(self.decoder, nn.AdaptiveLogSoftmaxWithLoss):
            with _fp32(output):
                flat = self.decoder.log_prob(output.reshape(-1, output.shape[-1]).float())
            return flat.view(*output.shape[:-1], -1)
        return self.decoder(output)

    def target_logprobs(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) [B, T] in float32; the adaptive softmax computes only what it needs."""
        if isinstance(self.decoder, nn.AdaptiveLogSoftmaxWithLoss):
            with _fp32(output):
                flat = output.reshape(-1, output.shape[-1]).float()
                return self.decoder(flat, targets.reshape(-1)).output.view(targets.shape)
        logits = self.decoder(output).float()
        return -F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                reduction="none").view(targets.shape)

    def loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the targets, in float32."""
        if isinstance(self.decoder, nn.AdaptiveLogSoftmaxWithLoss):
            with _fp32(output):
                flat = output.reshape(-1, output.shape[-1]).float()
                return self.decoder(flat, targets.reshape(-1)).loss
        if (output.device.type == "cpu" and torch.is_grad_enabled()
                and output.dtype == torch.float32 and not _cpu_autocast()):
            return linear_cross_entropy(output.reshape(-1, output.shape[-1]),
                                        self.decoder.weight, self.decoder.bias,
                                        targets.reshape(-1))
        return F.cross_entropy(self.decoder(output).float().flatten(0, 1), targets.flatten())

    def forward(self, ids: torch.Tensor, hidden: RecurrentState
                ) -> tuple[torch.Tensor, RecurrentState]:
        """Scores [B, T, V] for token ids [B, T] (see ``scores``), and the next hidden state."""
        output, hidden = self.features(ids, hidden)
        return self.scores(output), hidden


class TrainingStep(nn.Module):
    """One training step's forward as a module, so DDP and ``torch.compile`` can wrap it whole.

    Returns (objective, nll, hidden): the mean negative log-likelihood plus the AWD-LSTM
    activation regularisers — AR, ``ar`` × mean squared (dropped) top-layer output, and TAR,
    ``tar`` × mean squared change of the raw top-layer output from one step to the next.
    """

    def __init__(self, model: RNNLM, ar: float = 0.0, tar: float = 0.0) -> None:
        super().__init__()
        self.model, self.ar, self.tar = model, ar, tar

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: RecurrentState
                ) -> tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        output, hidden, raw = self.model._features(inputs, hidden)
        nll = self.model.loss(output, targets)
        objective = nll
        if self.ar:
            objective = objective + self.ar * output.float().pow(2).mean()
        if self.tar:
            objective = objective + self.tar * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        return objective, nll, hidden


def save(model: RNNLM, directory: Path, weights_name: str = "model.safetensors") -> None:
    """Weights (a tied matrix once) and config.json.

    Each tensor is copied out on its own: on a GPU, cuDNN keeps all of an RNN's weights in
    one flat buffer, which safetensors' ``save_model`` refuses as shared storage.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple] = set()
    for key, value in model.state_dict().items():
        identity = (value.data_ptr(), tuple(value.shape), tuple(value.stride()))
        if identity in seen:  # a tied weight: stored once, restored through the tie
            continue
        seen.add(identity)
        tensors[key] = value.detach().to("cpu").contiguous().clone()
    save_file(tensors, str(directory / weights_name), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(asdict(model.config), indent=2) + "\n")


def load(directory: Path, weights_name: str = "model.safetensors",
         device: torch.device | str = "cpu") -> RNNLM:
    # models saved before --softmax auto have no "softmax" key when they had the full one
    config = ModelConfig(**{"softmax": "full",
                            **json.loads((directory / "config.json").read_text())})
    model = RNNLM(config)
    tensors = load_file(str(directory / weights_name))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {"embedding.weight", "decoder.weight"} if config.tied else set()
    if unexpected or set(missing) - tied or len(set(missing) & tied) > 1:
        raise LMError(f"{directory / weights_name} does not fit its config.json (missing "
                      f"{sorted(missing)}, unexpected {sorted(unexpected)}): re-train or "
                      "re-download the model")
    return model.to(device).eval()
