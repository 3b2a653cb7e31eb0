"""A torchrun worker: trains with pip_model.engine.loop.train under real DDP, saves this rank's weights and the
number of batch slots it built at each step.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/workers/ddp_train.py OUT PREPARED
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from pip_model.data.sampling import OnlinePairSampler
from pip_model.engine.distributed import Distributed
from pip_model.engine.loop import train
from pip_model.engine.recipes import TrainConfig

TINY = TrainConfig(model="pip_nafnet_tiny", steps=3, batch_size=4, patch=32, warmup_steps=1, checkpoint_every=100,
                   log_every=1, sample_every=100, threads=1)


def main() -> None:
    out, prepared = Path(sys.argv[1]), Path(sys.argv[2])
    distributed = Distributed.from_environment()
    dist.init_process_group("gloo")
    crops, record = OnlinePairSampler.crops, out / f"rank{distributed.rank}_slots.txt"

    def counted_crops(sampler: OnlinePairSampler, step: int):  # runs in the DataLoader's worker processes too
        made = crops(sampler, step)
        with record.open("a") as file:
            file.write(f"{step} {len(made.clean)}\n")
        return made

    OnlinePairSampler.crops = counted_crops  # the real method, counted
    result = train(TINY, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=None, model_path=out / "model.pt",
                   curve_path=out / "curve.csv", checkpoint_path=out / "checkpoint.pt", distributed=distributed,
                   progress=False)
    torch.save(result.model.state_dict(), out / f"rank{distributed.rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
