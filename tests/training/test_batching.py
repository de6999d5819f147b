"""Batches read from the memory-mapped split: the same windows as a copy in memory gives."""

import numpy as np
import pytest
import torch

from lm.errors import LMError
from lm.training.batching import Feeder, _upload, batchify, window_tensor


@pytest.fixture
def mapped(tmp_path):
    """A uint16 token stream saved and opened as ``load_split`` opens a split."""
    ids = np.random.default_rng(0).integers(0, 60_000, 1003).astype(np.uint16)
    np.save(tmp_path / "train.npy", ids)
    return ids, np.load(tmp_path / "train.npy", mmap_mode="r")


def _eager_rows(ids, batch_size):
    """How the rows were made before: the whole split copied into one int64 tensor."""
    columns = len(ids) // batch_size
    return torch.from_numpy(np.asarray(ids[: columns * batch_size], dtype=np.int64)
                            .reshape(batch_size, columns))


def test_batchify_is_a_view_of_the_mapped_split(mapped):
    ids, mm = mapped
    rows = batchify(mm, 4)
    assert isinstance(rows, np.memmap) and rows.dtype == np.uint16 and rows.shape == (4, 250)
    assert np.shares_memory(rows, mm)  # nothing copied
    assert torch.equal(torch.from_numpy(rows.astype(np.int64)), _eager_rows(ids, 4))
    with pytest.raises(LMError, match="--batch-size"):
        batchify(mm[:7], 4)


def test_windows_from_the_map_equal_those_of_the_whole_copy(mapped):
    ids, mm = mapped
    eager = _eager_rows(ids, 4)
    feeder = Feeder(batchify(mm, 4)[1:3], torch.device("cpu"))  # a rank's rows
    assert not feeder.resident and isinstance(feeder.rows, np.memmap)
    for start, length, following in [(0, 35, (35, 35)), (35, 35, (70, 35)), (210, 39, None)]:
        inputs, targets = feeder.get(start, length, following)
        assert inputs.dtype == torch.int64 and inputs.shape == (2, length)
        assert torch.equal(inputs, eager[1:3, start:start + length])
        assert torch.equal(targets, eager[1:3, start + 1:start + 1 + length])
    # a window is a copy: writing into it cannot reach the split
    window = window_tensor(feeder.rows, 0, 5)
    window.fill_(7)
    assert torch.equal(torch.from_numpy(np.asarray(mm[250:255], dtype=np.int64)),
                       eager[1, :5])


def test_upload_in_blocks_gives_the_whole_stream(mapped):
    ids, mm = mapped
    rows = batchify(mm, 3)
    for block in (1, 7, 10**9):  # one column a block, uneven blocks, all at once
        assert torch.equal(_upload(rows, torch.device("cpu"), block_tokens=block),
                           _eager_rows(ids, 3))
