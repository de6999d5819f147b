"""The decoder: a model opened once for every request, a request resolved once into a plan,
the mixture weight fitted once per pair and kept in the store, <unk> never drawn."""

import json
import random
import sys
from pathlib import Path

import pytest
from tests_support import run_stages

from lm.artifacts import Store
from lm.generation.decoder import Decoder
from lm.generation.request import SampleRequest

CHARS = "春夏秋冬山花天人雲風東中空紅同江樓年家流月日水雨白鳥去客夜落酒石草柳"
RARE = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥"  # left out of a 30-character vocabulary


def _corpus(path: Path, rare: float = 0.0) -> Path:
    rng = random.Random(7)

    def char() -> str:
        return rng.choice(RARE) if rng.random() < rare else rng.choice(CHARS)

    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(300):
            lines = ["".join(char() for _ in range(5)) + "，" + "".join(char() for _ in range(5))
                     + "。" for _ in range(2)]
            handle.write("\n".join(lines) + "\n\n")
    return path


TINY = ["--eval-tokens", "200", "--no-wandb", "--no-progress", "--emb-size", "24",
        "--hidden-size", "24", "--batch-size", "8", "--bptt", "12", "--seed", "3"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decoder")
    return run_stages(folder, [
        ["prepare", str(_corpus(folder / "poems.txt")), "--doc-sep", "blank", "--name", "p"],
        ["train", "p", "--max-steps", "20", *TINY],
        ["ngram", "p", "--order", "3", "--no-arpa"]])


@pytest.fixture(scope="module")
def rare_store(tmp_path_factory):
    """A model whose vocabulary leaves about 5% of the training tokens as <unk>."""
    folder = tmp_path_factory.mktemp("decoder-unk")
    corpus = _corpus(folder / "poems.txt", rare=0.08)
    return run_stages(folder, [
        ["prepare", str(corpus), "--doc-sep", "blank", "--name", "r", "--vocab-size", "40"],
        ["train", "r", "--max-steps", "60", *TINY]])


def test_the_rare_store_leaves_five_percent_unk(rare_store):
    splits = Store(rare_store).resolve("r", "dataset").metrics["splits"]
    rate = splits["train"]["unk"] / splits["train"]["tokens"]
    assert 0.04 < rate < 0.065


def test_a_thousand_samples_never_draw_unk_unless_allowed(rare_store):
    decoder = Decoder.open(Store(rare_store), "r")
    banned = decoder.sample(SampleRequest(num=1000, max_tokens=30, seed=2))
    assert len(banned.texts) == 1000 and not any("<unk>" in t for t in banned.texts)
    beams = decoder.sample(SampleRequest(num=4, beam=8, max_tokens=30))
    assert not any("<unk>" in t for t in beams.texts)
    allowed = decoder.sample(SampleRequest(num=1000, max_tokens=30, seed=2, allow_unk=True))
    assert sum("<unk>" in t for t in allowed.texts) > 100  # the model does give it mass


def test_weights_are_loaded_once_for_many_requests(store, monkeypatch):
    from lm.models import rnn

    loads = []
    real = rnn.load
    monkeypatch.setattr(rnn, "load", lambda *a, **k: loads.append(a) or real(*a, **k))
    decoder = Decoder.open(Store(store), "p")
    first = decoder.sample(SampleRequest(num=2, seed=1, form="wujue"))
    second = decoder.sample(SampleRequest(num=2, seed=1, form="wujue"))
    assert first.texts == second.texts and len(loads) == 1


def test_the_mixture_weight_is_fitted_once_and_kept_in_the_store(store, monkeypatch, cli):
    from lm.evaluation import weights

    fits = []
    real = weights.tune_weight
    monkeypatch.setattr(weights, "tune_weight", lambda *a: fits.append(1) or real(*a))
    request = SampleRequest(num=2, seed=1, mix="p-3gram")
    first = Decoder.open(Store(store), "p").sample(request)
    again = Decoder.open(Store(store), "p").sample(request)  # a new process would do this
    assert fits == [1] and first.weight == again.weight and 0 <= first.weight <= 1
    (record,) = Store(store).list("mixture")
    assert record.metrics["weight"] == first.weight
    assert [i["ref"] for i in record.manifest["inputs"]] == ["model:p@v1", "ngram:p-3gram@v1"]
    result = cli("--artifacts", store, "perplexity", "p", "--mix", "p-3gram", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["weight"] == first.weight and fits == [1]
    assert len(Store(store).list("mixture")) == 1


def test_a_request_that_cannot_work_fails_before_the_weights_load(store, monkeypatch):
    from lm.errors import LMError
    from lm.models import rnn

    monkeypatch.setattr(rnn, "load", lambda *a, **k: pytest.fail("loaded"))
    decoder = Decoder.open(Store(store), "p")
    with pytest.raises(LMError, match="^--acrostic: '甲' is not in the model's vocabulary"):
        decoder.plan(SampleRequest(form="wujue", acrostic="甲乙丙丁"))
    with pytest.raises(LMError, match="^--form 9,9,9 needs up to 34 tokens, more than "
                                      "--max-tokens 20"):
        decoder.plan(SampleRequest(form="9,9,9", max_tokens=20))


def _files_handed(request_of, run):
    """The package files whose functions are handed the request object, up to the loop."""
    files: list[str] = []
    package = str(Path(__import__("lm").__file__).parent)

    def profile(frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(package):
            return
        if frame.f_code.co_name in ("generate", "beam_search"):
            sys.setprofile(None)  # the decoding loop: the route ends here
            return
        request = request_of()
        if request is not None and any(v is request for v in frame.f_locals.values()):
            name = frame.f_code.co_filename[len(package) + 1:]
            if name not in files:
                files.append(name)

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return files


def test_a_request_reaches_the_decoding_loop_through_at_most_eight_files(store, monkeypatch,
                                                                       cli):
    from lm import settings

    made = []
    real = settings._build
    monkeypatch.setattr(settings, "_build", lambda *a: made.append(real(*a)) or made[-1])
    files = _files_handed(lambda: made[-1] if made else None, lambda: cli(
        "--artifacts", store, "sample", "p", "--form", "wujue", "--meter", "--acrostic",
        "春夏秋冬", "--mix", "p-3gram", "--num", "2"))
    assert files == ["generation/command.py", "generation/decoder.py", "generation/request.py",
                     "settings.py", "generation/verse/registry.py", "generation/decoding/plan.py"]
    assert len(files) <= 8


def test_best_of_keeps_the_draft_the_model_scores_best_per_character(store):
    from lm.generation.report import rescore
    from lm.tokenization import encode_text

    decoder = Decoder.open(Store(store), "p")
    best = decoder.sample(SampleRequest(num=3, best_of=4, seed=5, form="wujue", report=True))
    drafts = decoder.sample(SampleRequest(num=12, seed=5, form="wujue"))  # the same draws
    logprobs = rescore(decoder.stepper(), [encode_text(decoder.tokenizer, t)
                                           for t in drafts.texts])
    per_char = [lp / (len(t) + 1) for lp, t in zip(logprobs, drafts.texts, strict=True)]
    expected = [max(range(i, i + 4), key=per_char.__getitem__) for i in (0, 4, 8)]
    assert best.texts == [drafts.texts[i] for i in expected]
    figures = best.report["best_of"]
    assert figures["drafts"] == 4
    assert figures["chosen_logprob_per_char"] == pytest.approx(
        sum(per_char[i] for i in expected) / 3, rel=1e-6)
    assert figures["drafts_logprob_per_char"] == pytest.approx(sum(per_char) / 12, rel=1e-6)
    assert best.report["logprob_per_char"] == pytest.approx(figures["chosen_logprob_per_char"],
                                                            rel=1e-6)
    assert figures["chosen_logprob_per_char"] > figures["drafts_logprob_per_char"]


def test_best_of_and_beam_exclude_each_other(cli, store):
    result = cli("--artifacts", store, "sample", "p", "--best-of", "4", "--beam", "4")
    assert result.code == 2
    assert "--best-of draws drafts to choose from, --beam searches for the likeliest" in \
        result.err


@pytest.fixture(scope="module")
def titled_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decoder-titles")
    rng = random.Random(4)
    with open(folder / "poems.jsonl", "w", encoding="utf-8") as out:
        for i in range(200):
            theme = "秋" if i % 2 else "春"
            body = "，".join("".join(rng.choice(CHARS) for _ in range(5)) for _ in range(2))
            out.write(json.dumps({"text": body + "。", "title": theme + rng.choice(CHARS)},
                                 ensure_ascii=False) + "\n")
    return run_stages(folder, [
        ["prepare", str(folder / "poems.jsonl"), "--title-field", "title", "--name", "t"],
        ["train", "t", "--max-steps", "20", *TINY]])


def test_a_title_is_read_before_every_poem(titled_store, monkeypatch):
    from lm.generation.decoding.steppers import RNNStepper
    from lm.tokenization import EOS_ID, SEP_ID

    contexts = []
    real = RNNStepper.start
    monkeypatch.setattr(RNNStepper, "start", lambda self, c: contexts.append(c) or real(self, c))
    decoder = Decoder.open(Store(titled_store), "t")
    result = decoder.sample(SampleRequest(title="秋夜", form="5,5", num=3, seed=1))
    title = decoder.tokenizer.encode("秋夜", add_special_tokens=False).ids
    assert contexts[0] == [[EOS_ID, *title, SEP_ID]] * 3
    assert result.titles == ["秋夜"] * 3
    assert all(len(t) == 12 and "<sep>" not in t for t in result.texts)


def test_without_a_title_the_model_writes_its_own(titled_store):
    decoder = Decoder.open(Store(titled_store), "t")
    for request in (SampleRequest(form="5,5", num=6, seed=2), SampleRequest(num=6, seed=2)):
        result = decoder.sample(request)
        assert len(result.titles) == 6 and any(result.titles)
        assert all("<sep>" not in t and "<sep>" not in title
                   for t, title in zip(result.texts, result.titles, strict=True))
    formed = decoder.sample(SampleRequest(form="5,5", num=6, seed=2)).texts
    assert all(len(t) == 12 for t in formed)


def test_a_title_needs_a_titled_model(store):
    from lm.errors import LMError

    with pytest.raises(LMError, match="^--title needs a model of titled documents"):
        Decoder.open(Store(store), "p").plan(SampleRequest(title="秋夜"))


def test_the_report_scores_each_poem_under_its_title(titled_store):
    from lm.generation.report import rescore
    from lm.tokenization import SEP_ID

    decoder = Decoder.open(Store(titled_store), "t")
    result = decoder.sample(SampleRequest(title="春", form="5,5", num=2, seed=3, report=True))
    head = [*decoder.tokenizer.encode("春", add_special_tokens=False).ids, SEP_ID]
    ids = [decoder.tokenizer.encode(t, add_special_tokens=False).ids for t in result.texts]
    under = rescore(decoder.stepper(), ids, [head] * 2)
    chars = sum(len(t) + 1 for t in result.texts)
    assert result.report["logprob_per_char"] == pytest.approx(sum(under) / chars, rel=1e-6)
    assert rescore(decoder.stepper(), ids) != under  # the title does change the figures
