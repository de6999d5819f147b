"""One model opened once, for every front end: ``lm sample`` (sampling, beam search, the
report), ``lm serve`` and the Python API.

A :class:`Decoder` holds what every request to a model needs and nothing a request decides:
the artifact, its tokenizer and token classes, its lexicon (corpus, tone tables and tune
templates, built once), the weights (loaded once, verified when the artifact was opened), and
the n-gram partners it mixes with, each with the weight λ of the pair (fitted once and kept in
the store: :mod:`lm.evaluation.weights`). :meth:`Decoder.plan` checks a request once and
resolves it into a frozen :class:`SampleJob`; :meth:`Decoder.run` decodes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lm.artifacts import Artifact, Store
from lm.errors import LMError
from lm.generation.decoding.plan import Plan, plan_of
from lm.generation.decoding.processors import TitleFirst
from lm.generation.decoding.steppers import MixtureStepper, NgramStepper, RNNStepper, Stepper
from lm.generation.request import SampleRequest
from lm.generation.verse.constraint import MAX_TITLE
from lm.generation.verse.draft import Verse
from lm.generation.verse.lexicon import Corpus, Lexicon
from lm.generation.verse.registry import compose
from lm.generation.verse.script import convert, fit_to_vocabulary
from lm.generation.verse.vocab import TokenClasses
from lm.settings import named
from lm.tokenization import EOS_ID, UNK_ID, decode, encode_text, load_tokenizer

MODEL_KINDS = ("model", "ngram")


@dataclass
class SampleResult:
    texts: list[str]
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    tones: list[str] | None = None  # each text's tone marks (平/仄), under --meter or a ci
    weight: float | None = None  # the model's weight λ when sampling from a --mix mixture
    titles: list[str] | None = None  # each poem's title, for a model of titled documents


@dataclass(frozen=True)
class SampleJob:
    """A request resolved against one model: the decoding plan and what the output needs."""

    plan: Plan
    verse: Verse
    prime: str  # the prime as read (in the model's script), printed before each sample
    warnings: tuple[str, ...] = ()
    mix: str | None = None  # the n-gram partner's reference
    weight: float | None = None  # λ on the model when mixing
    script: str | None = None
    report: bool = False
    tones: bool = False  # print each line's tones (under --meter or a ci tune)
    best_of: int = 1  # drafts drawn per poem, the best kept
    head: tuple[int, ...] = ()  # what each poem follows: its title and <sep>, when given
    writes_title: bool = False  # the model writes each poem's title first


@dataclass
class Partner:
    """An n-gram opened once to mix with the model, and the pair's fitted λ."""

    artifact: Artifact
    model: Any  # lm.ngram.NgramModel
    auto: float | None = None  # --weight auto, fitted on first use


def corpus_of(store: Store, artifact: Artifact) -> Corpus:
    """The dataset behind a model or n-gram, or an empty Corpus when none is recorded."""
    from lm.evaluation.scoring import dataset_of

    try:
        dataset = dataset_of(store, artifact)
    except LMError:
        return Corpus()
    params = dataset.manifest.get("params", {})
    return Corpus(params.get("source"), bool(params.get("simplify")), dataset)


class Decoder:
    """A model or n-gram artifact opened once (see the module's docstring)."""

    def __init__(self, store: Store, artifact: Artifact, device: str = "auto") -> None:
        self.store, self.artifact, self.device = store, artifact, device
        self.tokenizer = load_tokenizer(artifact.file("tokenizer.json"))
        self.level = artifact.manifest.get("level", "char")
        self.classes = TokenClasses.of(self.tokenizer, self.level)
        self.lexicon = Lexicon(self.classes, corpus_of(store, artifact))
        self.partners: dict[str, Partner] = {}

    @classmethod
    def open(cls, store: Store, ref: str, device: str = "auto") -> Decoder:
        return cls(store, store.resolve(ref, MODEL_KINDS), device)

    # -- what is loaded once ---------------------------------------------------------------
    @cached_property
    def weights(self) -> Any:
        """The RNN on its device, or the n-gram's tables: loaded on first use."""
        from lm.evaluation.scoring import load_weights

        return load_weights(self.artifact, self.device)

    def stepper(self, job: SampleJob | None = None) -> Stepper:
        """A fresh stepper over the loaded weights, mixed with the job's n-gram if any."""
        if self.artifact.kind == "ngram":
            own: Stepper = NgramStepper(self.weights)
        else:
            own = RNNStepper(self.weights, next(self.weights.parameters()).device)
        if job is None or job.mix is None:
            return own
        return MixtureStepper(own, NgramStepper(self.partner(job.mix).model), job.weight)

    def partner(self, ref: str) -> Partner:
        """The n-gram ``ref`` to mix with, opened once; it must read the model's tokens."""
        if ref not in self.partners:
            self._check_partner(None)  # an n-gram mixes with nothing: say so before looking
            other = self.store.resolve(ref, "ngram")
            self._check_partner(other)
            from lm.ngram import NgramModel

            self.partners[ref] = Partner(other, NgramModel.load(other.path))
        return self.partners[ref]

    def mix_with(self, other: Decoder) -> None:
        """Mix with an n-gram another decoder has loaded already (the server serves both)."""
        self._check_partner(other.artifact)
        self.partners[other.artifact.ref] = Partner(other.artifact, other.weights)

    def _check_partner(self, other: Artifact | None) -> None:
        if self.artifact.kind != "model" or (other is not None and other.kind != "ngram"):
            raise LMError(f"{named('mix')} interpolates an RNN model with an n-gram: sample "
                          f"from the RNN model and pass the n-gram to {named('mix')}")
        if other is not None and _tokenizer_hash(other) != _tokenizer_hash(self.artifact):
            raise LMError(f"{named('mix')} {other.ref} has another vocabulary than "
                          f"{self.artifact.ref}: build the n-gram on the model's dataset "
                          "(lm ngram DATASET)")

    def weight(self, ref: str, weight: str) -> float:
        """λ for mixing with ``ref``: the number given, or the pair's fitted one (auto)."""
        if weight != "auto":
            return float(weight)
        partner = self.partner(ref)
        if partner.auto is None:
            from lm.evaluation.scoring import ScoreRequest
            from lm.evaluation.weights import fitted_weight

            partner.auto = fitted_weight(self.store, self.artifact, partner.artifact,
                                         ScoreRequest(device=self.device))
        return partner.auto

    # -- a request, once -------------------------------------------------------------------
    def plan(self, request: SampleRequest) -> SampleJob:
        """Check a request once and resolve it against this model; nothing is decoded yet, so
        a request that cannot work fails before any model work."""
        request.check()
        warnings: list[str] = []
        prime = self._in_vocabulary(request.prime, "prime", warnings)
        style = self._in_vocabulary(request.style, "style", warnings)
        prime_ids = read_text(self.tokenizer, prime, named("prime"), warnings)
        style_ids = read_text(self.tokenizer, style, named("style"), warnings)
        head = self._head(request, warnings)
        writes = head is None
        verse = compose(request, self.lexicon, warnings, title_first=writes)
        first = TitleFirst(self.classes.sep, EOS_ID, MAX_TITLE) \
            if writes and verse.constraint is None else None
        plan = plan_of(request, prime_ids, style_ids, verse.constraint,
                       self.classes.structural(), head or (), first)
        weight = self.weight(request.mix, request.weight) if request.mix is not None else None
        return SampleJob(plan, verse, prime, tuple(warnings), request.mix, weight,
                         request.script, request.report,
                         request.meter or verse.template is not None,
                         request.best_of if request.beam is None else 1, head or (), writes)

    def _head(self, request: SampleRequest, warnings: list[str]) -> tuple[int, ...] | None:
        """What a poem of a titled model follows: ``--title`` and ``<sep>``; an empty title
        before a prime or style text; None when the model writes the title itself."""
        sep = self.classes.sep
        if sep is None:
            if request.title is not None:
                raise LMError(f"{named('title')} needs a model of titled documents, which "
                              f"{self.artifact.ref} is not: prepare its corpus with titles "
                              "(chinese-poetry keeps them; --title-field elsewhere)")
            return ()
        if request.title is not None:
            title = self._in_vocabulary(request.title, "title", warnings)
            return (*read_text(self.tokenizer, title, named("title"), warnings), sep)
        return (sep,) if request.prime or request.style else None

    def _in_vocabulary(self, text: str, name: str, warnings: list[str]) -> str:
        """Char-level input, respelt in the model's script (OpenCC) when that fits it better."""
        if self.classes.level != "char" or not text:
            return text
        fitted = fit_to_vocabulary(text, self.classes.index)
        if fitted != text:
            warnings.append(f"{named(name)}: read {text!r} as {fitted!r}, the model's script")
        return fitted

    # -- decoding ----------------------------------------------------------------------------
    def run(self, job: SampleJob) -> SampleResult:
        from lm.generation.decoding.beam import beam_search
        from lm.generation.decoding.sampling import generate

        stepper = self.stepper(job)
        plan = job.plan
        if plan.beam is not None:
            outputs = [h.tokens for h in beam_search(stepper, plan)]
        else:
            outputs = generate(stepper, plan)
        heads, outputs = self._titles(job, outputs)
        texts = [self._text(job, ids) for ids in outputs]
        drafts = None
        if job.best_of > 1:
            outputs, texts, heads, drafts = self._best(job, stepper, outputs, texts, heads)
        warnings = list(job.warnings)
        report = None
        if job.report:
            from lm.generation.report import measure

            report = measure(self, job, stepper, texts,
                             [list(plan.prime) + ids for ids in outputs], warnings, heads)
            if drafts is not None:
                report["best_of"] = drafts
        tones = None
        if job.tones:
            from lm.generation.verse.metre import tone_marks

            tones = [tone_marks(t, job.verse.simplified) for t in texts]
        titles = None if self.classes.sep is None else [
            convert(decode(self.tokenizer, head[:-1], self.level), job.script) for head in heads]
        return SampleResult([convert(t, job.script) for t in texts], warnings, report, tones,
                            job.weight, titles)

    def _titles(self, job: SampleJob, outputs: list[list[int]]
                ) -> tuple[list[list[int]], list[list[int]]]:
        """(what each poem follows, the poem): the given head, or the title a sample wrote
        itself (up to its ``<sep>``) cut off its text."""
        if not job.writes_title:
            return [list(job.head) for _ in outputs], outputs
        sep, heads, bodies = self.classes.sep, [], []
        for ids in outputs:
            cut = ids.index(sep) + 1 if sep in ids else len(ids)
            heads.append([*ids[:cut - 1], sep])
            bodies.append(ids[cut:])
        return heads, bodies

    def _text(self, job: SampleJob, ids: list[int]) -> str:
        joiner = " " if self.level == "word" and job.prime else ""
        return job.prime + (joiner if ids else "") + decode(self.tokenizer, ids, self.level)

    def _best(self, job: SampleJob, stepper: Stepper, outputs: list[list[int]],
              texts: list[str], heads: list[list[int]]
              ) -> tuple[list[list[int]], list[str], list[list[int]], dict[str, Any]]:
        """Of each poem's drafts (consecutive in the batch), the one the stepper scores best
        per character, and the chosen and mean drafts' log-probabilities per character."""
        from lm.generation.report import rescore

        logprobs = rescore(stepper, [list(job.plan.prime) + ids for ids in outputs], heads)
        per_char = [lp / (len(t) + 1) for lp, t in zip(logprobs, texts, strict=True)]
        n = job.best_of
        chosen = [max(range(i, i + n), key=per_char.__getitem__)
                  for i in range(0, len(outputs), n)]
        figures = {"drafts": n,
                   "chosen_logprob_per_char": sum(per_char[i] for i in chosen) / len(chosen),
                   "drafts_logprob_per_char": sum(per_char) / len(per_char)}
        return ([outputs[i] for i in chosen], [texts[i] for i in chosen],
                [heads[i] for i in chosen], figures)

    def sample(self, request: SampleRequest) -> SampleResult:
        """``lm sample`` in one call: plan the request, then run it. A report of a request with
        keywords also gives their cost: the same request without them, for comparison."""
        result = self.run(self.plan(request))
        if result.report is not None and request.keywords is not None:
            free = self.run(self.plan(dataclasses.replace(request, keywords=None)))
            held = result.report["logprob_per_char"]
            without = free.report["logprob_per_char"]
            result.report["keywords"] = {
                "keywords": request.keywords, "logprob_per_char": held,
                "without_keywords": without, "cost": without - held}
        return result


def _tokenizer_hash(artifact: Artifact) -> str:
    return artifact.manifest["files"]["tokenizer.json"]["sha256"]


def read_text(tokenizer, text: str, flag: str, warnings: list[str]) -> list[int]:
    """The text's ids; a warning names any piece that is not in the vocabulary."""
    if not text:
        return []
    ids = encode_text(tokenizer, text)
    pieces = tokenizer.encode(text, add_special_tokens=False).tokens
    if tokenizer.pre_tokenizer is not None:
        pieces = [p for p, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text)]
    unknown = [p for p in pieces if tokenizer.token_to_id(p) is None and p != "<unk>"]
    if ids and all(i == UNK_ID for i in ids):
        raise LMError(f"every token of {flag} {text!r} is unknown to the model "
                      f"({', '.join(map(repr, unknown[:10]))}): use text in its vocabulary")
    if unknown:
        warnings.append(f"{flag}: not in the vocabulary, read as <unk>: "
                        + ", ".join(repr(p) for p in dict.fromkeys(unknown)))
    return ids
