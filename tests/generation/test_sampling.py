import numpy as np
import pytest
import torch

from lm.errors import LMError
from lm.generation.sampling import RNNStepper, choose, draw, generate
from lm.models import rnn


class TableStepper:
    """A model given as a fixed next-token table: row = previous token."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.log()
        self.vocab_size = table.shape[1]

    def start(self, contexts):
        return self.table[[c[-1] for c in contexts]]

    def advance(self, tokens):
        return self.table[tokens]

    def select(self, rows):
        pass


def _model(seed=0):
    torch.manual_seed(seed)
    return rnn.RNNLM(rnn.ModelConfig(vocab_size=9, emb_size=8, hidden_size=8, layers=1))


def test_same_seed_same_samples_and_ids_in_vocab():
    stepper = RNNStepper(_model())
    a = generate(stepper, [3, 4], num=5, max_tokens=30, temperature=1.0, seed=7)
    b = generate(stepper, [3, 4], num=5, max_tokens=30, temperature=1.0, seed=7)
    c = generate(stepper, [3, 4], num=5, max_tokens=30, temperature=1.0, seed=8)
    assert a == b and a != c
    assert all(0 <= t < 9 and t != 1 for s in a for t in s)


def test_greedy_follows_the_table_and_stops_at_eos():
    table = torch.full((4, 4), 0.1)
    table[1, 2] = table[2, 3] = table[3, 1] = 0.7  # eos → 2 → 3 → eos
    table = table / table.sum(1, keepdim=True)
    assert generate(TableStepper(table), [], num=2, temperature=0) == [[2, 3], [2, 3]]


def test_top_k_one_is_greedy_and_top_p_keeps_the_head():
    logprobs = torch.log(torch.tensor([[0.05, 0.05, 0.6, 0.3]]))
    g = torch.Generator().manual_seed(0)
    draws = {int(choose(logprobs, 1.0, 1, None, g)) for _ in range(50)}
    assert draws == {2}
    draws = {int(choose(logprobs, 1.0, None, 0.85, g)) for _ in range(300)}
    assert draws == {2, 3}


def test_sampling_frequencies_follow_the_distribution():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    g = torch.Generator().manual_seed(0)
    counts = np.bincount(choose(probs.log().repeat(2000, 1), 1.0, None, None, g).numpy(),
                         minlength=4)
    np.testing.assert_allclose(counts / 2000, probs[0].numpy(), atol=0.04)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1}, "--temperature"), ({"temperature": float("nan")}, "--temperature"),
    ({"top_p": 0.0}, "--top-p"), ({"top_p": 1.5}, "--top-p"), ({"top_k": 0}, "--top-k"),
    ({"num": 0}, "--num"), ({"max_tokens": 0}, "--max-tokens"),
])
def test_bad_sampling_arguments(kwargs, message):
    with pytest.raises(LMError, match=message):
        generate(RNNStepper(_model()), [], **kwargs)


def test_draw_never_picks_an_excluded_token():
    probs = torch.tensor([[0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    tokens = draw(probs.repeat(3000, 1), g).view(-1, 3)
    assert set(tokens[:, 0].tolist()) == {1, 2}
    assert set(tokens[:, 1].tolist()) == {3} and set(tokens[:, 2].tolist()) == {0}


def test_finished_samples_leave_the_batch():
    """Rows that drew <eos> are dropped from the batch; the others continue unchanged."""
    table = torch.full((4, 4), 0.01)
    table[1, 2] = table[2, 3] = table[3, 3] = 0.97  # eos → 2 → 3 → 3 …
    table[2, 1] = 0.5  # after a 2, half the samples stop
    table = table / table.sum(1, keepdim=True)
    sizes = []

    class Counting(TableStepper):
        def start(self, contexts):
            self.last = [c[-1] for c in contexts]
            return self.table[self.last]

        def advance(self, tokens):
            sizes.append(len(tokens))
            assert len(tokens) == len(self.last)
            self.last = tokens.tolist()
            return self.table[tokens]

        def select(self, rows):
            self.last = [self.last[r] for r in rows.tolist()]

    outputs = generate(Counting(table), [], num=200, max_tokens=6, seed=0)
    assert sizes[-1] < sizes[0] < 200
    assert sizes == [sum(len(o) > k for o in outputs) for k in range(len(sizes))]
