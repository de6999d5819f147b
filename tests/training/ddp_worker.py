"""Run by test_distributed under torchrun (and alone): train a tiny model, print its ref and
the gloo threads still running once training has returned (none: the group is gone)."""

import json
import os
import sys

from lm.artifacts import Store
from lm.training.loop import TrainConfig, train


def gloo_threads() -> list[str]:
    """Names of this process's threads that belong to gloo (Linux: /proc), else []."""
    tasks = f"/proc/{os.getpid()}/task"
    if not os.path.isdir(tasks):
        return []
    names = []
    for task in os.listdir(tasks):
        try:
            with open(f"{tasks}/{task}/comm") as handle:
                names.append(handle.read().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(name for name in names if "gloo" in name)


if __name__ == "__main__":
    root, dataset, name, config = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    store = Store(root)
    artifact, _ = train(store, store.resolve(dataset, "dataset"), TrainConfig.of(**config), name,
                        use_wandb=False, progress=False, log=lambda *_: None)
    if os.environ.get("RANK", "0") == "0":  # one line: two ranks' prints can interleave
        print(json.dumps({"ref": artifact.ref, "gloo_threads": gloo_threads()}))
