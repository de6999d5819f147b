"""ARPA text format: export for KenLM/SRILM tools, import of models built elsewhere.

Why: ARPA is the interchange format every n-gram tool reads, so writing it lets
KenLM's ``build_binary``/``query`` (or ``kenlm.Model``) check and serve our
models, and reading it lets the toolkit score with a model built by ``lmplz``.

Layout written (as lmplz): ``\\data\\`` counts, then per order lines
``log10prob<TAB>w1 w2 ..<TAB>log10backoff`` (no backoff column at the highest
order), ``\\end\\``. Values are float32 printed with the shortest decimal that
reads back to the same float32, so write -> read is lossless. Every vocabulary
id is written as a unigram (ids unseen in training carry their interpolated
probability), so the file needs no out-of-vocabulary convention for our own
vocabulary.

Import conventions: ``<s>`` is the sentence start, ``</s>`` the eos id, ``<unk>``
id 0. ARPA words missing from the vocabulary raise ``NgramError`` unless
``drop_unknown=True``, which drops every n-gram that contains one (the file's
probabilities then no longer sum to one over our vocabulary, which a foreign
model does not in general anyway). Vocabulary ids missing from the ARPA get
the ``<unk>`` unigram probability with no backoff, which is how KenLM scores
words it does not know. N-grams whose prefix is absent (invalid ARPA) raise.

Token spelling lives here only: ``arpa_names`` turns a tokenizer vocabulary into
ARPA-safe words (whitespace as ``<U+000A>``-style escapes), ``arpa_vocabulary`` is
its inverse for import, and the writer spells id 0, eos and ``<s>`` as ``<unk>``,
``</s>`` and ``<s>``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import NgramError
from .tables import NgramTables, lookup_keys

_NGRAM_COUNT = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")
_SECTION_ANYWHERE = re.compile(r"^\\(\d+)-grams:[ \t\r]*$", re.MULTILINE)


def _float_strings(values: np.ndarray) -> list[str]:
    """Shortest round-trip decimal strings of float32 values (``-0`` written as ``0``)."""
    vals = np.where(values == 0, np.float32(0), values).astype(np.float32)
    return [s[:-2] if s.endswith(".0") else s for s in vals.astype(str).tolist()]


def arpa_names(vocab: list[str]) -> list[str]:
    """Token spellings for ARPA, where a word may not contain whitespace.

    Character-level vocabularies hold the newline and the space: they are written as
    ``<U+000A>``-style escapes (any token containing whitespace is escaped character by
    character), so the file stays standard and ``arpa_vocabulary`` maps them back.
    """
    def name(token: str) -> str:
        if token and not any(ch.isspace() for ch in token):
            return token
        return "".join(f"<U+{ord(ch):04X}>" if ch.isspace() else ch for ch in token)

    return [name(token) for token in vocab]


def arpa_vocabulary(vocab: list[str]) -> dict[str, int]:
    """The inverse of ``arpa_names``: ARPA word -> id, the ``token_to_id`` of ``read_arpa``."""
    return {name: i for i, name in enumerate(arpa_names(vocab))}


def _token_names(id_to_token: list[str], vocab_size: int, eos_id: int) -> list[str]:
    """ARPA spelling of ids ``0..V`` (``V`` = ``<s>``) as written, checked for ARPA-safety.

    Id 0 is ``<unk>``, ``eos_id`` is ``</s>``, ``V`` is ``<s>``; other tokens are written
    as given, so they must already be ARPA-safe (see ``arpa_names``).
    """
    if len(id_to_token) < vocab_size:
        raise NgramError(
            f"id_to_token has {len(id_to_token)} entries but the model has "
            f"vocab_size={vocab_size}; "
            "pass the tokenizer's full id-to-token list"
        )
    names = [str(t) for t in id_to_token[:vocab_size]]
    names[0] = "<unk>"
    names[eos_id] = "</s>"
    names.append("<s>")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name or any(c.isspace() for c in name):
            raise NgramError(
                f"token {i} ({name!r}) is empty or contains whitespace; "
                "ARPA words must be non-blank"
            )
        if name in seen:
            raise NgramError(
                f"tokens {seen[name]} and {i} are both written as {name!r}; "
                "rename one (<unk>, </s>, <s> are reserved)"
            )
        seen[name] = i
    return names


class _NgramWords:
    """The space-joined words of k-grams, built by contiguous ranges from their prefixes'.

    Keys are sorted by prefix, so a range of k-grams has a range of prefixes; the last range
    of each order is kept, and consecutive ranges share at most one prefix, so the writer
    holds a few ranges of strings instead of every n-gram of two orders.
    """

    def __init__(self, model: NgramTables, names: list[str]) -> None:
        self.keys, self.base, self.names = model.keys, model.vocab_size + 1, names
        self.cache: dict[int, tuple[int, list[str]]] = {}

    def get(self, k: int, lo: int, hi: int) -> list[str]:
        """Words of the k-grams ``lo..hi-1``."""
        if k == 1:
            return self.names[lo:hi]
        start, strings = self.cache.get(k, (lo, []))
        reuse = start <= lo <= start + len(strings)
        kept = strings[lo - start:hi - start] if reuse else []
        done = lo + len(kept)
        words = kept + (self._build(k, done, hi) if hi > done else [])
        self.cache[k] = (lo, words)
        return words

    def _build(self, k: int, lo: int, hi: int) -> list[str]:
        parent, word = np.divmod(self.keys[k - 2][lo:hi], self.base)
        first = int(parent[0])
        prefixes = self.get(k - 1, first, int(parent[-1]) + 1)
        names = self.names
        return [f"{prefixes[p]} {names[w]}"
                for p, w in zip((parent - first).tolist(), word.tolist(), strict=True)]


def write_arpa(model: NgramTables, path: Path, id_to_token: list[str],
               chunk: int = 1 << 18) -> None:
    """Write ``model``'s tables as an ARPA file at ``path``, ``chunk`` n-grams at a time."""
    names = _token_names(id_to_token, model.vocab_size, model.eos_id)
    counts = model.num_ngrams
    words = _NgramWords(model, names)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("\\data\\\n")
        for k, n in enumerate(counts, start=1):
            out.write(f"ngram {k}={n}\n")
        for k in range(1, model.order + 1):
            out.write(f"\n\\{k}-grams:\n")
            for lo in range(0, counts[k - 1], chunk):
                hi = min(lo + chunk, counts[k - 1])
                strings = words.get(k, lo, hi)
                probs = _float_strings(model.log10_probs[k - 1][lo:hi])
                if k < model.order:
                    backoffs = _float_strings(model.log10_backoffs[k - 1][lo:hi])
                    out.writelines(f"{p}\t{s}\t{b}\n"
                                   for p, s, b in zip(probs, strings, backoffs, strict=True))
                else:
                    out.writelines(f"{p}\t{s}\n" for p, s in zip(probs, strings, strict=True))
        out.write("\n\\end\\\n")


def _read_sections(path: Path) -> tuple[list[int], dict[int, str]]:
    """Split an ARPA file into the header counts and the raw text of each order."""
    text = Path(path).read_text(encoding="utf-8")
    data_at = text.find("\\data\\")
    if data_at < 0:
        raise NgramError(f"{path}: no \\data\\ header; pass an ARPA file")
    marks = list(_SECTION_ANYWHERE.finditer(text, data_at))
    header_end = marks[0].start() if marks else len(text)
    counts: dict[int, int] = {}
    for line in text[data_at:header_end].splitlines()[1:]:
        m = _NGRAM_COUNT.match(line.strip())
        if m:
            counts[int(m.group(1))] = int(m.group(2))
    if not counts:
        raise NgramError(f"{path}: no 'ngram k=n' lines in the \\data\\ header; pass an ARPA file")
    order = max(counts)
    if sorted(counts) != list(range(1, order + 1)):
        raise NgramError(
            f"{path}: header orders {sorted(counts)} are not 1..{order}; the ARPA file is malformed"
        )
    end_at = text.find("\\end\\", header_end)
    if end_at < 0:
        raise NgramError(f"{path}: no \\end\\ line; the ARPA file is truncated")
    sections: dict[int, str] = {}
    for i, m in enumerate(marks):
        body_end = marks[i + 1].start() if i + 1 < len(marks) else end_at
        sections[int(m.group(1))] = text[m.end() : min(body_end, end_at)]
    return [counts[k] for k in range(1, order + 1)], sections


def _floats(tokens: list[str]) -> np.ndarray:
    return np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens)).astype(np.float32)


def _parse_section(
    body: str, n: int, k: int, wmap: dict[str, int], has_backoff: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Parse one order's text into (log10 probs, log10 backoffs, word ids [n, k], unknown words).

    Fast path: every line has the same number of fields, so the whole section
    is one ``split``; otherwise (backoff present on some lines only, as SRILM
    writes) lines are parsed one by one.
    """
    tokens = body.split()
    if has_backoff and len(tokens) == n * (k + 2):
        width = k + 2
    elif len(tokens) == n * (k + 1):
        width = k + 1
    else:
        width = 0
    if width:
        probs = _floats(tokens[0::width])
        backoffs = (
            _floats(tokens[k + 1 :: width]) if width == k + 2 else np.zeros(n, dtype=np.float32)
        )
        word_cols = [tokens[1 + j :: width] for j in range(k)]
    else:
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) != n:
            raise NgramError(
                f"ARPA header says {n} {k}-grams but found {len(lines)}; "
                "the file is truncated or malformed"
            )
        probs = np.empty(n, dtype=np.float32)
        backoffs = np.zeros(n, dtype=np.float32)
        word_cols = [[] for _ in range(k)]
        for i, line in enumerate(lines):
            parts = line.split()
            if len(parts) not in (k + 1, k + 2):
                raise NgramError(
                    f"ARPA {k}-gram line {line!r} has {len(parts)} fields; "
                    f"expected {k + 1} or {k + 2}"
                )
            probs[i] = float(parts[0])
            if len(parts) == k + 2:
                backoffs[i] = float(parts[k + 1])
            for j in range(k):
                word_cols[j].append(parts[1 + j])
    words = np.empty((n, k), dtype=np.int64)
    unknown: set[str] = set()
    for j, col in enumerate(word_cols):
        try:
            words[:, j] = np.fromiter(map(wmap.__getitem__, col), dtype=np.int64, count=n)
        except KeyError:
            words[:, j] = [wmap.get(t, -1) for t in col]
            unknown.update(t for t in col if t not in wmap)
    return probs, backoffs, words, sorted(unknown)


def _vocabulary_map(token_to_id: dict[str, int], eos_id: int) -> tuple[dict[str, int], int]:
    """ARPA word -> id (``<s>``, ``</s>``, ``<unk>`` reserved) and the vocabulary size."""
    if not token_to_id:
        raise NgramError("token_to_id is empty; pass the tokenizer's token-to-id mapping")
    vocab_size = max(max(token_to_id.values()), eos_id) + 1
    wmap = {tok: i for tok, i in token_to_id.items() if tok not in ("<s>", "</s>", "<unk>")}
    wmap.update({"<s>": vocab_size, "</s>": eos_id, "<unk>": 0})
    return wmap, vocab_size


def _drop_unknown(
    path: Path, probs: np.ndarray, backoffs: np.ndarray, words: np.ndarray,
    unknown: list[str], drop_unknown: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows without unknown words, or ``NgramError`` if there are any and dropping is off."""
    if not unknown:
        return probs, backoffs, words
    if not drop_unknown:
        shown = ", ".join(repr(w) for w in unknown[:5])
        raise NgramError(
            f"{path}: ARPA words not in the vocabulary ({shown}...); "
            "pass the matching tokenizer vocabulary or drop_unknown=True"
        )
    keep = (words >= 0).all(axis=1)
    return probs[keep], backoffs[keep], words[keep]


def _unigram_tables(
    path: Path, probs: np.ndarray, backoffs: np.ndarray, ids: np.ndarray, vocab_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unigram log10 probs and backoffs indexed by id ``0..V`` (``V`` = ``<s>``).

    Vocabulary ids missing from the ARPA get ``<unk>``'s probability and no backoff.
    """
    if np.unique(ids).size != ids.size:
        raise NgramError(
            f"{path}: two ARPA unigrams map to the same id; check token_to_id for duplicates"
        )
    present = np.zeros(vocab_size + 1, dtype=bool)
    present[ids] = True
    unk_rows = np.flatnonzero(ids == 0)
    missing = ~present[:vocab_size]
    if missing.any() and unk_rows.size == 0:
        first = int(np.flatnonzero(missing)[0])
        raise NgramError(
            f"{path}: vocabulary id {first} has no ARPA unigram and the ARPA has no <unk>; "
            "pass a vocabulary matching the ARPA or an ARPA with <unk>"
        )
    unk_prob = probs[unk_rows[0]] if unk_rows.size else np.float32(0)
    table_p = np.full(vocab_size + 1, unk_prob, dtype=np.float32)
    table_b = np.zeros(vocab_size + 1, dtype=np.float32)
    table_p[vocab_size] = 0.0
    table_p[ids] = probs
    table_b[ids] = backoffs
    return table_p, table_b


def _sorted_keys(
    path: Path, words: np.ndarray, keys: list[np.ndarray], base: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys of k-grams given as word ids ``[n, k]`` (k >= 2), sorted, and the sorting order."""
    k = words.shape[1]
    parent = words[:, 0]
    for t in range(1, k - 1):
        parent = lookup_keys(keys[t - 1], parent * base + words[:, t])
    if (parent < 0).any():
        bad = int(np.flatnonzero(parent < 0)[0])
        raise NgramError(
            f"{path}: a {k}-gram (row {bad}) has no {k - 1}-gram prefix entry; "
            "the ARPA is invalid (rebuild it)"
        )
    key = parent * base + words[:, k - 1]
    perm = np.argsort(key, kind="stable")
    key = key[perm]
    if key.size > 1 and (key[1:] == key[:-1]).any():
        raise NgramError(
            f"{path}: duplicate {k}-grams after mapping to ids; check token_to_id for duplicates"
        )
    return key, perm


def read_arpa(
    path: Path, token_to_id: dict[str, int], *, eos_id: int = 1, drop_unknown: bool = False
) -> NgramTables:
    """Read an ARPA file into tables over ``token_to_id``'s ids (conventions: module docstring)."""
    wmap, vocab_size = _vocabulary_map(token_to_id, eos_id)
    header, sections = _read_sections(path)
    order = len(header)
    keys: list[np.ndarray] = []
    log10_probs: list[np.ndarray] = []
    log10_backoffs: list[np.ndarray] = []
    for k in range(1, order + 1):
        probs, backoffs, words, unknown = _parse_section(
            sections.get(k, ""), header[k - 1], k, wmap, k < order
        )
        probs, backoffs, words = _drop_unknown(path, probs, backoffs, words, unknown, drop_unknown)
        if k == 1:
            probs, backoffs = _unigram_tables(path, probs, backoffs, words[:, 0], vocab_size)
        else:
            key, perm = _sorted_keys(path, words, keys, vocab_size + 1)
            keys.append(key)
            probs, backoffs = probs[perm], backoffs[perm]
        log10_probs.append(probs)
        if k < order:
            log10_backoffs.append(backoffs)
    return NgramTables(order=order, vocab_size=vocab_size, eos_id=eos_id, keys=keys,
                       log10_probs=log10_probs, log10_backoffs=log10_backoffs)
