"""``lm sample`` end to end on tiny trained models: forms, acrostics, style, beam, report, JSON."""

import json
import math
import random
import re

import pytest
import torch
from generation_fakes import POEM_TOKENS, Tracing, make_plan, sampling_allows
from tests_support import assert_clean_error, run_stages

from lm.generation.decoding.sampling import generate
from lm.generation.decoding.steppers import RNNStepper
from lm.models import rnn
from lm.tokenization import EOS_ID

CHARS = "春夏秋冬山水花月风雨江天人日云白青松"
WORDS = "the cat sat on a mat dog ran far away and then came back home".split()
WUJUE = re.compile(r"[^，。\n<>]{5}，[^，。\n<>]{5}。\n[^，。\n<>]{5}，[^，。\n<>]{5}。")


def _corpora(folder):
    rng = random.Random(3)
    poems = folder / "poems.txt"
    with open(poems, "w", encoding="utf-8") as handle:
        for _ in range(200):
            lines = ["".join(rng.choice(CHARS) for _ in range(5)) + "，"
                     + "".join(rng.choice(CHARS) for _ in range(5)) + "。" for _ in range(2)]
            handle.write("\n".join(lines) + "\n\n")
    words = folder / "words.txt"
    with open(words, "w", encoding="utf-8") as handle:
        for _ in range(300):
            handle.write(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) + "\n")
    return poems, words


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with a char-level poem model, a word-level model and a poem n-gram."""
    folder = tmp_path_factory.mktemp("sample-store")
    poems, words = _corpora(folder)
    tiny = ["--max-steps", "2", "--eval-tokens", "100", "--no-wandb", "--no-progress",
            "--emb-size", "16", "--hidden-size", "16", "--batch-size", "8", "--bptt", "10"]
    return run_stages(folder, [["prepare", str(poems), "--doc-sep", "blank", "--name", "p"],
                               ["train", "p", *tiny],
                               ["prepare", str(words), "--level", "word", "--name", "w"],
                               ["train", "w", *tiny],
                               ["ngram", "p", "--order", "3", "--no-arpa"]])


@pytest.fixture
def lm(cli, store):
    def run(*args):
        return cli("--artifacts", store, "sample", *args)

    return run


def _json(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_json_is_samples_only_without_report(lm):
    payload = _json(lm("p", "--num", "3", "--json"))
    assert list(payload) == ["samples"] and len(payload["samples"]) == 3


def test_form_with_report_as_json(lm):
    payload = _json(lm("p", "--form", "wujue", "--num", "40", "--temperature", "1.5",
                       "--json", "--report"))
    assert set(payload) == {"samples", "report"}
    assert all(WUJUE.fullmatch(s) for s in payload["samples"]), payload["samples"]
    report = payload["report"]
    assert set(report) >= {"samples", "form", "well_formed_rate", "rhyme_rate", "distinct_1",
                           "distinct_2", "logprob_per_char", "logprob_per_token", "copy_rate"}
    assert report["samples"] == 40 and report["well_formed_rate"] == 1.0
    assert 0 <= report["copy_rate"] <= 1 and report["logprob_per_char"] < 0
    assert 0 < report["distinct_2"] <= 1 and 0 <= report["rhyme_rate"] <= 1


def test_report_table(lm):
    result = lm("p", "--num", "5", "--report")
    assert result.code == 0, result.err
    assert "well-formed" in result.out and "distinct-2" in result.out


def test_acrostic_heads_every_line_and_respells_to_the_model_script(lm):
    samples = _json(lm("p", "--acrostic", "春夏秋冬", "--num", "10", "--json"))["samples"]
    for sample in samples:
        assert [line[0] for line in re.split("[，。\n]+", sample.strip("。"))] == list("春夏秋冬")
    result = lm("p", "--acrostic", "風雲", "--form", "5,5", "--num", "4", "--json",
                "--script", "traditional")
    assert "read '風雲' as '风云'" in result.err
    for sample in _json(result)["samples"]:
        assert sample[0] == "風" and sample[6] == "雲"


def test_rhyme_with_acrostic(lm):
    from lm.generation.report import rhyme_chars
    from lm.generation.verse.rhyme import rhymes

    samples = _json(lm("p", "--form", "wulv", "--acrostic", "春夏秋冬山水花月", "--rhyme",
                       "--num", "10", "--json"))["samples"]
    assert all(rhymes(rhyme_chars(s)) for s in samples)


def test_style_is_read_but_not_printed(lm):
    styled = _json(lm("p", "--prime", "春", "--style", "山水", "--num", "6", "--json",
                      "--form", "wujue"))["samples"]
    assert all(s.startswith("春") and WUJUE.fullmatch(s) for s in styled)


def _flat(state):
    """Every number of a recurrent state (a tensor or tuples of them, however nested)."""
    if isinstance(state, torch.Tensor):
        return state.flatten()
    return torch.cat([_flat(part) for part in state])


def test_style_changes_the_hidden_state():
    torch.manual_seed(0)
    model = rnn.RNNLM(rnn.ModelConfig(vocab_size=len(POEM_TOKENS), emb_size=8, hidden_size=8,
                                      layers=1))
    stepper = RNNStepper(model)
    plain = stepper.start([[EOS_ID, 7]])
    hidden_plain = _flat(stepper.hidden).clone()
    styled = stepper.start([[EOS_ID, 9, 10, 7]])
    assert not torch.allclose(_flat(stepper.hidden), hidden_plain)
    assert not torch.allclose(plain, styled)
    seen = []

    class Recorder(RNNStepper):
        def start(self, contexts):
            seen.extend(contexts)
            return super().start(contexts)

    outputs = generate(Recorder(model), make_plan([7], num=2, max_tokens=5, style=[9, 10]))
    assert seen == [[EOS_ID, 9, 10, 7]] * 2  # style after the <eos>, before the prime
    assert all(len(ids) <= 5 for ids in outputs)  # the outputs hold generated ids only


def test_beam_search_with_a_form(lm):
    first = _json(lm("p", "--beam", "3", "--num", "2", "--form", "wujue", "--json"))
    second = _json(lm("p", "--beam", "3", "--num", "2", "--form", "wujue", "--json",
                      "--seed", "9"))
    assert first == second and len(first["samples"]) == 2
    assert all(WUJUE.fullmatch(s) for s in first["samples"])


def test_ngram_model_with_form_and_beam(lm):
    payload = _json(lm("p-3gram", "--form", "wujue", "--num", "10", "--json", "--report"))
    assert all(WUJUE.fullmatch(s) for s in payload["samples"])
    assert payload["report"]["well_formed_rate"] == 1.0
    beam = _json(lm("p-3gram", "--form", "wujue", "--beam", "2", "--num", "2", "--json"))
    assert all(WUJUE.fullmatch(s) for s in beam["samples"])


def test_word_level_form(lm):
    payload = _json(lm("w", "--form", "3,4", "--num", "10", "--json", "--report",
                       "--temperature", "2"))
    for sample in payload["samples"]:
        assert [len(line.split()) for line in sample.split("\n")] == [3, 4]
    assert payload["report"]["rhyme_rate"] is None
    assert payload["report"]["well_formed_rate"] == 1.0


def _traced(lm, store, *args):
    """``lm sample ARGS --json``, and each sample's (log-probabilities, chosen token) steps.

    The model's scores are caught as the sampler reads them, so the checks below hold each
    token against the exact distribution it was drawn from. Also: the structural tokens
    (every one that is not a Chinese character: punctuation, newline, <eos>, <unk>).
    """
    from lm.artifacts import Store
    from lm.generation.decoder import Decoder
    from lm.generation.decoding import sampling
    from lm.tokenization import load_tokenizer

    steppers, outputs = [], []
    make, generate_ = Decoder.stepper, sampling.generate

    def tracing(*a, **k):
        steppers.append(Tracing(make(*a, **k)))
        return steppers[-1]

    def generating(*a, **k):
        outputs.append(generate_(*a, **k))
        return outputs[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Decoder, "stepper", tracing)
        patch.setattr(sampling, "generate", generating)
        payload = _json(lm(*args, "--json"))
    (stepper,), (ids,) = steppers, outputs
    vocab = load_tokenizer(Store(store).resolve(args[0], ("model",)).file("tokenizer.json"))
    structural = {i for t, i in vocab.get_vocab().items() if not "\u4e00" <= t <= "\u9fff"}
    return payload, stepper.steps(ids), structural


def _shaped(logprobs, history, structural, penalty, n):
    """The scores after the CTRL penalty and the n-gram ban, worked from their definitions."""
    s = logprobs.double().clone()
    for t in set(history) - structural:
        s[t] = s[t] / penalty if s[t] > 0 else s[t] * penalty
    tail = history[len(history) - n + 1:]
    if len(history) >= n - 1 and not set(tail) & structural:
        for i in range(len(history) - n + 1):
            if history[i:i + n - 1] == tail and history[i + n - 1] not in structural:
                s[history[i + n - 1]] = -math.inf
    return s


def test_sampling_flags(lm, store):
    payload, steps, structural = _traced(
        lm, store, "p", "--num", "4", "--top-k", "3", "--top-p", "0.9",
        "--repetition-penalty", "1.3", "--no-repeat-ngram", "2")
    assert len(payload["samples"]) == 4
    for sample in steps:
        ids = [token for _, token in sample]
        for k, (logprobs, token) in enumerate(sample):
            scores = _shaped(logprobs, ids[:k], structural, 1.3, 2)
            assert sampling_allows(scores, token, top_k=3, top_p=0.9), (ids[:k + 1], scores)
        pairs = [p for p in zip(ids, ids[1:], strict=False) if not set(p) & structural]
        assert len(pairs) == len(set(pairs))  # no bigram of characters twice
    assert sum(len(sample) for sample in steps) >= 20  # the checks above saw real samples
    # every switch has an off form, as pipeline specs write `report: false`
    plain = lm("p", "--num", "1", "--no-report", "--no-rhyme", "--no-level-tone", "--no-json")
    assert plain.code == 0 and "── 1 ──" in plain.out and "well-formed" not in plain.out


# The tiny model's next-token log-probabilities lie within 0.07 nats of each other: a low
# temperature spreads them out so that the nucleus and min-p have tokens to drop.
COLD = 0.02


def test_top_p_draws_only_from_the_nucleus(lm, store):
    _, steps, _ = _traced(lm, store, "p", "--num", "6", "--max-tokens", "30",
                          "--temperature", str(COLD), "--top-p", "0.5")
    chosen = [step for sample in steps for step in sample]
    assert len(chosen) >= 20
    assert all(sampling_allows(lp / COLD, t, top_p=0.5) for lp, t in chosen)
    assert any(not sampling_allows(lp / COLD, v, top_p=0.5)  # the nucleus left tokens out
               for lp, _ in chosen for v in range(len(lp)))


def test_greedy_takes_the_argmax_and_the_seed_decides_the_samples(lm, store):
    payload, steps, _ = _traced(lm, store, "p", "--num", "3", "--max-tokens", "25",
                                "--temperature", "0")
    assert all(logprobs[token] == logprobs.max() for sample in steps for logprobs, token in sample)
    assert len(set(payload["samples"])) == 1 and len(steps[0]) == 25
    args = ("p", "--num", "4", "--max-tokens", "30", "--json")
    first, again, other = (_json(lm(*args, "--seed", seed)) for seed in ("5", "5", "6"))
    assert first == again != other


def test_min_p_through_the_command(lm, store):
    greedy = _json(lm("p", "--num", "3", "--max-tokens", "30", "--temperature", "0", "--json"))
    top_only = _json(lm("p", "--num", "3", "--max-tokens", "30", "--temperature", "1.7",
                        "--min-p", "1", "--seed", "3", "--json"))
    assert top_only == greedy  # min-p 1 keeps only the likeliest token, at any temperature
    args = ("p", "--num", "8", "--max-tokens", "40", "--temperature", str(COLD))
    payload, steps, _ = _traced(lm, store, *args, "--min-p", "0.5")
    assert len(payload["samples"]) == 8
    floor = COLD * math.log(0.5)  # p ≥ 0.5 p_max at T: log p − log p_max ≥ T log 0.5
    assert all(float(lp[t] - lp.max()) >= floor - 1e-6 for sample in steps for lp, t in sample)
    _, free, _ = _traced(lm, store, *args)  # the same run without --min-p goes below it
    assert any(float(lp[t] - lp.max()) < floor for sample in free for lp, t in sample)


@pytest.mark.parametrize("args, message", [
    (["--acrostic", "春夏", "--form", "wujue"], "--acrostic has 2 characters but --form wujue"),
    (["--acrostic", "龍"], "'龍' is not in the model's vocabulary"),
    (["--form", "sonnet"], "--form 'sonnet' is not a form"),
    (["--form", "wujue", "--prime", "春春春春春春"], "--prime does not fit the form"),
    (["--beam", "2", "--num", "1", "--top-k", "3"], "--top-k and --top-p"),
    (["--script", "klingon"], "--script must be one of simplified, traditional, not 'klingon'"),
    (["--repetition-penalty", "0"], "--repetition-penalty"),
    (["--min-p", "0"], "--min-p must be in (0, 1], not 0.0"),
    (["--min-p", "1.5"], "--min-p must be in (0, 1], not 1.5"),
    (["--beam", "2", "--num", "1", "--min-p", "0.5"], "--min-p"),
    (["--seed", str(2**64)], "--seed must be a 64-bit integer"),
])
def test_clean_errors(lm, args, message):
    assert_clean_error(lm("p", *args), message)


def test_word_model_refuses_rhyme(lm):
    assert_clean_error(lm("w", "--form", "3,3", "--rhyme"), "--rhyme")


def test_mix_samples_from_the_interpolation_perplexity_fits(lm, cli, store):
    """--weight auto is perplexity's fitted λ; λ = 1 is the model alone, λ = 0 the n-gram."""
    args = ("--num", "4", "--max-tokens", "30", "--seed", "5", "--json")
    mixed = _json(lm("p", "--mix", "p-3gram", *args))
    fitted = json.loads(cli("--artifacts", store, "perplexity", "p", "--mix", "p-3gram",
                            "--json").out)["weight"]
    assert mixed["weight"] == pytest.approx(fitted, abs=1e-12)
    alone = _json(lm("p", *args))["samples"]
    assert _json(lm("p", "--mix", "p-3gram", "--weight", "1", *args))["samples"] == alone
    ngram = _json(lm("p-3gram", *args))["samples"]
    assert _json(lm("p", "--mix", "p-3gram", "--weight", "0", *args))["samples"] == ngram
    half = _json(lm("p", "--mix", "p-3gram", "--weight", "0.5", *args))["samples"]
    assert half != alone and half != ngram
    form = _json(lm("p", "--mix", "p-3gram", "--form", "wujue", "--beam", "3", "--num", "2",
                    "--json"))
    assert all(WUJUE.fullmatch(text) for text in form["samples"])


@pytest.mark.parametrize("ref, mix, message", [
    ("w", "p-3gram", "--mix ngram:p-3gram@v1 has another vocabulary than model:w@v1"),
    ("p-3gram", "p", "--mix interpolates an RNN model with an n-gram"),
    ("p-3gram", "p-3gram", "--mix interpolates an RNN model with an n-gram"),
    ("p", "p", "'p' is a dataset artifact, but this command needs a ngram"),
])
def test_mix_refuses_what_cannot_be_mixed(lm, ref, mix, message):
    assert_clean_error(lm(ref, "--mix", mix), message)
