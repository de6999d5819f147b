"""generate() and draw() on tiny hand-made models: what the model reads, how long samples run,
what the shaping rules see, and the distribution each token is drawn from."""

import dataclasses

import numpy as np
import pytest
import torch
from generation_fakes import RecordingStepper, TableStepper, Tracing, make_plan

from lm.errors import LMError
from lm.generation.decoding.plan import Plan
from lm.generation.decoding.processors import FormMask, RepetitionPenalty
from lm.generation.decoding.sampling import choose, draw, generate
from lm.generation.decoding.steppers import RNNStepper
from lm.generation.request import SampleRequest
from lm.generation.verse.constraint import FormConstraint
from lm.generation.verse.forms import parse_form
from lm.generation.verse.vocab import TokenClasses
from lm.models import rnn
from lm.tokenization import EOS_ID


def _table(rows):
    table = torch.tensor(rows, dtype=torch.float)
    return table / table.sum(dim=1, keepdim=True)


# <eos> → 2 (0.6) or 3 (0.4); 2 → 2 (0.6) or 3 (0.4); 3 → 3 (0.6) or 2 (0.4); never <eos>
NO_END = _table([[1, 0, 0, 0], [0, 0, 6, 4], [0, 0, 6, 4], [0, 0, 4, 6]])


def test_every_sample_reads_eos_then_style_then_prime():
    stepper = RecordingStepper(NO_END)
    generate(stepper, make_plan([3, 2], num=3, max_tokens=1, style=[2, 2, 3]))
    assert stepper.contexts == [[EOS_ID, 2, 2, 3, 3, 2]] * 3
    generate(stepper, make_plan([3], num=2, max_tokens=1))
    assert stepper.contexts == [[EOS_ID, 3]] * 2


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_sample_that_never_ends_runs_exactly_max_tokens_with_no_wasted_step(temperature):
    stepper = RecordingStepper(NO_END)
    outputs = generate(stepper, make_plan([], num=3, max_tokens=5, temperature=temperature, seed=1))
    assert [len(o) for o in outputs] == [5, 5, 5]
    assert all(set(o) <= {2, 3} for o in outputs)
    assert stepper.advances == 4  # the fifth token needs no further model step
    assert stepper.selects == []  # nobody finished: the batch is never reordered
    if temperature == 0:
        assert outputs == [[2] * 5] * 3


def test_greedy_ends_at_eos_without_printing_it():
    table = _table([[1, 1, 1, 1], [0, 1, 8, 1], [0, 1, 1, 8], [0, 8, 1, 1]])  # eos→2→3→eos
    stepper = RecordingStepper(table)
    assert generate(stepper, make_plan([], num=2, max_tokens=10, temperature=0)) == [[2, 3], [2, 3]]
    assert stepper.advances == 2
    assert generate(RecordingStepper(table), make_plan([2], num=1, temperature=0)) == [[3]]
    assert generate(RecordingStepper(table), make_plan([3], num=1, temperature=0)) == [[]]


def test_samples_that_end_leave_the_batch_in_order():
    # after <eos> half go to 2 (which ends next), half to 3 (which goes on with 3s)
    table = _table([[1, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 0], [0, 0, 0, 1]])
    stepper = Tracing(RecordingStepper(table))
    outputs = generate(stepper, make_plan([], num=6, max_tokens=4, seed=0))
    assert all(o in ([2], [3, 3, 3, 3]) for o in outputs)
    threes = [i for i, o in enumerate(outputs) if o[0] == 3]
    assert 0 < len(threes) < 6
    assert stepper.inner.selects == [threes]  # once, when the 2s end; never again
    for i, o in enumerate(outputs):  # each sample's k-th token came from its own row
        assert len(stepper.seen[i]) == len(o) + (o == [2])


def test_repetition_penalty_sees_the_prime_and_every_token_written():
    # from <eos> and from 2: 2 (0.6) or 3 (0.4). A penalty of 2 doubles a repeated token's
    # log-probability: 2 · log 0.6 = −1.02 < log 0.4 = −0.92, so a 2 already seen loses.
    table = _table([[1, 1, 1, 1], [0, 0, 6, 4], [0, 0, 6, 4], [0, 0, 6, 4]])
    settings = dict(num=1, temperature=0, repetition_penalty=2.0)
    assert generate(TableStepper(table), make_plan([], max_tokens=1, **settings)) == [[2]]
    assert generate(TableStepper(table), make_plan([2], max_tokens=1, **settings)) == [[3]]
    assert generate(TableStepper(table), make_plan([], max_tokens=2, **settings)) == [[2, 3]]
    # 2 and 3 both seen: 2 · log 0.6 > 2 · log 0.4, so 2 again
    assert generate(TableStepper(table), make_plan([], max_tokens=3, **settings)) == [[2, 3, 2]]
    # explicit processors replace the ones the settings ask for
    assert generate(TableStepper(table), make_plan([2], max_tokens=1, processors=[],
                    **settings)) == [[2]]
    assert generate(TableStepper(table), make_plan([2], max_tokens=1, num=1, temperature=0,
                    processors=[RepetitionPenalty(2.0)])) == [[3]]


def test_request_fields_are_read_and_settings_replace_them():
    request = SampleRequest(num=2, max_tokens=3, temperature=0)
    assert generate(TableStepper(NO_END), make_plan([], request)) == [[2, 2, 2]] * 2
    assert generate(TableStepper(NO_END), make_plan([], request, num=1)) == [[2, 2, 2]]
    assert request.num == 2  # the caller's request is not changed


def test_the_seed_decides_every_draw_and_sampling_follows_the_table():
    a = generate(TableStepper(NO_END), make_plan([], num=400, max_tokens=2, seed=5))
    assert a == generate(TableStepper(NO_END), make_plan([], num=400, max_tokens=2, seed=5))
    assert a != generate(TableStepper(NO_END), make_plan([], num=400, max_tokens=2, seed=6))
    first = np.bincount([o[0] for o in a], minlength=4) / 400
    np.testing.assert_allclose(first, [0, 0, 0.6, 0.4], atol=0.06)
    # temperature 1e-7 is greedy (no division by a vanishing T): every sample is the argmax
    assert generate(TableStepper(NO_END), make_plan([], num=5, max_tokens=3, temperature=1e-7,
                    top_k=2)) == [[2, 2, 2]] * 5


def test_sampling_processors_apply_only_when_sampling():
    # top-k 1 leaves only the likeliest token: sampling becomes greedy
    outputs = generate(TableStepper(NO_END), make_plan([], num=50, max_tokens=3, top_k=1, seed=0))
    assert outputs == [[2, 2, 2]] * 50
    # temperature 4 flattens (0.6, 0.4) to their fourth roots, normalised: (0.525, 0.475)
    outputs = generate(TableStepper(NO_END), make_plan([], num=4000, max_tokens=1, temperature=4.0,
                       seed=0))
    share = sum(o[0] == 3 for o in outputs) / 4000
    expected = 0.4 ** 0.25 / (0.4 ** 0.25 + 0.6 ** 0.25)
    assert share == pytest.approx(expected, abs=0.025)


def test_a_form_ends_the_sample_and_keeps_line_closing_eos():
    tokens = ["<unk>", "<eos>", ",", "the", "cat", "sat"]
    classes = TokenClasses.from_tokens(tokens, "word")
    constraint = FormConstraint(classes, parse_form("2,1"))
    # a model that would rather end (or write ",") than anything else
    table = _table([[1, 9, 9, 1, 2, 1]] * 6)
    stepper = RecordingStepper(table)
    # the form's bound: 3 words, an end and a newline per line, the <eos>; less is refused
    with pytest.raises(LMError, match=r"^--form 2,1 needs up to 8 tokens, more than "
                                      r"--max-tokens 7: raise --max-tokens or ask for a "
                                      r"shorter form$"):
        make_plan([], num=2, temperature=0, max_tokens=7, processors=[FormMask(constraint)])
    outputs = generate(stepper, make_plan([], num=2, temperature=0, max_tokens=8,
                       processors=[FormMask(constraint)]))
    # the form ends the sample: cat cat <eos> cat, then the final <eos>
    assert outputs == [[4, 4, EOS_ID, 4]] * 2
    assert stepper.advances == 4
    # a prime is part of the form: after "the" one word is left on line 1
    outputs = generate(RecordingStepper(table), make_plan([3], num=1, temperature=0,
                       processors=[FormMask(constraint)]))
    assert outputs == [[4, EOS_ID, 4]]


def test_choose_takes_the_argmax_or_draws_from_the_softmax():
    scores = torch.tensor([[0.0, 2.0, 1.0], [3.0, -1.0, 0.0]])
    g, redraws = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    greedy = Plan(num=1, seed=0, max_tokens=1, context=(EOS_ID,), greedy=True, banned=())
    assert choose(scores, greedy, g, redraws).tolist() == [1, 0]
    sampled = dataclasses.replace(greedy, greedy=False)
    draws = choose(scores.repeat(3000, 1), sampled, g, redraws).view(3000, 2)
    expected = torch.softmax(scores.double(), dim=-1)
    for row in range(2):
        counts = np.bincount(draws[:, row].numpy(), minlength=3) / 3000
        np.testing.assert_allclose(counts, expected[row].numpy(), atol=0.03)


def test_draw_takes_weights_that_need_not_sum_to_one():
    g = torch.Generator().manual_seed(0)
    weights = torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 0.5]]).repeat(4000, 1)
    tokens = draw(weights, g).view(-1, 2)
    assert set(tokens[:, 1].tolist()) == {2}
    counts = np.bincount(tokens[:, 0].numpy(), minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.25, 0, 0.75], atol=0.025)
    assert draw(torch.tensor([[0.2, 0.8]], dtype=torch.float64), g).dtype == torch.long


def test_rnn_stepper_select_keeps_and_repeats_rows_of_the_hidden_state():
    torch.manual_seed(0)
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=9, emb_size=8, hidden_size=8, layers=2,
                                      dropout=0.5))
    stepper = RNNStepper(model)
    assert not model.training  # eval: dropout off, so a context always gives the same scores
    assert stepper.vocab_size == 9 and stepper.hidden is None
    contexts = [[1, 4, 5], [1, 6, 7]]
    stepper.start(contexts)
    stepper.select(torch.tensor([1, 1, 0]))
    moved = stepper.advance(torch.tensor([2, 3, 2]))
    expected = []
    for context, token in ((contexts[1], 2), (contexts[1], 3), (contexts[0], 2)):
        alone = RNNStepper(model)
        alone.start([context])
        expected.append(alone.advance(torch.tensor([token]))[0])
    torch.testing.assert_close(moved, torch.stack(expected))


def test_unk_is_redrawn_and_every_other_draw_stays_as_it_was():
    # from every token: <unk> 0.2, <eos> 0.1, 2 0.3, 3 0.4
    table = _table([[2, 1, 3, 4]] * 4)
    allowed = generate(TableStepper(table), make_plan([], num=4000, max_tokens=1, seed=3,
                                                      allow_unk=True))
    banned = generate(TableStepper(table), make_plan([], num=4000, max_tokens=1, seed=3))
    first = [ids[0] if ids else EOS_ID for ids in allowed]
    again = [ids[0] if ids else EOS_ID for ids in banned]
    assert 0 in first and 0 not in again
    # a sample whose draw missed <unk> drew the very same token; the others drew again
    assert all(b == a for a, b in zip(first, again, strict=True) if a != 0)
    redrawn = [b for a, b in zip(first, again, strict=True) if a == 0]
    counts = np.bincount(redrawn, minlength=4)[1:] / len(redrawn)
    np.testing.assert_allclose(counts, [0.125, 0.375, 0.5], atol=0.05)  # p without <unk>
    # greedy: the likeliest token but <unk>
    assert generate(TableStepper(_table([[5, 1, 3, 4]] * 4)),
                    make_plan([], num=1, max_tokens=1, temperature=0)) == [[3]]
    assert generate(TableStepper(_table([[5, 1, 3, 4]] * 4)),
                    make_plan([], num=1, max_tokens=1, temperature=0, allow_unk=True)) == [[0]]


def test_a_row_with_nothing_but_unk_keeps_its_draw():
    table = _table([[1, 0, 0, 0]] * 4)  # <unk> or nothing
    assert generate(TableStepper(table), make_plan([], num=2, max_tokens=1)) == [[0], [0]]
