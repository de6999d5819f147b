"""What ``lm sample`` does: load a model, read the inputs, build the decoder, generate, decode.

The pieces live in their own modules: the settings (``request``), forms and their constraint
(``forms``, ``constraints``), the logits processors (``processors``), sampling and beam search
(``sampling``, ``beam``), rhyme (``rhyme``), scripts (``script``) and the quality report
(``report``). This module only wires them to one artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenizers import Tokenizer

from lm.artifacts import Artifact, Store
from lm.errors import LMError
from lm.generation.processors import SHAPING, build
from lm.generation.request import SampleRequest
from lm.generation.sampling import RNNStepper, Stepper, generate
from lm.generation.script import convert, fit_to_vocabulary
from lm.generation.verse import Corpus, Verse, corpus_of, verse_for
from lm.generation.vocab import TokenClasses
from lm.tokenization import UNK_ID, decode, encode_text, load_tokenizer


@dataclass
class SampleResult:
    texts: list[str]
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    tones: list[str] | None = None  # each text's tone marks (平/仄), under --meter or a ci
    weight: float | None = None  # the model's weight λ when sampling from a --mix mixture


def stepper_for(artifact: Artifact, device: str = "auto") -> Stepper:
    if artifact.kind == "ngram":
        from lm.generation.ngram_stepper import NgramStepper
        from lm.ngram import NgramModel

        return NgramStepper(NgramModel.load(artifact.path))
    from lm.models import rnn
    from lm.runtime import pick_device

    dev = pick_device(device)
    return RNNStepper(rnn.load(artifact.path, device=dev), dev)


def read_prime(tokenizer, prime: str, flag: str = "--prime") -> tuple[list[int], list[str]]:
    """The text's ids and a warning naming any piece that is not in the vocabulary."""
    if not prime:
        return [], []
    ids = encode_text(tokenizer, prime)
    pieces = tokenizer.encode(prime, add_special_tokens=False).tokens
    if tokenizer.pre_tokenizer is not None:
        pieces = [p for p, _ in tokenizer.pre_tokenizer.pre_tokenize_str(prime)]
    unknown = [p for p in pieces if tokenizer.token_to_id(p) is None and p != "<unk>"]
    if ids and all(i == UNK_ID for i in ids):
        raise LMError(f"every token of {flag} {prime!r} is unknown to the model "
                      f"({', '.join(map(repr, unknown[:10]))}): use text in its vocabulary")
    warnings = []
    if unknown:
        warnings.append(f"{flag}: not in the vocabulary, read as <unk>: "
                        + ", ".join(repr(p) for p in dict.fromkeys(unknown)))
    return ids, warnings


def _in_vocabulary(text: str, classes: TokenClasses, flag: str,
                   warnings: list[str]) -> str:
    """Char-level input, respelt in the model's script (OpenCC) when that fits it better."""
    if classes.level != "char" or not text:
        return text
    fitted = fit_to_vocabulary(text, classes.index)
    if fitted != text:
        warnings.append(f"{flag}: read {text!r} as {fitted!r}, the model's script")
    return fitted


def sample(store: Store, ref: str, request: SampleRequest) -> SampleResult:
    """Generate ``request.num`` texts from a model or n-gram artifact, with an optional report."""
    request.check()
    artifact = store.resolve(ref, ("model", "ngram"))
    tokenizer = load_tokenizer(artifact.file("tokenizer.json"))
    level = artifact.manifest.get("level", "char")
    classes = TokenClasses.of(tokenizer, level)
    warnings: list[str] = []
    prime = _in_vocabulary(request.prime, classes, "--prime", warnings)
    style = _in_vocabulary(request.style, classes, "--style", warnings)
    prime_ids, notes = read_prime(tokenizer, prime)
    style_ids, style_notes = read_prime(tokenizer, style, "--style")
    warnings += notes + style_notes
    corpus = corpus_of(store, artifact)
    verse = verse_for(request, classes, corpus, warnings)
    constraint = verse.constraint
    if constraint is not None:
        constraint.initial(prime_ids)  # a prime that breaks the form fails before loading
    processors = build(SHAPING, request, constraint, classes.structural())
    stepper = stepper_for(artifact, request.device)
    weight = None
    if request.mix is not None:
        stepper, weight = _mixture(store, artifact, stepper, request)
    if request.beam is not None:
        from lm.generation.beam import beam_search

        found = beam_search(stepper, prime_ids, request, style=style_ids, processors=processors)
        outputs = [h.tokens for h in found]
    else:
        outputs = generate(stepper, prime_ids, request, style=style_ids, processors=processors)
    joiner = " " if level == "word" and prime else ""
    texts = [prime + (joiner if ids else "") + decode(tokenizer, ids, level) for ids in outputs]
    report = None
    if request.report:
        report = _report(corpus, stepper, verse, tokenizer, texts,
                         [prime_ids + ids for ids in outputs], warnings)
    tones = None
    if request.meter or verse.template is not None:
        from lm.generation.metre import tone_marks

        tones = [tone_marks(t, verse.simplified) for t in texts]
    return SampleResult([convert(t, request.script) for t in texts], warnings, report, tones,
                        weight)


def _mixture(store: Store, artifact: Artifact, stepper: Stepper, request: SampleRequest
             ) -> tuple[Stepper, float]:
    """The model mixed with ``--mix``'s n-gram at ``--weight`` (fitted on valid for auto)."""
    from lm.generation.mixture import MixtureStepper, fitted_weight, mixture_partner

    ngram = mixture_partner(store, artifact, request.mix)
    weight = (fitted_weight(store, artifact, ngram, request.device)
              if request.weight == "auto" else float(request.weight))
    return MixtureStepper(stepper, stepper_for(ngram), weight), weight


def _report(corpus: Corpus, stepper: Stepper, verse: Verse, tokenizer: Tokenizer,
            texts: list[str], sequences: list[list[int]], warnings: list[str]) -> dict[str, Any]:
    """The quality report, measured on the texts in the model's own script."""
    from lm.data.prepare import load_split
    from lm.generation.report import book_report, build_report, rescore, training_segments

    classes = verse.classes
    training = test = None
    if corpus.dataset is None:
        warnings.append("--report: no copy rate (the model records no dataset)")
    else:
        try:
            ids = load_split(corpus.dataset, "train")
            training = training_segments(ids, classes.tokens, classes.level, tokenizer)
            test = load_split(corpus.dataset, "test")
        except LMError as exc:
            warnings.append(f"--report: no copy rate ({exc})")
    report = build_report(texts, form=verse.form, layout=classes.layout, level=classes.level,
                          logprobs=rescore(stepper, sequences),
                          token_counts=[len(s) for s in sequences], training=training)
    if verse.book == "pingshui" and classes.layout == "poem":
        report.update(book_report(texts, verse, test))
    return report


def list_forms(store: Store, ref: str) -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
    """(form, its lines) for the named forms; (tune, ci) for the tunes of the model's corpus."""
    from lm.generation.forms import NAMED
    from lm.generation.tunes import corpus_tunes

    forms = [(name, ",".join(map(str, lengths))) for name, lengths in NAMED.items()]
    forms.append(("any", "one of the four above"))
    corpus = corpus_of(store, store.resolve(ref, ("model", "ngram")))
    tunes: list[tuple[str, int]] = []
    if corpus.poetry is not None:
        found = corpus_tunes(corpus.poetry[0], corpus.simplify)
        tunes = [(tune, len(poems)) for tune, poems in found.items()]
        if tunes:
            forms.append(("ci:TUNE", "the tune's commonest layout in the corpus"))
    return forms, tunes
