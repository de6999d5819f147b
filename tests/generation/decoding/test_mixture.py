"""Sampling from λ·p_model + (1−λ)·p_ngram: the stepper's distribution, exactly."""

import torch
from generation_fakes import TableStepper, random_table

from lm.generation.decoding.steppers import MixtureStepper


def test_each_step_is_the_interpolation_of_the_two_distributions():
    first, second = random_table(7, seed=1), random_table(7, seed=2)
    mixed = MixtureStepper(TableStepper(first), TableStepper(second), 0.3)
    contexts = [[1, 4], [1, 2], [1, 6]]
    got = mixed.start(contexts).exp()
    expected = 0.3 * first[[4, 2, 6]] + 0.7 * second[[4, 2, 6]]
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got.sum(-1), torch.ones(3))
    got = mixed.advance(torch.tensor([5, 0, 3])).exp()
    torch.testing.assert_close(got, 0.3 * first[[5, 0, 3]] + 0.7 * second[[5, 0, 3]],
                               rtol=1e-6, atol=1e-7)


def test_select_keeps_both_models_on_the_same_rows():
    first, second = random_table(6, seed=3), random_table(6, seed=4)
    mixed = MixtureStepper(TableStepper(first), TableStepper(second), 0.8)
    mixed.start([[1], [1], [1]])
    mixed.advance(torch.tensor([2, 3, 4]))
    mixed.select(torch.tensor([2, 0]))  # rows 2 and 0 survive (as beam search reorders them)
    got = mixed.advance(torch.tensor([5, 1])).exp()
    torch.testing.assert_close(got, 0.8 * first[[5, 1]] + 0.2 * second[[5, 1]],
                               rtol=1e-6, atol=1e-7)


def test_the_end_weights_are_one_model_alone():
    first, second = random_table(5, seed=5), random_table(5, seed=6)
    for weight, alone in ((1.0, first), (0.0, second)):
        mixed = MixtureStepper(TableStepper(first), TableStepper(second), weight)
        torch.testing.assert_close(mixed.start([[1], [3]]).exp(), alone[[1, 3]])
