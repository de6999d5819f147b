"""Every setting of ``lm sample``, declared once: default, help and rule (:mod:`lm.settings`).

:class:`SampleRequest` is the ``lm sample`` command's options (``with_settings``), the keys of
a pipeline's ``sample`` stage, and what :func:`lm.generation.sampling.generate`,
:func:`lm.generation.beam.beam_search` and the processors (:mod:`lm.generation.processors`)
read. It imports nothing heavy, so the command line stays quick to start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lm.errors import LMError
from lm.generation.script import SCRIPTS
from lm.settings import check_settings, setting, unit_or_auto

RHYME_BOOKS = ("pingshui", "modern")


def _in_unit(value: float) -> bool:
    return 0 < value <= 1


@dataclass
class SampleRequest:
    """Everything ``lm sample`` can ask for; the defaults are plain sampling."""

    temperature: float = setting(1.0, "0 is greedy; higher is more adventurous.",
                                 valid=lambda t: t >= 0, rule="≥ 0 (0 is greedy)")
    top_k: int | None = setting(None, "Sample among the k likeliest tokens.", at_least=1)
    top_p: float | None = setting(None, "Nucleus sampling mass in (0, 1].", valid=_in_unit,
                                  rule="in (0, 1]")
    min_p: float | None = setting(None, "Min-p sampling: keep the tokens whose probability "
                                  "(after --temperature) is at least this times the likeliest "
                                  "token's, in (0, 1].", valid=_in_unit, rule="in (0, 1]")
    prime: str = setting("", "Text to begin with (printed and continued).")
    style: str = setting("", "Text the model reads first to set the mood; not printed (read "
                         "after the opening <eos>, before --prime).")
    num: int = setting(4, "Samples, generated as one batch.", at_least=1)
    max_tokens: int = setting(200, "Stop a sample after this many tokens (a --form sets its own "
                              "length).", at_least=1)
    seed: int = setting(0, "Seed: the same seed gives the same samples.",
                        valid=lambda s: -(2**63) <= s < 2**64, rule="a 64-bit integer")
    form: str | None = setting(None, "Verse form every sample keeps: wujue, qijue, wulv, qilv, "
                               "any (one of those four), each line's length in characters "
                               "(words at word level), e.g. 5,5,5,5, or a Song ci tune of the "
                               "model's corpus, e.g. ci:浣溪沙 (see --list-forms).")
    acrostic: str | None = setting(None, "藏头诗: each line begins with the next character (word "
                                   "at word level), e.g. 春夏秋冬.")
    rhyme: bool = setting(False, "Lines closed by 。 end in one rhyme group of --rhyme-book "
                          "(Pingshui: a level one; modern: 中华新韵, from pypinyin).")
    level_tone: bool = setting(False, "Rhyme positions take level tone (平声: Pingshui's, or "
                               "Mandarin tones 1, 2 under --rhyme-book modern).")
    rhyme_book: str | None = setting(None, "Rhyme book of --rhyme, --level-tone and --meter: "
                                     "pingshui (平水韵, the Tang poets' tones and rhyme groups; "
                                     "rhymes are level) or modern (中华新韵 from pypinyin). "
                                     "Default: pingshui for chinese-poetry corpora, else modern.",
                                     valid=RHYME_BOOKS.__contains__, rule="pingshui or modern")
    meter: bool = setting(False, "Regulated tones (格律) with --form wujue|qijue|wulv|qilv: one "
                          "of the four standard patterns, picked by the model's own first "
                          "characters; 二四六分明, 黏 and 对, level Pingshui rhymes.")
    strict_meter: bool = setting(False, "With --meter, also avoid 孤平 and 三平尾.")
    beam: int | None = setting(None, "Beam search with this many beams instead of sampling; "
                               "returns the best --num (≤ --beam) texts.", at_least=1)
    length_penalty: float = setting(1.0, "Beam score = log p / length^α; this is α (0 favours "
                                    "short texts).", valid=math.isfinite,
                                    rule="a number (1 is a mean per token)")
    repetition_penalty: float = setting(1.0, "CTRL penalty (>1) on the scores of tokens already "
                                        "written; 1 is off.", valid=lambda p: p > 0,
                                        rule="> 0 (1 is off, 1.2 is typical)")
    no_repeat_ngram: int = setting(0, "Never repeat an n-gram of this size; 0 is off.",
                                   valid=lambda n: n >= 0, rule="≥ 0 (0 is off)")
    script: str | None = setting(None, "Print in simplified or traditional Chinese (OpenCC), "
                                 "whatever the model was trained on.",
                                 valid=SCRIPTS.__contains__, rule="simplified or traditional")
    report: bool = setting(False, "Measure the samples: well-formed and rhyme rates, "
                           "distinct-1/2, log-prob per character under the model, share of "
                           "verse lines copied from the training text.")
    mix: str | None = setting(None, "An n-gram of the model's dataset to sample from together "
                              "with the model: each token is drawn from λ·p_model + "
                              "(1−λ)·p_ngram.", later=True)
    weight: str = setting("auto", "The model's weight λ under --mix, or auto (the λ that "
                          "lm perplexity --mix fits on the valid split).", valid=unit_or_auto,
                          rule="a number in [0, 1] or auto", later=True)
    device: str = setting("auto", "auto, cpu, cuda or mps.")

    def check(self) -> None:
        """Each setting's own rule, then the ones between settings; a one-line error."""
        check_settings(self)
        if self.strict_meter and not self.meter:
            raise LMError("--strict-meter tightens --meter: add --meter")
        if self.meter and self.rhyme_book == "modern":
            raise LMError("--meter follows the Pingshui book: drop --rhyme-book modern")
        if self.beam is None:
            return
        if self.num > self.beam:
            raise LMError(f"--num {self.num} is more than --beam {self.beam}: beam search "
                          "returns the best --num poems of its beam, so widen the beam or ask "
                          "for fewer")
        if (self.top_k, self.top_p, self.min_p) != (None, None, None):
            raise LMError("--top-k and --top-p (and --min-p) shape sampling, not --beam: drop "
                          "one or the other")
