"""Run by test_distributed under torchrun (and alone): train a tiny model, print its ref."""

import json
import os
import sys

from lm.artifacts import Store
from lm.training.loop import TrainConfig, train

if __name__ == "__main__":
    root, dataset, name, config = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    store = Store(root)
    artifact, _ = train(store, store.resolve(dataset, "dataset"), TrainConfig.of(**config), name,
                        use_wandb=False, progress=False, log=lambda *_: None)
    if os.environ.get("RANK", "0") == "0":  # one line: two ranks' prints can interleave
        print(json.dumps({"ref": artifact.ref}))
