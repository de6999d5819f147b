"""PyTorch's ``word_language_model`` example (main.py), written out once for the benchmarks.

nn.Embedding → nn.LSTM → nn.Linear, fp32, full softmax, SGD by hand with gradient clipping,
truncated BPTT with the hidden state carried across batches, and the example's only schedule:
the learning rate divided by 4 when an epoch's validation loss does not improve.
``bench/train_bench.py`` times it step by step; ``bench/speedrun.py`` trains it for a wall-clock
budget and validates it along the way. Both score its weights with ``lm``'s evaluator
(:func:`as_lm_model`), so every perplexity in a table is computed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ReferenceConfig:
    """The example's command-line arguments (its defaults, except the network's size)."""

    emb: int = 200
    hidden: int = 200
    layers: int = 2
    dropout: float = 0.2
    tied: bool = False
    lr: float = 20.0
    clip: float = 0.25
    bptt: int = 35
    batch_size: int = 20


class RNNModel(nn.Module):
    """The example's model.py, LSTM only."""

    def __init__(self, ntokens: int, config: ReferenceConfig) -> None:
        super().__init__()
        self.ntokens, self.config = ntokens, config
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.Embedding(ntokens, config.emb)
        self.rnn = nn.LSTM(config.emb, config.hidden, config.layers, dropout=config.dropout)
        self.decoder = nn.Linear(config.hidden, ntokens)
        if config.tied:
            self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, input, hidden):  # noqa: A002
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntokens)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        shape = (self.config.layers, bsz, self.config.hidden)
        return weight.new_zeros(shape), weight.new_zeros(shape)


def batchify(ids, bsz: int, device) -> torch.Tensor:
    data = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous().to(device)


def get_batch(source: torch.Tensor, i: int, bptt: int):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


class ReferenceTrainer:
    """The example's train() loop, one step at a time, plus its end-of-epoch lr rule."""

    def __init__(self, model: RNNModel, train_ids, device) -> None:
        self.model, self.config, self.device = model, model.config, device
        self.data = batchify(train_ids, self.config.batch_size, device)
        self.lr = self.config.lr
        self.criterion = nn.NLLLoss()
        self.best_val: float | None = None

    def epochs(self):
        """Yields after every step: (epoch ended?, loss of the step as a float)."""
        bptt = self.config.bptt
        while True:
            self.model.train()
            hidden = self.model.init_hidden(self.config.batch_size)
            starts = range(0, self.data.size(0) - 1, bptt)
            for n, i in enumerate(starts):
                data, targets = get_batch(self.data, i, bptt)
                self.model.zero_grad()
                hidden = tuple(v.detach() for v in hidden)
                output, hidden = self.model(data, hidden)
                loss = self.criterion(output, targets)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
                for p in self.model.parameters():
                    p.data.add_(p.grad, alpha=-self.lr)
                yield n + 1 == len(starts), loss.item(), targets.numel()

    def end_epoch(self, val_loss: float) -> None:
        """main.py: keep the best; otherwise anneal the learning rate by 4."""
        if self.best_val is None or val_loss < self.best_val:
            self.best_val = val_loss
        else:
            self.lr /= 4.0

    def train_for(self, seconds: float, every_tokens: int,
                  validate: Callable[[], float], on_eval: Callable[[dict], bool]) -> dict:
        """Train until ``seconds`` of wall clock have passed (validation included, as in
        ``lm train --max-time``), validating every ``every_tokens`` training tokens, at each
        epoch's end and at the end. ``on_eval`` gets each point (its ``seconds`` are training
        time, validation excluded) and returns True to stop early."""
        steps = tokens = since = 0
        trained, began = 0.0, time.perf_counter()
        start = began
        for epoch_ended, _loss, n in self.epochs():
            steps, tokens, since = steps + 1, tokens + n, since + n
            trained += time.perf_counter() - start
            out_of_time = time.perf_counter() - began >= seconds
            if epoch_ended or since >= every_tokens or out_of_time:
                since = 0
                ppl = validate()
                if epoch_ended:
                    self.end_epoch(float(np.log(ppl)))
                point = {"step": steps, "tokens": tokens, "seconds": round(trained, 2),
                         "valid_ppl": ppl, "lr": self.lr}
                if on_eval(point) or out_of_time:
                    break
            start = time.perf_counter()
        return {"steps": steps, "tokens": tokens, "seconds": trained}


def as_lm_model(model: RNNModel):
    """The same weights as an ``lm`` model, for ``lm``'s evaluator."""
    from lm.models import rnn

    c = model.config
    config = rnn.ModelConfig(model.ntokens, "lstm", c.layers, c.emb, c.hidden, c.dropout,
                             c.tied, softmax="full")
    lm_model = rnn.RNNLM(config).to(next(model.parameters()).device)
    state = {"embedding.weight": model.encoder.weight, "decoder.weight": model.decoder.weight,
             "decoder.bias": model.decoder.bias}
    state.update({f"rnn.{k}": v for k, v in model.rnn.state_dict().items()})
    lm_model.load_state_dict(state)
    return lm_model
