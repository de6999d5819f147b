"""What ``lm sample`` does: load a model, read the prime, generate, decode."""

from __future__ import annotations

from lm.artifacts import Store
from lm.errors import LMError
from lm.generation.sampling import RNNStepper, Stepper, generate
from lm.tokenization import UNK_ID, decode, encode_text, load_tokenizer


def stepper_for(artifact, device: str = "auto") -> Stepper:
    if artifact.kind == "ngram":
        from lm.generation.ngram_stepper import NgramStepper
        from lm.ngram import NgramModel

        return NgramStepper(NgramModel.load(artifact.path))
    from lm.models import rnn
    from lm.training.loop import pick_device

    dev = pick_device(device)
    return RNNStepper(rnn.load(artifact.path, device=dev), dev)


def read_prime(tokenizer, prime: str) -> tuple[list[int], list[str]]:
    """The prime's ids and a warning naming any piece that is not in the vocabulary."""
    if not prime:
        return [], []
    ids = encode_text(tokenizer, prime)
    pieces = tokenizer.encode(prime, add_special_tokens=False).tokens
    if tokenizer.pre_tokenizer is not None:
        pieces = [p for p, _ in tokenizer.pre_tokenizer.pre_tokenize_str(prime)]
    unknown = [p for p in pieces if tokenizer.token_to_id(p) is None and p != "<unk>"]
    if ids and all(i == UNK_ID for i in ids):
        raise LMError(f"every token of --prime {prime!r} is unknown to the model "
                      f"({', '.join(map(repr, unknown[:10]))}): prime with text in its vocabulary")
    warnings = []
    if unknown:
        warnings.append("not in the vocabulary, read as <unk>: "
                        + ", ".join(repr(p) for p in dict.fromkeys(unknown)))
    return ids, warnings


def sample_texts(store: Store, ref: str, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, prime: str = "", num: int = 4,
                 max_tokens: int = 200, seed: int = 0,
                 device: str = "auto") -> tuple[list[str], list[str]]:
    artifact = store.resolve(ref, ("model", "ngram"))
    tokenizer = load_tokenizer(artifact.file("tokenizer.json"))
    level = artifact.manifest.get("level", "char")
    prime_ids, warnings = read_prime(tokenizer, prime)
    outputs = generate(stepper_for(artifact, device), prime_ids, num=num, max_tokens=max_tokens,
                       temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    joiner = " " if level == "word" and prime else ""
    return [prime + (joiner if ids else "") + decode(tokenizer, ids, level) for ids in outputs], \
        warnings
