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
from lm.generation.constraints import FormConstraint
from lm.generation.forms import Form, parse_form, with_acrostic
from lm.generation.processors import SHAPING, build
from lm.generation.request import SampleRequest
from lm.generation.sampling import RNNStepper, Stepper, generate
from lm.generation.script import convert, fit_to_vocabulary
from lm.generation.vocab import TokenClasses
from lm.tokenization import UNK_ID, decode, encode_text, load_tokenizer


@dataclass
class SampleResult:
    texts: list[str]
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None


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


def _form_and_constraint(request: SampleRequest, classes: TokenClasses,
                         warnings: list[str]) -> tuple[Form | None, FormConstraint | None]:
    """The requested form (None: no constraint) and the constraint that enforces it."""
    form = parse_form(request.form) if request.form else None
    if not (form or request.acrostic or request.rhyme or request.level_tone):
        return None, None
    flag = "--form" if form else "--acrostic" if request.acrostic else "--rhyme"
    classes.check_formable(flag)
    heads = None
    if request.acrostic is not None:
        text = _in_vocabulary(request.acrostic, classes, "--acrostic", warnings)
        pieces = text.split() if classes.level == "word" else [c for c in text if not c.isspace()]
        if not pieces:
            raise LMError("--acrostic is empty: give one character (word) per line")
        heads = [classes.id_of(p, "--acrostic") for p in pieces]
        form = with_acrostic(form, len(heads), classes.layout)
    form = form or parse_form("any")
    return form, FormConstraint(classes, form, heads, request.rhyme, request.level_tone)


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
    form, constraint = _form_and_constraint(request, classes, warnings)
    if constraint is not None:
        constraint.initial(prime_ids)  # a prime that breaks the form fails before loading
    processors = build(SHAPING, request, constraint, classes.structural())
    stepper = stepper_for(artifact, request.device)
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
        report = _report(store, artifact, stepper, classes, tokenizer, form, texts,
                         [prime_ids + ids for ids in outputs], warnings)
    return SampleResult([convert(t, request.script) for t in texts], warnings, report)


def _report(store: Store, artifact: Artifact, stepper: Stepper, classes: TokenClasses,
            tokenizer: Tokenizer, form: Form | None, texts: list[str], sequences: list[list[int]],
            warnings: list[str]) -> dict[str, Any]:
    """The quality report, measured on the texts in the model's own script."""
    from lm.data.prepare import load_split
    from lm.evaluation.scoring import dataset_of
    from lm.generation.report import build_report, rescore, training_segments

    training = None
    try:
        ids = load_split(dataset_of(store, artifact), "train")
        training = training_segments(ids, classes.tokens, classes.level, tokenizer)
    except LMError as exc:
        warnings.append(f"--report: no copy rate ({exc})")
    return build_report(texts, form=form, layout=classes.layout, level=classes.level,
                        logprobs=rescore(stepper, sequences),
                        token_counts=[len(s) for s in sequences], training=training)
