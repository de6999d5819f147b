import pytest
import torch

from lm.errors import LMError
from lm.models import rnn


@pytest.mark.parametrize("cell", rnn.CELLS)
@pytest.mark.parametrize("tied", [False, True])
def test_shapes_and_safetensors_round_trip(tmp_path, cell, tied):
    config = rnn.ModelConfig(vocab_size=11, cell=cell, layers=2, emb_size=6, hidden_size=8,
                             dropout=0.1, tied=tied)
    model = rnn.RNNLM(config).eval()
    ids = torch.randint(0, 11, (3, 5))
    logits, hidden = model(ids, model.init_hidden(3))
    assert logits.shape == (3, 5, 11)
    if tied:
        assert model.decoder.weight is model.embedding.weight
    rnn.save(model, tmp_path)
    loaded = rnn.load(tmp_path)
    again, _ = loaded(ids, loaded.init_hidden(3))
    assert torch.equal(logits, again)


def test_bad_config():
    with pytest.raises(LMError, match="--cell"):
        rnn.RNNLM(rnn.ModelConfig(vocab_size=5, cell="transformer"))
    with pytest.raises(LMError, match="--hidden-size must be at least 1"):
        rnn.RNNLM(rnn.ModelConfig(vocab_size=5, hidden_size=0))
