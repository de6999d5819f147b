"""Does ``--meter`` hold, judged by pingshui-rhyme's own checker, and what does it cost?

For each regulated form, N samples with ``--form F --meter`` and N with ``--form F`` alone
(same seed and temperature) from one model; every ``--meter`` sample goes straight to the
library's ``PoemStructureChecker.check_poem_pingze_meter`` and ``check_poem_rhyming`` (not
through ``lm``'s code), and the log-prob per character of both batches under the model
gives the cost. With ``--ci-model``, N samples of each of the commonest tunes of that model's
corpus are checked against their templates: the exact layout (clause lengths, marks, line
breaks) and, at each rhyme's clause ends, the rhyme's tone by the library's classifier and
pairwise rhymes by its ``RhymeChecker.do_rhyme``.

    LM_HOME=STORE python bench/metre_check.py --model tang --num 100
    LM_HOME=STORE python bench/metre_check.py --model tang --ci-model songci --tunes 5
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from importlib import resources
from itertools import combinations


def library_checker():
    """pingshui-rhyme's checker, given a stand-in ``pkg_resources`` if setuptools lacks one."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(
            resources.files(package.rpartition(".")[0]) / name)
        sys.modules["pkg_resources"] = shim
    from pingshui_rhyme import PoemStructureChecker

    return PoemStructureChecker()


def sample(ref: str, num: int, seed: int, temperature: float, **options) -> tuple[list, dict]:
    from lm.generation.run import sample as run_sample

    from lm.generation.request import SampleRequest

    request = SampleRequest(num=num, seed=seed, temperature=temperature, report=True,
                            **options)
    result = run_sample(_store(), ref, request)
    return result.texts, result.report


def _store():
    from lm.artifacts import Store

    return Store(None)  # $LM_HOME, else ./artifacts


def regulated(args, checker) -> None:
    from lm.generation.verse.script import convert

    print("| form | samples | metre pass | rhyme pass | both | log-prob/char --meter | "
          "log-prob/char --form | cost (nats/char) |")
    print("|---|---|---|---|---|---|---|---|")
    for form in args.forms.split(","):
        texts, report = sample(args.model, args.num, args.seed, args.temperature, form=form,
                               meter=True)
        _, plain = sample(args.model, args.num, args.seed, args.temperature, form=form)
        traditional = [convert(t, "traditional") if args.simplified else t for t in texts]
        metre = [checker.check_poem_pingze_meter(t)[0] for t in traditional]
        rhyme = [checker.check_poem_rhyming(t)[0] for t in traditional]
        both = sum(m and r for m, r in zip(metre, rhyme, strict=True))
        cost = plain["logprob_per_char"] - report["logprob_per_char"]
        print(f"| {form} | {len(texts)} | {sum(metre)}/{len(texts)} | {sum(rhyme)}/{len(texts)}"
              f" | {both}/{len(texts)} | {report['logprob_per_char']:.4f} | "
              f"{plain['logprob_per_char']:.4f} | {cost:.4f} |")
        for text, m, r in zip(texts, metre, rhyme, strict=True):
            if not (m and r):
                print("  FAILED:", text.replace("\n", " "), file=sys.stderr)


def tunes(args, checker) -> None:
    from lm.generation.verse import corpus_of, simplified_vocabulary
    from lm.generation.verse.script import convert
    from lm.generation.verse.tunes import corpus_tunes, find_template
    from lm.generation.verse.vocab import TokenClasses
    from lm.tokenization import load_tokenizer

    store = _store()
    artifact = store.resolve(args.ci_model, ("model", "ngram"))
    corpus = corpus_of(store, artifact)
    classes = TokenClasses.of(load_tokenizer(artifact.file("tokenizer.json")), "char")
    simplified = simplified_vocabulary(classes)
    names = list(corpus_tunes(corpus.poetry[0], corpus.simplify))[:args.tunes]
    print("\n| tune | template | samples | layout | rhymes | log-prob/char |")
    print("|---|---|---|---|---|---|")
    for tune in names:
        template = find_template(corpus.poetry[0], corpus.simplify, tune, simplified)
        texts, report = sample(args.ci_model, args.num, args.seed, args.temperature,
                               form=f"ci:{tune}")
        layout = sum(_layout(t) == template.clauses for t in texts)
        rhymed = sum(_rhymes(convert(t, "traditional") if simplified else t, template,
                             checker) for t in texts)
        print(f"| {tune} | {template.describe()} | {len(texts)} | {layout}/{len(texts)} | "
              f"{rhymed}/{len(texts)} | {report['logprob_per_char']:.4f} |")


def _layout(text: str):
    found = re.findall(r"([^，。、？！；：\n]+)([，。、？！；：])(\n?)", text)
    if "".join(a + b + c for a, b, c in found) != text:
        return None
    return tuple((len(a), b, bool(c)) for a, b, c in found)


def _rhymes(text: str, template, checker) -> bool:
    """Each rhyme's clause ends: of its tone by the classifier, rhyming pairwise."""
    ends = [clause[-1] for clause in re.findall(r"([^，。、？！；：\n]+)[，。、？！；：]", text)]
    tone_of = {"平": {"ping", "polyphonic"}, "仄": {"ze", "polyphonic"}}
    for letter, tone in enumerate(template.tones):
        chars = [e for e, mine in zip(ends, template.letters, strict=True) if mine == letter]
        if any(checker.classifier.classify(c)[0] not in tone_of[tone] for c in chars):
            return False
        if not all(checker.rhyme_checker.do_rhyme(a, b) for a, b in combinations(chars, 2)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tang")
    parser.add_argument("--forms", default="wujue,qijue,wulv,qilv")
    parser.add_argument("--num", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--simplified", action="store_true",
                        help="the model writes simplified characters: convert for the checker")
    parser.add_argument("--ci-model", default=None)
    parser.add_argument("--tunes", type=int, default=5)
    args = parser.parse_args()
    checker = library_checker()
    if args.forms:
        regulated(args, checker)
    if args.ci_model:
        tunes(args, checker)


if __name__ == "__main__":
    main()
