"""Every setting of ``lm sample``, declared once: default, help and rule (:mod:`lm.settings`).

:class:`SampleRequest` is the ``lm sample`` command's options (``with_settings``), the keys of
a pipeline's ``sample`` stage and the body of ``lm serve``'s ``POST /sample``. Its rules are
declarative, each setting's own (bounds, choices, patterns) and those between settings
(:data:`SampleRequest.BETWEEN`), so the command line checks them and the API schema carries
them. A decoder turns a request into a :class:`~lm.generation.decoding.plan.Plan` once
(:meth:`lm.generation.decoder.Decoder.plan`). It imports nothing heavy, so the command line
stays quick to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lm.generation.verse.forms import NAMED, regulated_specs, static_specs
from lm.generation.verse.script import SCRIPTS
from lm.settings import (
    GIVEN,
    LEFT_OUT,
    TRUE,
    Between,
    check_settings,
    matching,
    more_than,
    named,
    one_of,
    setting,
)

RHYME_BOOKS = ("pingshui", "modern")
WEIGHT = r"auto|0*[01](?:\.0*)?|0*0?\.[0-9]+"  # auto, or a number in [0, 1]


def _sampling_only(name: str) -> Between:
    return Between("beam", GIVEN, name, LEFT_OUT, lambda r: (
        f"{named('top_k')} and {named('top_p')} (and {named('min_p')}) shape sampling, not "
        f"{named('beam')}: drop one or the other"))


@dataclass
class SampleRequest:
    """Everything ``lm sample`` can ask for; the defaults are plain sampling."""

    temperature: float = setting(1.0, "0 is greedy; higher is more adventurous.", at_least=0,
                                 at_most=1000, rule="in [0, 1000] (0 is greedy)")
    top_k: int | None = setting(None, "Sample among the k likeliest tokens.", at_least=1)
    top_p: float | None = setting(None, "Nucleus sampling mass in (0, 1].", above=0,
                                  at_most=1, rule="in (0, 1]")
    min_p: float | None = setting(None, "Min-p sampling: keep the tokens whose probability "
                                  "(after --temperature) is at least this times the likeliest "
                                  "token's, in (0, 1].", above=0, at_most=1, rule="in (0, 1]")
    title: str | None = setting(None, "The poem's title, for a model of titled documents "
                                "(chinese-poetry keeps them): each poem is written under it. "
                                "Without it such a model writes a title of its own.",
                                later=True)
    prime: str = setting("", "Text to begin with (printed and continued).")
    style: str = setting("", "Text the model reads first to set the mood; not printed (read "
                         "after the opening <eos>, before --prime).")
    num: int = setting(4, "Samples, generated as one batch.", at_least=1)
    max_tokens: int = setting(200, "Stop a sample after this many tokens; a --form longer than "
                              "this is refused.", at_least=1)
    seed: int = setting(0, "Seed: the same seed gives the same samples.", at_least=-(2**63),
                        below=2**64, rule="a 64-bit integer")
    form: str | None = setting(None, "Verse form every sample keeps: "
                               f"{', '.join(NAMED)}, any (4 or 8 lines of 5 or 7 characters), "
                               "each line's length in characters (words at word level), e.g. "
                               "5,5,5,5, or a Song ci tune of the model's corpus, e.g. "
                               "ci:浣溪沙 (see --list-forms).")
    acrostic: str | None = setting(None, "藏头诗: each line begins with the next character (word "
                                   "at word level), e.g. 春夏秋冬.")
    keywords: str | None = setting(None, "Words every poem holds as written, comma-separated, "
                                   "e.g. 明月,故鄉: each in one line, where the form, metre and "
                                   "rhymes allow.", later=True)
    template: str | None = setting(None, "A draft to fill: the poem as it should look, □ for "
                                   "each character to write, any other character kept where it "
                                   "stands, e.g. 床前明月光，疑是□□□。□□□□□，□□□□□。",
                                   later=True)
    rhyme: bool = setting(False, "Lines closed by 。 end in one rhyme group of --rhyme-book "
                          "(Pingshui: a level one; modern: 中华新韵, from pypinyin).")
    level_tone: bool = setting(False, "Rhyme positions take level tone (平声: Pingshui's, or "
                               "Mandarin tones 1, 2 under --rhyme-book modern).")
    rhyme_book: str | None = setting(None, "Rhyme book of --rhyme, --level-tone and --meter: "
                                     "pingshui (平水韵, the Tang poets' tones and rhyme groups; "
                                     "rhymes are level) or modern (中华新韵 from pypinyin). "
                                     "Default: pingshui for chinese-poetry corpora, else modern.",
                                     choices=RHYME_BOOKS)
    meter: bool = setting(False, "Regulated tones (格律) with --form wujue|qijue|wulv|qilv: one "
                          "of the four standard patterns, picked by the model's own first "
                          "characters; 二四六分明, 黏 and 对, level Pingshui rhymes.")
    strict_meter: bool = setting(False, "With --meter, also avoid 孤平 and 三平尾.")
    beam: int | None = setting(None, "Beam search with this many beams instead of sampling; "
                               "returns the best --num texts (a beam narrower than --num is "
                               "widened to it).", at_least=1)
    best_of: int = setting(1, "Draw this many drafts of each poem and keep the one the model "
                           "(the mixture, with --mix) scores best per character.", at_least=1,
                           at_most=64, later=True)
    length_penalty: float = setting(1.0, "Beam score = log p / length^α; this is α (0 favours "
                                    "short texts).")
    repetition_penalty: float = setting(1.0, "CTRL penalty (>1) on the scores of tokens already "
                                        "written; 1 is off, below 1 favours repeats.",
                                        at_least=0.001, at_most=1000,
                                        rule="in [0.001, 1000] (1 is off, 1.2 is typical)")
    no_repeat_ngram: int = setting(0, "Never repeat an n-gram of this size; 0 is off.",
                                   at_least=0, rule="≥ 0 (0 is off)")
    allow_repeat_rhyme: bool = setting(False, "Let a poem rhyme a character with itself (重韵), "
                                       "which --meter and --rhyme avoid by default, as poets "
                                       "do.", later=True)
    allow_unk: bool = setting(False, "Let <unk> be drawn; by default it never is, in sampling, "
                              "beam search and the mixture alike.", later=True)
    script: str | None = setting(None, "Print in simplified or traditional Chinese (OpenCC), "
                                 "whatever the model was trained on.", choices=tuple(SCRIPTS))
    report: bool = setting(False, "Measure the samples: well-formed and rhyme rates, "
                           "distinct-1/2, log-prob per character under the model, share of "
                           "verse lines copied from the training text.")
    mix: str | None = setting(None, "An n-gram of the model's dataset to sample from together "
                              "with the model: each token is drawn from λ·p_model + "
                              "(1−λ)·p_ngram.", later=True)
    weight: str = setting("auto", "The model's weight λ under --mix, or auto (the λ that "
                          "lm perplexity --mix fits on the valid split, fitted once per pair "
                          "and kept in the store).", pattern=WEIGHT,
                          rule="a number in [0, 1] or auto", later=True)
    device: str = setting("auto", "auto, cpu, cuda or mps.")

    BETWEEN: ClassVar[tuple] = (
        Between("strict_meter", TRUE, "meter", TRUE, lambda r: (
            f"{named('strict_meter')} tightens {named('meter')}: add {named('meter')}")),
        Between("meter", TRUE, "rhyme_book", one_of((None, "pingshui")), lambda r: (
            f"{named('meter')} follows the Pingshui book: drop {named('rhyme_book')} modern")),
        Between("meter", TRUE, "form", matching(regulated_specs()), lambda r: (
            f"{named('meter')} needs {named('form')} wujue, qijue, wulv or qilv (4 or 8 lines "
            f"of 5 or 7 characters), or a {named('template')} of that shape"),
            unless="template"),
        Between("form", matching("ci:.+", otherwise=static_specs()), "rhyme_book",
                one_of((None, "pingshui")), lambda r: (
            f"{named('form')} ci: tunes rhyme by the Pingshui book: drop "
            f"{named('rhyme_book')} modern")),
        _sampling_only("top_k"), _sampling_only("top_p"), _sampling_only("min_p"),
        Between("best_of", more_than(1), "beam", LEFT_OUT, lambda r: (
            f"{named('best_of')} draws drafts to choose from, {named('beam')} searches for the "
            "likeliest: drop one")),
    )

    def check(self) -> None:
        """Each setting's own rule, then the ones between settings; a one-line error."""
        check_settings(self)
