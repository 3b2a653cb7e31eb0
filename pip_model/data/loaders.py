"""Batches by step: a sampler that hands out the indices of step ``s`` and a loader of offline pairs built on it."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from pip_model.data.degradations import derive_seed
from pip_model.data.sampling import OfflinePairDataset, PairBatch


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Index lists for steps ``start..steps-1``, each drawn by task weight from a (seed, step) generator.

    With ``slots``, only that share of each global batch (a DDP rank's) is yielded.
    """

    def __init__(self, weights: torch.Tensor, *, batch_size: int, seed: int, start: int, steps: int,
                 slots: range | None = None) -> None:
        self.weights, self.batch_size, self.seed, self.start, self.steps = weights, batch_size, seed, start, steps
        self.slots = slots or range(batch_size)

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self):
        for step in range(self.start, self.steps):
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "offline-batch", step))
            drawn = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=generator)
            yield drawn[self.slots.start : self.slots.stop].tolist()


class OfflineBatches:
    """Offline pairs through a DataLoader (worker processes, pinned memory on CUDA), one batch per step."""

    def __init__(self, dataset: OfflinePairDataset, *, batch_size: int, seed: int, start: int, steps: int,
                 task_weights: Mapping[str, float], device: torch.device, slots: range, workers: int) -> None:
        sampler = StepBatchSampler(dataset.sample_weights(task_weights), batch_size=batch_size, seed=seed,
                                   start=start, steps=steps, slots=slots)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                             pin_memory=device.type == "cuda")
        self.batches, self.tasks, self.device = iter(loader), dataset.manifest["task"], device
        self.indices = iter(sampler)

    def batch(self, step: int) -> PairBatch:
        degraded, clean, prompts = next(self.batches)
        tasks = [self.tasks.iloc[i] for i in next(self.indices)]
        return PairBatch(degraded.to(self.device, non_blocking=True), clean.to(self.device, non_blocking=True),
                         prompts.to(self.device, non_blocking=True), tasks)

