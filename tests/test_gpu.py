"""On a CUDA machine only (opt in: ``pytest -m gpu``): what the CPU tests prove with the meta device, on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pip_model.data.degradations import degrade
from pip_model.data.images import split_files
from pip_model.data.sampling import OnlinePairSampler
from pip_model.engine.loop import Optimisation, train, training_step
from pip_model.engine.losses import pixel_loss
from pip_model.engine.recipes import TrainConfig, load_train_config
from pip_model.evaluation.tiling import restore_tiled
from pip_model.networks.registry import build_model
from pip_model.tasks import TASKS
from tests.helpers.device_reads import DeviceReads

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("task", TASKS)
def test_degradations_on_the_gpu_equal_the_cpu_ones(task):
    clean = torch.rand(4, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    on_cpu, records = degrade(clean, task, seed=11)
    on_gpu, gpu_records = degrade(clean.cuda(), task, seed=11)
    assert gpu_records == records
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-4)


def test_a_training_step_on_the_gpu_reads_nothing_back(default_prepared):
    config = load_train_config(ROOT / "params.yaml")
    sampler = OnlinePairSampler(split_files(default_prepared, "train"), tasks=config.tasks, patch=config.patch,
                                batch_size=config.batch_size, seed=0, device="cuda", augment=True)
    model = build_model(config.model).cuda().to(memory_format=torch.channels_last)
    optimisation = Optimisation.adamw(model, lr=config.lr, weight_decay=0.0, steps=9, warmup=2, floor=0.1)
    batches = [sampler.crops(step).pin_memory() for step in range(4)]
    with DeviceReads("cuda") as recorded:
        for crops in batches:
            training_step(model, model, sampler.finish(crops), optimisation=optimisation, config=config,
                          restoration_loss=pixel_loss(config.loss))
    assert recorded.reads == []


def test_training_with_compile_and_tiled_restoration_run_on_the_gpu(default_prepared, tmp_path):
    config = TrainConfig(model="pip_restormer_tiny", steps=6, batch_size=4, patch=64, warmup_steps=2, log_every=3,
                         checkpoint_every=100, compile=True, workers=1)
    result = train(config, seed=0, device="cuda", prepared_dir=default_prepared, pairs_dir=None,
                   model_path=tmp_path / "model.pt", curve_path=tmp_path / "curve.csv",
                   checkpoint_path=tmp_path / "checkpoint.pt", progress=False)
    assert len(result.curve) == 6 and result.curve["loss"].notna().all()
    image = torch.rand(1, 3, 300, 200)
    restored = restore_tiled(result.model, image, torch.tensor([3]), tile=128, overlap=16, tile_batch=4)
    assert restored.device.type == "cpu" and restored.shape == image.shape


def test_mlflow_samples_the_gpu():
    pytest.importorskip("mlflow", reason="MLflow is not installed here (a lent GPU machine's image lacks it)")
    from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor

    monitor = GPUMonitor()  # needs pynvml, a dependency
    monitor.collect_metrics()
    assert any(key.startswith("gpu_0") for key in monitor.metrics)
