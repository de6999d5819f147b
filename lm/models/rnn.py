"""The recurrent language model: embedding → stacked RNN/GRU/LSTM → dropout → softmax.

Weights are saved with safetensors (never pickle) and the configuration as JSON, so a model
can be loaded without running any code from the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from lm.errors import LMError

CELLS = ("rnn-tanh", "rnn-relu", "gru", "lstm")
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class ModelConfig:
    vocab_size: int
    cell: str = "lstm"
    layers: int = 2
    emb_size: int = 256
    hidden_size: int = 256
    dropout: float = 0.2
    tied: bool = False

    def check(self) -> None:
        if self.cell not in CELLS:
            raise LMError(f"--cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        for flag, value in (("--layers", self.layers), ("--emb-size", self.emb_size),
                            ("--hidden-size", self.hidden_size)):
            if value < 1:
                raise LMError(f"{flag} must be at least 1, not {value}")
        if not 0.0 <= self.dropout < 1.0:
            raise LMError(f"--dropout must be in [0, 1), not {self.dropout}")


class RNNLM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.emb_size)
        between = config.dropout if config.layers > 1 else 0.0
        if config.cell == "lstm":
            self.rnn: nn.RNNBase = nn.LSTM(config.emb_size, config.hidden_size, config.layers,
                                           dropout=between, batch_first=True)
        elif config.cell == "gru":
            self.rnn = nn.GRU(config.emb_size, config.hidden_size, config.layers,
                              dropout=between, batch_first=True)
        else:
            self.rnn = nn.RNN(config.emb_size, config.hidden_size, config.layers,
                              nonlinearity=config.cell.split("-")[1], dropout=between,
                              batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        out_size = config.hidden_size
        # Tying needs the decoder's input to be the embedding's size: project if they differ.
        self.projection = None
        if config.tied and config.hidden_size != config.emb_size:
            self.projection = nn.Linear(config.hidden_size, config.emb_size)
            out_size = config.emb_size
        self.decoder = nn.Linear(out_size, config.vocab_size)
        self._init_weights()
        if config.tied:
            self.decoder.weight = self.embedding.weight

    def _init_weights(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int, device: torch.device | str = "cpu") -> Hidden:
        shape = (self.config.layers, batch_size, self.config.hidden_size)
        zeros = torch.zeros(shape, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def features(self, ids: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """Top-layer outputs [B, T, E or H] for token ids [B, T], and the next hidden state."""
        inputs = self.dropout(self.embedding(ids))
        # oneDNN's CPU LSTM has no mixed-precision kernel: run the recurrence in fp32 and let
        # autocast speed up the projections and the softmax, where the time goes.
        with torch.autocast(ids.device.type, enabled=ids.device.type == "cuda"):
            output, hidden = self.rnn(inputs.float() if ids.device.type != "cuda" else inputs,
                                      hidden)
        output = self.dropout(output)
        if self.projection is not None:
            output = self.projection(output)
        return output, hidden

    def forward(self, ids: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """Logits [B, T, V] for token ids [B, T]."""
        output, hidden = self.features(ids, hidden)
        return self.decoder(output), hidden


def detach(hidden: Hidden) -> Hidden:
    """Cut the graph at a BPTT boundary while keeping the state's values."""
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def save(model: RNNLM, directory: Path, weights_name: str = "model.safetensors") -> None:
    save_model(model, str(directory / weights_name))
    (directory / "config.json").write_text(json.dumps(asdict(model.config), indent=2) + "\n")


def load(directory: Path, weights_name: str = "model.safetensors",
         device: torch.device | str = "cpu") -> RNNLM:
    config = ModelConfig(**json.loads((directory / "config.json").read_text()))
    model = RNNLM(config)
    load_model(model, str(directory / weights_name), device=str(device))
    return model.to(device).eval()
