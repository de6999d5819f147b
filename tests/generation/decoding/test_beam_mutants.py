"""Beam search on hand-made bigram tables whose best texts can be worked out on paper: the
stopping bound (exact, never too early, never a step too late), what the model reads, and
what the shaping rules see."""

import itertools
import math

import pytest
import torch
from generation_fakes import RecordingStepper, TableStepper, beam_plan

from lm.generation.decoding.beam import beam_search, normalised
from lm.generation.decoding.processors import FormMask
from lm.generation.request import SampleRequest
from lm.generation.verse.constraint import FormConstraint
from lm.generation.verse.forms import parse_form
from lm.generation.verse.vocab import TokenClasses
from lm.tokenization import EOS_ID

log = math.log



def _table(rows):
    table = torch.tensor(rows, dtype=torch.float64)
    return (table / table.sum(dim=1, keepdim=True)).float()


def test_normalised_divides_by_length_to_the_alpha():
    assert normalised(-6.0, 4, 0.5) == pytest.approx(-3.0)
    assert normalised(-6.0, 3, 1.0) == pytest.approx(-2.0)
    assert normalised(-6.0, 4, 0.0) == -6.0
    assert normalised(-6.0, 0, 1.0) == -6.0  # an empty length counts as one


def test_it_stops_as_soon_as_nothing_live_can_win():
    # from <eos>: <eos> 0.97, 2 0.01, 3 0.02
    table = _table([[1, 1, 1, 1], [0, 97, 1, 2], [0, 1, 0, 0], [0, 1, 0, 0]])
    stepper = RecordingStepper(table)
    found = beam_search(stepper, beam_plan([], beam=2, num=1, max_tokens=5, length_penalty=0.0))
    assert [h.tokens for h in found] == [[]]
    assert found[0].logprob == pytest.approx(log(0.97)) == found[0].score
    assert stepper.advances == 0  # log 0.02 < log 0.97: no second step


def test_a_tie_with_the_best_finished_text_does_not_go_on():
    # <eos> or 2, half and half; 2 → <eos> surely: [] and [2] score the same, log 0.5
    table = _table([[1, 1, 1, 1], [0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 0, 0]])
    stepper = RecordingStepper(table)
    found = beam_search(stepper, beam_plan([], beam=2, num=1, max_tokens=5, length_penalty=0.0))
    assert [h.tokens for h in found] == [[]] and stepper.advances == 0


def test_the_bound_for_alpha_between_zero_and_one_is_taken_at_the_longest_length():
    # [] scores log 0.8; [2, 3, 3, …] pays log 0.2 once and then nothing, so cut off at 64
    # tokens it scores log 0.2 / 8 = −0.201 > log 0.8 = −0.223 and wins, although at two
    # tokens it would not (log 0.2 / √2 = −1.14)
    table = _table([[1, 1, 1, 1], [0, 8, 2, 0], [0, 0, 0, 1], [0, 0, 0, 1]])
    found = beam_search(TableStepper(table), beam_plan([], beam=2, num=1, max_tokens=64,
                        length_penalty=0.5))
    assert found[0].tokens == [2] + [3] * 63
    assert found[0].score == pytest.approx(log(0.2) / 8, rel=1e-6)
    assert found[0].logprob == pytest.approx(log(0.2), rel=1e-6)


def test_the_bound_for_negative_alpha_is_taken_at_the_next_length():
    # α = −1 scores log p × length, so the shortest text still possible flatters most.
    # [] scores log 0.3 = −1.20 at once; [2] (2 → <eos> surely) scores 2 log 0.6 = −1.02 and
    # wins, although 3 log 0.6 = −1.53 would not
    table = _table([[1, 1, 1, 1], [0, 3, 6, 1], [0, 1, 0, 0], [0, 1, 0, 0]])
    found = beam_search(TableStepper(table), beam_plan([], beam=3, num=1, max_tokens=5,
                        length_penalty=-1.0))
    assert [h.tokens for h in found] == [[2]]
    assert found[0].score == pytest.approx(2 * log(0.6), rel=1e-6)
    # 2 log 0.5 = −1.39 < log 0.3: nothing can beat [] once it is found
    table = _table([[1, 1, 1, 1], [0, 3, 5, 2], [0, 1, 0, 0], [0, 1, 0, 0]])
    stepper = RecordingStepper(table)
    found = beam_search(stepper, beam_plan([], beam=3, num=1, max_tokens=5, length_penalty=-1.0))
    assert [h.tokens for h in found] == [[]] and stepper.advances == 0


def test_the_bound_uses_the_num_th_best_finished_text():
    # A = [] (log 0.5) and B = [2] (log 0.5 + log 0.05) finish first; C = [2, 4] (log 0.5 +
    # log 0.95) is still live then and must displace B as the second best
    table = _table([[1, 1, 1, 1, 1], [0, 5, 5, 0, 0], [0, 5, 0, 0, 95], [0, 1, 0, 0, 0],
                    [0, 1, 0, 0, 0]])
    stepper = RecordingStepper(table)
    found = beam_search(stepper, beam_plan([], beam=2, num=2, max_tokens=6, length_penalty=0.0))
    assert [h.tokens for h in found] == [[], [2, 4]]
    assert [h.logprob for h in found] == pytest.approx([log(0.5), log(0.5) + log(0.95)])
    assert stepper.advances == 2


def test_finished_and_cut_off_texts_compete_by_their_normalised_scores():
    # <eos> → 2 surely; 2 → 2 (0.9) or <eos> (0.1). With α = 1 (mean log-prob per token):
    # [2] scores log 0.1 / 2 = −1.15, [2, 2] log 0.09 / 3 = −0.80, and [2, 2, 2], cut off at
    # max_tokens, log 0.81 / 3 = −0.070
    table = _table([[1, 1, 1, 1], [0, 0, 1, 0], [0, 1, 9, 0], [0, 1, 0, 0]])
    found = beam_search(TableStepper(table), beam_plan([], beam=2, num=2, max_tokens=3,
                        length_penalty=1.0))
    assert [h.tokens for h in found] == [[2, 2, 2], [2, 2]]
    assert found[0].score == pytest.approx(log(0.81) / 3, rel=1e-6)
    assert found[1].score == pytest.approx((log(0.9) + log(0.1)) / 3, rel=1e-6)
    assert found[1].logprob == pytest.approx(log(0.9) + log(0.1), rel=1e-6)


def test_the_beam_holds_at_most_beam_rows_and_the_default_is_four_for_one_text():
    table = _table([[1] * 8] + [[0, 1, 1, 1, 1, 1, 1, 1]] * 7)
    stepper = RecordingStepper(table)
    found = beam_search(stepper, beam_plan([], max_tokens=4))
    assert len(found) == 1 and stepper.batches == [4, 4, 4]
    stepper = RecordingStepper(table)
    found = beam_search(stepper, beam_plan([], SampleRequest(beam=3, num=2), max_tokens=4))
    assert len(found) == 2 and stepper.batches == [3, 3, 3]
    with pytest.raises(ValueError, match="^beam_search needs a plan with a beam width$"):
        beam_search(stepper, beam_plan([], SampleRequest()))


def test_every_hypothesis_reads_eos_then_style_then_prime():
    table = _table([[1, 1, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]])
    stepper = RecordingStepper(table)
    beam_search(stepper, beam_plan([3, 2], style=[2, 3], beam=2, num=1))
    assert stepper.contexts == [[EOS_ID, 2, 3, 3, 2]]


def test_repetition_rules_see_the_prime_and_the_hypothesis():
    # from anything: 2 (0.6) or 3 (0.4); <eos> only after 3. A penalty of 2 doubles a seen
    # token's log-probability: 2 log 0.6 = −1.02 < log 0.4 = −0.92.
    table = _table([[1, 1, 1, 1], [0, 0, 6, 4], [0, 0, 6, 4], [0, 1, 0, 0]])
    found = beam_search(TableStepper(table), beam_plan([2], beam=1, num=1, max_tokens=5,
                        length_penalty=0.0, repetition_penalty=2.0))
    assert [h.tokens for h in found] == [[3]]  # the prime's 2 is penalised
    found = beam_search(TableStepper(table), beam_plan([], beam=1, num=1, max_tokens=5,
                        length_penalty=0.0, repetition_penalty=2.0))
    assert [h.tokens for h in found] == [[2, 3]]
    assert found[0].logprob == pytest.approx(log(0.6) + log(0.4))


def test_a_form_sets_the_length_within_max_tokens():
    tokens = ["<unk>", "<eos>", ",", "the", "cat", "sat"]
    constraint = FormConstraint(TokenClasses.from_tokens(tokens, "word"), parse_form("2,1"))
    # every token as likely as any other, "," and <unk> too: only the form decides
    table = _table([[1] * 6] * 6)
    found = beam_search(TableStepper(table), beam_plan([], beam=3, num=2, max_tokens=8,
                        length_penalty=0.0, processors=[FormMask(constraint)]))
    assert len(found) == 2
    for h in found:  # two words, the <eos> closing the first line, one word
        assert len(h.tokens) == 4 and h.tokens[2] == EOS_ID
        assert set(h.tokens[:2] + h.tokens[3:]) <= {3, 4, 5}
        assert h.logprob == pytest.approx(5 * log(1 / 6), rel=1e-6)
    # with a prime, the form goes on from it
    found = beam_search(TableStepper(table), beam_plan([3], beam=3, num=1, length_penalty=0.0,
                        processors=[FormMask(constraint)]))
    assert len(found[0].tokens) == 3 and found[0].tokens[1] == EOS_ID


class TrigramStepper:
    """Next-token log-probabilities from the last two tokens: a row's history matters, so
    beam search must keep each hypothesis on its own row (``select``)."""

    def __init__(self, table):  # table [V, V, V]: (two back, previous) → next
        self.table = table.log()
        self.vocab_size = table.shape[-1]
        self.rows = []

    def _scores(self):
        return torch.stack([self.table[r[-2], r[-1]] for r in self.rows])

    def start(self, contexts):
        self.rows = [[EOS_ID, *c][-2:] for c in contexts]
        return self._scores()

    def advance(self, tokens):
        self.rows = [[r[-1], t] for r, t in zip(self.rows, tokens.tolist(), strict=True)]
        return self._scores()

    def select(self, rows):
        self.rows = [self.rows[r] for r in rows.tolist()]


@pytest.mark.parametrize("seed", range(3))
def test_a_wide_beam_over_a_trigram_model_finds_the_brute_force_best(seed):
    generator = torch.Generator().manual_seed(seed)
    table = torch.rand(4, 4, 4, generator=generator, dtype=torch.float64) + 0.05
    table = table / table.sum(dim=-1, keepdim=True)
    logp = table.log()
    scored = []  # every text of up to 3 tokens, closed by <eos> or cut off
    for length in range(1, 4):
        for seq in itertools.product(range(4), repeat=length):
            if EOS_ID in seq[:-1] or (length < 3 and seq[-1] != EOS_ID):
                continue
            history = [EOS_ID, EOS_ID, *seq]
            total = sum(float(logp[history[i], history[i + 1], history[i + 2]])
                        for i in range(length))
            scored.append((total / length, [t for t in seq if t != EOS_ID]))
    scored.sort(key=lambda item: -item[0])
    found = beam_search(TrigramStepper(table), beam_plan([], beam=32, num=3, max_tokens=3,
                        length_penalty=1.0, allow_unk=True))  # token 0 counts too
    assert [h.tokens for h in found] == [tokens for _, tokens in scored[:3]]
    assert [h.score for h in found] == pytest.approx([score for score, _ in scored[:3]])


def test_beam_search_never_takes_unk_unless_allowed():
    # <unk> is the likeliest next token everywhere, then <eos>
    table = _table([[6, 3, 1, 0]] * 4)
    found = beam_search(TableStepper(table), beam_plan([], beam=3, num=2, max_tokens=3,
                                                       length_penalty=0.0))
    assert [h.tokens for h in found] == [[], [2]]
    assert found[0].logprob == pytest.approx(log(0.3), rel=1e-6)
    found = beam_search(TableStepper(table), beam_plan([], beam=3, num=1, max_tokens=3,
                                                       length_penalty=0.0, allow_unk=True))
    assert [h.tokens for h in found] == [[]]
    assert found[0].logprob == pytest.approx(log(0.3), rel=1e-6)
    found = beam_search(TableStepper(table), beam_plan([], beam=3, num=1, max_tokens=3,
                                                       length_penalty=1.0, allow_unk=True))
    assert found[0].tokens[0] == 0  # per token, <unk> <eos> beats <eos> alone
