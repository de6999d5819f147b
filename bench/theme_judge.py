"""A judge that is not the model: are poems asked for a theme on that theme?

Why: a titled model's own perplexity cannot tell whether ``--title 秋夜`` poems are about
autumn nights. An independent classifier can: TF-IDF over character 1-3-grams with logistic
regression (scikit-learn), trained on the train split's real poems (their bodies), each
labelled by the theme character its title holds (poems whose title names none of the themes,
or two, are left out). It reports its accuracy on the test split's real poems of each theme,
then on poems generated for each theme with ``--title`` alone (a common title naming that
theme and no other: :data:`TITLES`), ``--keywords`` alone (the theme character) and both, all
under the same form and metre.

Usage: ``python bench/theme_judge.py MODEL [--artifacts DIR] [--num 50] [--form wulv]``
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

import numpy as np

THEMES = "送寄山春江秋夜別月雨"  # ten of the commonest theme characters of Tang titles
MODES = ("title", "keywords", "both")
# the title asked for each theme: a common one that names that theme and no other
TITLES = {"送": "送人", "寄": "寄友", "山": "山中", "春": "春日", "江": "江上", "秋": "秋思",
          "夜": "夜坐", "別": "別離", "月": "對月", "雨": "喜雨"}


@dataclass
class Labelled:
    texts: list[str]
    labels: list[str]


def titled_poems(dataset, split: str) -> list[tuple[str, str]]:
    """(title, body) of every document of a split of a titled dataset."""
    from lm.data.prepare import load_split
    from lm.tokenization import EOS_ID, SEP, load_tokenizer

    tokenizer = load_tokenizer(dataset.file("tokenizer.json"))
    sep = tokenizer.token_to_id(SEP)
    if sep is None:
        raise SystemExit(f"{dataset.ref} has no titles: prepare it from chinese-poetry (titles "
                         "kept) or with --title-field")
    tokens = np.array(sorted(tokenizer.get_vocab(), key=tokenizer.get_vocab().get), dtype=object)
    ids = np.asarray(load_split(dataset, split), dtype=np.int64)
    ends = np.flatnonzero(ids == EOS_ID)
    poems, start = [], 0
    for end in ends:
        doc = ids[start:end]
        start = end + 1
        cut = np.flatnonzero(doc == sep)
        if len(cut):
            title, body = doc[:cut[0]], doc[cut[0] + 1:]
            poems.append(("".join(tokens[title]), "".join(tokens[body])))
    return poems


def labelled(poems: list[tuple[str, str]], themes: str = THEMES) -> Labelled:
    """The bodies whose title holds exactly one of the themes, labelled by it."""
    texts, labels = [], []
    for title, body in poems:
        named = {t for t in themes if t in title}
        if len(named) == 1:
            texts.append(body)
            labels.append(named.pop())
    return Labelled(texts, labels)


def judge(train: Labelled):
    """TF-IDF over character 1-3-grams, then logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2,
                                          sublinear_tf=True),
                          LogisticRegression(max_iter=2000, C=4.0))
    return model.fit(train.texts, train.labels)


def accuracy_by_theme(model, data: Labelled) -> dict[str, float]:
    predicted = model.predict(data.texts)
    right, total = Counter(), Counter(data.labels)
    for guess, truth in zip(predicted, data.labels, strict=True):
        right[truth] += guess == truth
    return {theme: right[theme] / total[theme] for theme in total}


def generated(decoder, theme: str, mode: str, num: int, form: str, seed: int) -> Labelled:
    """Poems asked for a theme by title, by keyword, or both; labelled by that theme."""
    from lm.generation.request import SampleRequest

    request = SampleRequest(num=num, seed=seed, form=form, meter=True,
                            title=TITLES.get(theme, theme) if mode in ("title", "both") else None,
                            keywords=theme if mode in ("keywords", "both") else None)
    texts = decoder.sample(request).texts
    return Labelled(texts, [theme] * len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="A model of a titled Tang dataset.")
    parser.add_argument("--artifacts", help="Artifact store (default: $LM_HOME or ./artifacts).")
    parser.add_argument("--num", type=int, default=50, help="Poems generated per theme/mode.")
    parser.add_argument("--form", default="wulv")
    parser.add_argument("--themes", default=THEMES)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from lm.artifacts import Store
    from lm.evaluation.scoring import dataset_of
    from lm.generation.decoder import Decoder

    decoder = Decoder.open(Store(args.artifacts), args.model)
    dataset = dataset_of(decoder.store, decoder.artifact)
    train = labelled(titled_poems(dataset, "train"), args.themes)
    test = labelled(titled_poems(dataset, "test"), args.themes)
    model = judge(train)
    rows = {"test poems": accuracy_by_theme(model, test)}
    for mode in MODES:
        rows[f"--{mode}"] = {}
        for theme in args.themes:
            made = generated(decoder, theme, mode, args.num, args.form, args.seed)
            rows[f"--{mode}"][theme] = accuracy_by_theme(model, made)[theme]
    counts = Counter(test.labels)
    print(f"judge: {len(train.texts):,} train poems of {len(set(train.labels))} themes; "
          f"{len(test.texts):,} test poems; generated: {args.num} per theme and mode, "
          f"--form {args.form} --meter, seed {args.seed}")
    print("| theme | test poems | " + " | ".join(rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    for theme in args.themes:
        cells = [f"{rows[name].get(theme, float('nan')):.1%}" for name in rows]
        print(f"| {theme} | {counts[theme]} | " + " | ".join(cells) + " |")
    means = [np.mean([rows[name][t] for t in args.themes if t in rows[name]]) for name in rows]
    print("| mean | " + f"{sum(counts.values())} | " + " | ".join(f"{m:.1%}" for m in means)
          + " |")


if __name__ == "__main__":
    main()
