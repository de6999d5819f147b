import numpy as np
import pytest
import torch
from generation_fakes import make_plan

from lm.errors import LMError
from lm.generation.decoding.processors import process
from lm.generation.decoding.sampling import choose, draw, generate
from lm.generation.decoding.steppers import RNNStepper
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


def _choose(logprobs, generator, **settings):
    """One token per row, as sampling picks it from these (shaped) scores; <unk> allowed."""
    plan = make_plan(**{"allow_unk": True, **settings})
    scores = process(plan.sampling, logprobs, [[]] * len(logprobs))
    return choose(scores, plan, generator, torch.Generator().manual_seed(1))


def _model(seed=0):
    torch.manual_seed(seed)
    return rnn.RNNLM(rnn.ModelConfig(vocab_size=9, emb_size=8, hidden_size=8, layers=1))


def test_same_seed_same_samples_and_ids_in_vocab():
    stepper = RNNStepper(_model())
    a = generate(stepper, make_plan([3, 4], num=5, max_tokens=30, temperature=1.0, seed=7))
    b = generate(stepper, make_plan([3, 4], num=5, max_tokens=30, temperature=1.0, seed=7))
    c = generate(stepper, make_plan([3, 4], num=5, max_tokens=30, temperature=1.0, seed=8))
    assert a == b and a != c
    assert all(0 <= t < 9 and t != 1 for s in a for t in s)


def test_greedy_follows_the_table_and_stops_at_eos():
    table = torch.full((4, 4), 0.1)
    table[1, 2] = table[2, 3] = table[3, 1] = 0.7  # eos → 2 → 3 → eos
    table = table / table.sum(1, keepdim=True)
    assert generate(TableStepper(table), make_plan([], num=2, temperature=0)) == [[2, 3], [2, 3]]


def test_top_k_one_is_greedy_and_top_p_keeps_the_head():
    logprobs = torch.log(torch.tensor([[0.05, 0.05, 0.6, 0.3]]))
    g = torch.Generator().manual_seed(0)
    draws = {int(_choose(logprobs, g, top_k=1)) for _ in range(50)}
    assert draws == {2}
    draws = {int(_choose(logprobs, g, top_p=0.85)) for _ in range(300)}
    assert draws == {2, 3}


def test_a_top_p_that_float32_rounds_to_zero_keeps_the_likeliest_token():
    """top_p 6.4e-90 (found by the API fuzzer) is 0 in float32: the nucleus still holds the
    likeliest token, never nothing (an all −∞ row drew a token the form had masked)."""
    logprobs = torch.log(torch.tensor([[0.05, 0.05, 0.6, 0.3]]))
    g = torch.Generator().manual_seed(0)
    assert {int(_choose(logprobs, g, top_p=6.38935685890323e-90)) for _ in range(50)} == {2}
    masked = logprobs.clone()
    masked[0, 2] = -torch.inf  # the form's mask: the likeliest left is 3
    assert {int(_choose(masked, g, top_p=1e-300)) for _ in range(50)} == {3}

def test_sampling_frequencies_follow_the_distribution():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    g = torch.Generator().manual_seed(0)
    counts = np.bincount(_choose(probs.log().repeat(2000, 1), g).numpy(),
                         minlength=4)
    np.testing.assert_allclose(counts / 2000, probs[0].numpy(), atol=0.04)


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1}, "--temperature"), ({"temperature": float("nan")}, "--temperature"),
    ({"top_p": 0.0}, "--top-p"), ({"top_p": 1.5}, "--top-p"), ({"top_k": 0}, "--top-k"),
    ({"num": 0}, "--num"), ({"max_tokens": 0}, "--max-tokens"),
    ({"min_p": 0.0}, r"--min-p must be in \(0, 1\], not 0.0"), ({"min_p": 1.5}, "--min-p"),
    ({"min_p": float("nan")}, "--min-p"),
])
def test_bad_sampling_arguments(kwargs, message):
    with pytest.raises(LMError, match=message):
        generate(RNNStepper(_model()), make_plan([], **kwargs))


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

    outputs = generate(Counting(table), make_plan([], num=200, max_tokens=6, seed=0))
    assert sizes[-1] < sizes[0] < 200
    assert sizes == [sum(len(o) > k for o in outputs) for k in range(len(sizes))]


def _distribution(logprobs, **settings):
    """What a token is drawn from: softmax of the scores after the sampling processors."""
    scores = process(make_plan(**settings).sampling, logprobs, [[]] * len(logprobs))
    return torch.softmax(scores.double(), dim=-1)


@pytest.mark.parametrize("temperature", [0.25, 0.5, 2.0, 5.0])
def test_temperature_gives_the_softmax_of_the_logits_over_t(temperature):
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.5, -3.0], [0.3, 0.2, 0.1, 0.0, -0.1]])
    logprobs = torch.log_softmax(logits, dim=-1)
    expected = torch.softmax(logits.double() / temperature, dim=-1)
    np.testing.assert_allclose(_distribution(logprobs, temperature=temperature), expected,
                               rtol=1e-5, atol=1e-9)


def test_temperature_on_a_hand_made_distribution():
    logprobs = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).log()
    # T = 1/2 squares the probabilities: 1, 4, 9, 16 over 30
    np.testing.assert_allclose(_distribution(logprobs, temperature=0.5)[0],
                               [1 / 30, 4 / 30, 9 / 30, 16 / 30], rtol=1e-6)
    # T = 2 takes their square roots
    roots = np.sqrt([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(_distribution(logprobs, temperature=2.0)[0], roots / roots.sum(),
                               rtol=1e-6)
    np.testing.assert_allclose(_distribution(logprobs)[0], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)


@pytest.mark.parametrize("temperature, seed", [(0.5, 0), (2.0, 1), (1.0, 2)])
def test_each_draw_inverts_the_cdf_of_the_tempered_distribution(temperature, seed):
    """A sample's first token is where its uniform number falls in softmax(log p / T)'s CDF."""
    table = torch.tensor([[0.25] * 4, [0.1, 0.2, 0.3, 0.4], [0.25] * 4, [0.25] * 4])
    num = 2000
    outputs = generate(TableStepper(table), make_plan([], num=num, max_tokens=1,
                       temperature=temperature, seed=seed, allow_unk=True))
    drawn = torch.tensor([ids[0] if ids else 1 for ids in outputs])  # [] is a drawn <eos>
    uniforms = torch.rand(num, generator=torch.Generator().manual_seed(seed)).double()
    probs = table[1].double() ** (1 / temperature)
    cdf = (probs / probs.sum()).cumsum(0)
    expected = torch.searchsorted(cdf, uniforms, right=True)
    assert drawn.tolist() == expected.tolist()


def test_min_p_keeps_tokens_within_a_share_of_the_likeliest_after_temperature():
    logprobs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()

    def dist(**settings):
        return _distribution(logprobs, **settings)[0].numpy()

    # T = 1: 0.15 and 0.05 fall below 0.4 × 0.5 = 0.2
    np.testing.assert_allclose(dist(min_p=0.4), [0.625, 0.375, 0, 0], rtol=1e-6)
    # T = 2 compares square roots: 0.15 is √0.3 = 0.548 of the top one and stays, 0.05 is
    # √0.1 = 0.316 and goes
    roots = np.sqrt([0.5, 0.3, 0.15])
    np.testing.assert_allclose(dist(temperature=2.0, min_p=0.4), [*roots / roots.sum(), 0],
                               rtol=1e-6)
    np.testing.assert_allclose(dist(min_p=0.05), [0.5, 0.3, 0.15, 0.05], rtol=1e-6)
    np.testing.assert_allclose(dist(min_p=1.0), [1, 0, 0, 0])
    # after top-k and top-p, on what they left: the nucleus of 0.7 is {0.5, 0.3}, and 0.3 is
    # 0.6 of 0.5
    np.testing.assert_allclose(dist(top_k=3, min_p=0.25), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0],
                               rtol=1e-6)
    np.testing.assert_allclose(dist(top_p=0.7, min_p=0.55), [0.625, 0.375, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(dist(top_p=0.7, min_p=0.7), [1, 0, 0, 0])


def test_min_p_draws_never_pick_a_dropped_token_and_follow_the_rest():
    table = torch.tensor([[0.25] * 4, [0.5, 0.05, 0.3, 0.15], [0.25] * 4, [0.25] * 4])
    outputs = generate(TableStepper(table), make_plan([], num=4000, max_tokens=1, temperature=2.0,
                       min_p=0.4, seed=0, allow_unk=True))
    assert all(outputs)  # <eos> (√0.1 = 0.316 of the top token at T = 2) is never drawn
    counts = np.bincount([ids[0] for ids in outputs], minlength=4) / 4000
    roots = np.sqrt([0.5, 0, 0.3, 0.15])
    np.testing.assert_allclose(counts, roots / roots.sum(), atol=0.025)
