"""Recording every unit, correlating units with features, and tinting a text by one unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cells_support import counting_model

from lm.errors import LMError
from lm.evaluation.cells import (
    best_units,
    correlations,
    record,
    tint,
    unit_index,
    unit_names,
)
from lm.evaluation.text_features import features
from lm.models import rnn
from lm.tokenization import EOS, EOS_ID, train_tokenizer, vocabulary

TEXT = "ab(ba)c\nabcdef\nfe\n(ab)cd(ef)\nabc"


def tokenizer_for(text: str):
    return train_tokenizer([text], "char")


def stream(tokenizer, documents: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(tokenizer.encode(d).ids) for d in documents])


def test_a_unit_that_counts_by_construction_is_found_with_r_one():
    tokenizer = tokenizer_for(TEXT)
    tokens = vocabulary(tokenizer)
    model = counting_model(tokens)
    ids = stream(tokenizer, [TEXT, "abcde\nf(a)", TEXT])
    recording = record(model, ids, batch_size=3, warmup=16)  # longer than a line
    f = features([tokens[i] for i in ids])
    np.testing.assert_array_equal(recording.column("0:h:0"), f["line_position"])
    np.testing.assert_array_equal(recording.column("0:h:2"), f["in_brackets"])
    best = best_units(recording, f["line_position"], top=2)
    assert best[0]["unit"] == "0:h:0"
    assert best[0]["r"] == pytest.approx(1.0) and best[0]["r2"] == pytest.approx(1.0)
    assert best_units(recording, f["in_brackets"], top=1)[0]["unit"] == "0:h:2"
    # counting down to the line's end is the same count seen from the other side: no unit
    # holds it exactly, so its best r is below 1
    assert abs(best_units(recording, f["chars_left"], top=1)[0]["r"]) < 0.99


def test_one_unit_r2_is_scored_on_the_held_out_text():
    tokenizer = tokenizer_for(TEXT)
    tokens = vocabulary(tokenizer)
    model = counting_model(tokens)
    ids, held_ids = stream(tokenizer, [TEXT] * 2), stream(tokenizer, ["abcdefabcdef\nab"])
    seen, held = record(model, ids), record(model, held_ids)
    target = features([tokens[i] for i in ids])["line_position"]
    held_target = features([tokens[i] for i in held_ids])["line_position"]
    best = best_units(seen, target, 1, held, held_target)[0]
    assert best["unit"] == "0:h:0" and best["r2"] == pytest.approx(1.0)  # exact everywhere
    noisy = best_units(seen, target, 4, held, 2 * held_target[::-1].copy())
    assert all(b["r2"] < 0.5 for b in noisy)  # a target that has nothing to do with the fit


def lstm(vocab: int, layers: int = 2) -> rnn.RNNLM:
    torch.manual_seed(0)
    config = rnn.ModelConfig(vocab_size=vocab, cell="lstm", layers=layers, emb_size=6,
                             hidden_size=5, dropout=0.0, softmax="full")
    return rnn.RNNLM(config).eval()


def test_the_recorded_top_layer_is_what_the_fused_model_computes():
    model = lstm(9)
    ids = np.array([3, 4, 5, 2, 8, 7, 1, 6, 2, 3, 4])
    recording = record(model, ids, batch_size=1, warmup=1)
    with torch.no_grad():
        tokens = torch.as_tensor(np.concatenate([[EOS_ID], ids]))[None]
        output, hidden = model.features(tokens, model.init_hidden(1))
    np.testing.assert_allclose(recording.values[:, unit_index(recording.units, "1:h:0"):][:, :5],
                               output[0, 1:].numpy(), atol=1e-6)
    last_cells = [recording.column(f"{layer}:c:{i}")[-1] for layer in (0, 1) for i in range(5)]
    np.testing.assert_allclose(last_cells, hidden.parts[1][:, 0].reshape(-1), atol=1e-6)
    assert recording.units[:6] == ["0:h:0", "0:h:1", "0:h:2", "0:h:3", "0:h:4", "0:c:0"]
    assert len(recording.units) == 2 * 2 * 5 == recording.values.shape[1]


def test_rows_read_side_by_side_are_stitched_back_in_stream_order():
    model = lstm(9, layers=1)
    ids = np.arange(2, 9).repeat(3)  # 21 tokens in 4 rows of 6 (the last one padded)
    recording = record(model, ids, batch_size=4, warmup=2)
    assert recording.values.shape == (21, 10)
    padded = np.concatenate([[EOS_ID] * 2, ids, [EOS_ID] * 3])
    for row in range(4):
        tokens = torch.as_tensor(padded[row * 6:row * 6 + 8])[None]
        with torch.no_grad():
            output, _ = model.features(tokens, model.init_hidden(1))
        expected = output[0, 2:].numpy()[:len(ids) - row * 6]
        np.testing.assert_allclose(recording.values[row * 6:row * 6 + 6, :5], expected,
                                   atol=1e-6)


def test_correlations_are_pearson_r_and_nan_for_a_constant_column():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 3)).astype(np.float32)
    values[:, 2] = 4.0
    feature = 3 * values[:, 0] - values[:, 1]
    r = correlations(values, feature, block=2)  # two blocks of columns
    assert r[0] == pytest.approx(np.corrcoef(values[:, 0], feature)[0, 1], abs=1e-9)
    assert r[1] == pytest.approx(np.corrcoef(values[:, 1], feature)[0, 1], abs=1e-9)
    assert np.isnan(r[2])
    assert np.isnan(correlations(values, np.ones(200))).all()


def test_units_are_named_and_refused_with_the_model_s_shape():
    units = unit_names(lstm(9))
    assert unit_index(units, "1:c:4") == len(units) - 1
    with pytest.raises(LMError, match=r"not LAYER:PART:INDEX \(e\.g\. 1:c:123"):
        unit_index(units, "1-c-4")
    with pytest.raises(LMError, match=r"no unit 2:h:0: .*\(layer 0: 0–4, layer 1: 0–4\)"):
        unit_index(units, "2:h:0")
    with pytest.raises(LMError, match="parts h and c"):
        unit_index(units, "0:c:5")


def test_a_text_is_tinted_by_the_unit_s_value_after_each_token():
    tokenizer = tokenizer_for(TEXT)
    model = counting_model(vocabulary(tokenizer))
    tinted = tint(model, tokenizer, "abc\nde", "0:h:0")
    assert tinted.values == [0.0, 1.0, 2.0, 3.0, 0.0, 1.0]
    assert tinted.spans == [(i, i + 1) for i in range(6)]
    assert tinted.scale == 3.0
    assert tinted.to_json()["tokens"][3] == {"start": 3, "end": 4, "value": 3.0}
    with pytest.raises(LMError, match="empty"):
        tint(model, tokenizer, "", "0:h:0")
    assert EOS not in tinted.text


def test_recording_nothing_is_an_error():
    with pytest.raises(LMError, match="no tokens"):
        record(lstm(9), np.array([], dtype=np.int64))
