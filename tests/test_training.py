"""Training: the schedule, resumption after a kill, real DDP with gloo, and MLflow failure policy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pip_model.config import ConfigError, load_section
from pip_model.data.images import load_split
from pip_model.data.pairs import DegradeConfig, write_offline_pairs
from pip_model.data.sampling import OnlinePairSampler
from pip_model.engine.distributed import Distributed, read_figures
from pip_model.engine.loop import Optimisation, lr_factor, train, training_step
from pip_model.engine.losses import auxiliary_loss, expert_balance, frequency_loss, pixel_loss
from pip_model.engine.recipes import RESUME_NEUTRAL, SensorConfig, TrainConfig, load_sensor_config, load_train_config
from pip_model.engine.sensor_training import train_sensor
from pip_model.evaluation.benchmark import EvaluateConfig, evaluate, load_benchmark, load_contenders
from pip_model.image_files import read_image, write_png
from pip_model.networks.checkpoints import load_model_file
from pip_model.networks.moce_ir import ExpertRouter, RoutingDecision
from pip_model.networks.registry import build_model
from pip_model.tasks import COMPOSITE_TASKS, TASKS, classes_for
from tests.helpers.device_reads import DeviceReads
from tests.helpers.servers import free_port
from tests.helpers.stages import QUIET, stage_environment
from tests.workers.ddp_train import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared(default_prepared) -> Path:
    return default_prepared


def test_warmup_then_cosine_schedule():
    factors = [lr_factor(step, warmup=10, total=100, floor=0.01) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[10] == pytest.approx(1.0)
    assert factors[100] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert all(a <= b for a, b in zip(factors[:10], factors[1:11]))


def test_train_writes_a_loadable_model_and_its_curve(prepared, tmp_path):
    config = TrainConfig(model="restormer_tiny", steps=4, batch_size=2, patch=32, warmup_steps=1, threads=1)
    result = train(config, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=None,
                   model_path=tmp_path / "model.pt", curve_path=tmp_path / "curve.csv",
                   checkpoint_path=tmp_path / "ckpt.pt", progress=False, model_metadata=lambda: {"run_id": "abc"})
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert list(curve.columns) == ["step", "loss", "psnr", "lr"] and curve["step"].tolist() == [1, 2, 3, 4]
    model, metadata = load_model_file(tmp_path / "model.pt")
    assert metadata["model_name"] == "restormer_tiny" and metadata["run_id"] == "abc" and metadata["step"] == 4
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key])
    assert not (tmp_path / "ckpt.pt").exists() and result.patches_per_s > 0


@pytest.mark.parametrize("name", ["adair_tiny", "moce_ir_tiny"])
def test_the_peers_tiny_variants_train_with_their_losses_and_score(prepared, benchmark_48, tmp_path, name):
    """AdaIR and MoCE-IR train under the loop with their recipes' terms (MoCE-IR's FFT loss and expert balance) and
    are scored from their model files beside the input."""
    config = TrainConfig(model=name, steps=2, batch_size=4, patch=32, warmup_steps=1, threads=1, loss="l1",
                         prompt_regularizer="none", fft_loss_weight=0.1, auxiliary_weight=0.01, accumulate=2)
    train(config, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=None, model_path=tmp_path / "model.pt",
          curve_path=tmp_path / "curve.csv", checkpoint_path=tmp_path / "ckpt.pt", progress=False)
    model, metadata = load_model_file(tmp_path / "model.pt")
    assert metadata["model_name"] == name and metadata["step"] == 2
    assert not torch.equal(model.output.weight, torch.zeros_like(model.output.weight))  # it learned
    evaluate_config = EvaluateConfig(classical=False, examples_per_task=0)
    contenders, _ = load_contenders(evaluate_config, [tmp_path / "model.pt"], sensor_path=None, device="cpu")
    pairs = [pair for pair in load_benchmark(benchmark_48) if pair.row.task in ("derain", "dehaze")]
    scores = evaluate(pairs, contenders, evaluate_config, progress=lambda message: None).metrics
    assert set(scores[name]) == {"derain", "dehaze"} and np.isfinite(scores[name]["derain"]["psnr"])


def test_the_expert_balance_is_the_published_term_and_trains_the_routers():
    """MoCE-IR's balance (src/net/moce_ir.py RoutingFunction): half the squared variation of the experts'
    importance and half that of their load; zero when every image scores every expert alike, and its gradient
    reaches the routers."""
    torch.manual_seed(0)
    model = build_model("moce_ir_tiny").train()
    model(torch.rand(4, 3, 32, 32))
    term = auxiliary_loss(model)
    routers = [module for module in model.modules() if isinstance(module, ExpertRouter)]
    decision, router = routers[0].last, routers[0]
    importance = decision.logits.softmax(-1).sum(0)
    threshold = decision.noisy_logits.sort(dim=-1, descending=True).values[:, router.top_k - 1 : router.top_k]
    load = (0.5 * torch.erfc((threshold - decision.logits) / router.noise_std / 2**0.5)).mean(0)
    by_hand = 0.5 * (importance.std() / importance.mean()) ** 2 + 0.5 * (load.std() / load.mean()) ** 2
    torch.testing.assert_close(expert_balance(decision, top_k=router.top_k, noise_std=router.noise_std), by_hand)
    assert term is not None and term > 0
    term.backward()
    assert all(router.gate.weight.grad is not None for router in routers)
    flat = RoutingDecision(logits=torch.zeros(4, 4), noise=torch.randn(4, 4), experts=torch.zeros(4, 1).long(),
                           weights=torch.ones(4, 1))
    assert expert_balance(flat, top_k=1, noise_std=0.25).item() == pytest.approx(0.0, abs=1e-12)
    assert auxiliary_loss(build_model("adair_tiny")) is None  # no experts, no term
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 32, 32))
    assert auxiliary_loss(model) is None  # eval routing is noiseless: nothing to balance


def test_the_fft_loss_adds_moce_irs_frequency_term():
    """MoCE-IR's FFTLoss: the mean absolute difference of the rfft2's real and imaginary parts, added weighted."""
    restored, clean = torch.rand(2, 3, 8, 10), torch.rand(2, 3, 8, 10)
    spectrum = torch.fft.rfft2(restored - clean)
    by_hand = (spectrum.real.abs().sum() + spectrum.imag.abs().sum()) / (2 * spectrum.numel())
    torch.testing.assert_close(frequency_loss(restored, clean), by_hand)
    torch.testing.assert_close(pixel_loss("l1", fft_weight=0.1)(restored, clean),
                               (restored - clean).abs().mean() + 0.1 * by_hand)
    assert pixel_loss("l1") is torch.nn.functional.l1_loss
    with pytest.raises(ValueError, match="FFT loss weight must be >= 0"):
        pixel_loss("l1", fft_weight=-1)


def test_offline_training_draws_the_written_pairs(prepared, tmp_path):
    manifest = write_offline_pairs(prepared, DegradeConfig(train_pairs_per_task=2, train_patch=32), seed=0,
                                   out_dir=tmp_path / "pairs", **QUIET)
    # Make every written pair clean -> clean: a new network is the identity, so its first L1 loss is exactly 0 on
    # these pairs, and only on these pairs (online data, or any other source, would give a positive loss).
    for row in manifest.itertuples():
        write_png(tmp_path / "pairs" / row.degraded_path, read_image(tmp_path / "pairs" / row.clean_path).rgb)

    def first_losses(source: str) -> list[float]:
        config = TrainConfig(model="nafnet_tiny", source=source, steps=2, batch_size=4, patch=32, warmup_steps=1,
                             loss="l1", threads=1)
        result = train(config, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=tmp_path / "pairs",
                       model_path=tmp_path / source / "model.pt", curve_path=tmp_path / source / "curve.csv",
                       checkpoint_path=tmp_path / source / "ckpt.pt", progress=False)
        assert result.curve["step"].tolist() == [1, 2]
        return result.curve["loss"].tolist()

    assert first_losses("offline")[0] == 0.0
    assert first_losses("online")[0] > 0.01


def _stage_params(folder: Path, **train_overrides) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings = {**dict(model="pip_nafnet_tiny", steps=12, batch_size=2, patch=32, warmup_steps=2, checkpoint_every=3,
                       log_every=1, sample_every=6, threads=1), **train_overrides}
    for key, value in settings.items():
        params["train_run" if key in RESUME_NEUTRAL else "train"][key] = value
    path = folder / "params.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params))
    return path


def _train_command(params: Path, prepared: Path, out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "stages" / "train.py"), "--params", str(params), "--prepared", str(prepared),
            "--pairs", str(out / "pairs"), "--out", str(out / "model.pt"), "--curve", str(out / "curve.csv"),
            "--checkpoint", str(out / "checkpoint.pt")]


def _kill_at_first_checkpoint(command: list[str], out: Path, env: dict[str, str]) -> None:
    """Starts the train stage and kills it (SIGKILL, whole group) as soon as it writes its first checkpoint."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not (out / "checkpoint.pt").exists():
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (out / "model.pt").exists()


def _train_in_process(params: Path, prepared: Path, out: Path):
    """What the stage computes with ``params``, trained uninterrupted in this process."""
    config = load_train_config(params)
    ranges = load_section(DegradeConfig, "degrade", params).ranges
    return train(config, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=None, model_path=out / "model.pt",
                 curve_path=out / "curve.csv", checkpoint_path=out / "ckpt.pt", ranges=ranges, progress=False)


@pytest.mark.integration
def test_a_killed_run_resumes_to_the_same_weights(prepared, tmp_path, mlflow_server):
    """``kill -9`` of training, then the stage again: it resumes from the checkpoint to the weights of an
    uninterrupted run, and continues the killed run's MLflow run on a real tracking server."""
    env = stage_environment(tmp_path, MLFLOW_TRACKING_URI=mlflow_server.uri)
    interrupted = tmp_path / "interrupted"
    params = _stage_params(tmp_path / "config")
    _kill_at_first_checkpoint(_train_command(params, prepared, interrupted), interrupted, env)

    resumed = subprocess.run(_train_command(params, prepared, interrupted), env=env, check=True,
                             capture_output=True, text=True)
    assert "resuming from" in resumed.stdout
    final, _ = load_model_file(interrupted / "model.pt")
    straight = _train_in_process(params, prepared, tmp_path / "straight")
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(final.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)
    curve = pd.read_csv(interrupted / "curve.csv")
    assert curve["step"].tolist() == list(range(1, 13))
    pd.testing.assert_series_equal(curve["loss"], straight.curve["loss"], rtol=1e-5)
    # The resumed training continued the killed one's MLflow run: one run, finished, holding the whole curve.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("pip-universal").experiment_id],
                              "tags.stage = 'train'")
    assert [run.info.status for run in runs] == ["FINISHED"]
    steps = sorted(metric.step for metric in client.get_metric_history(runs[0].info.run_id, "train/loss"))
    assert steps == list(range(1, 13))


@pytest.mark.integration
def test_a_checkpoint_of_other_settings_is_not_resumed(prepared, tmp_path):
    env = stage_environment(tmp_path)
    out = tmp_path / "run"
    first = _stage_params(tmp_path / "a", steps=6, checkpoint_every=3)
    _kill_at_first_checkpoint(_train_command(first, prepared, out), out, env)
    changed = _stage_params(tmp_path / "b", steps=6, checkpoint_every=3, lr=0.001)
    done = subprocess.run(_train_command(changed, prepared, out), env=env, check=True, capture_output=True, text=True)
    assert "written with other settings (lr 0.002 -> 0.001)" in done.stdout and "resuming" not in done.stdout
    # Started over: the whole curve is that of the changed settings from step 1, not the first run's steps 1-3.
    straight = _train_in_process(changed, prepared, tmp_path / "straight")
    curve = pd.read_csv(out / "curve.csv")
    assert curve["step"].tolist() == list(range(1, 7))
    pd.testing.assert_series_equal(curve["loss"], straight.curve["loss"], rtol=1e-5)


@pytest.mark.integration
def test_a_checkpoint_resumes_after_harmless_changes_and_on_fewer_gpus(prepared, tmp_path):
    """How often to log or checkpoint, workers and threads do not change what is computed: the run resumes. A
    checkpoint holds no CUDA generator states (one per GPU), so one written on more GPUs resumes too."""
    env = stage_environment(tmp_path)
    out = tmp_path / "run"
    first = _stage_params(tmp_path / "a", steps=6, checkpoint_every=3)
    _kill_at_first_checkpoint(_train_command(first, prepared, out), out, env)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert set(state["rng"]) == {"torch", "python"}
    state["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 8  # as an 8-GPU machine's older checkpoint had
    torch.save(state, out / "checkpoint.pt")
    changed = _stage_params(tmp_path / "b", steps=6, checkpoint_every=2, log_every=2, sample_every=3, workers=1,
                            image_cache=4)
    done = subprocess.run(_train_command(changed, prepared, out), env=env, check=True, capture_output=True, text=True)
    assert "resuming from" in done.stdout and "at step 3" in done.stdout
    final, _ = load_model_file(out / "model.pt")
    straight = _train_in_process(first, prepared, tmp_path / "straight")
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(final.state_dict()[key], value, rtol=0, atol=1e-6, msg=key)


@pytest.mark.integration
@pytest.mark.parametrize("nodes", [1, 2], ids=["one-node", "two-nodes"])
def test_ddp_with_two_gloo_ranks_matches_one_process(prepared, tmp_path, nodes):
    """Two gloo ranks under torchrun, on one node, or on two emulated nodes (two launchers meeting through a c10d
    rendezvous on loopback, as on two machines), train to the weights of one process with the same global batch."""
    ddp = tmp_path / "ddp"
    ddp.mkdir()
    if nodes == 1:
        launch = ["--standalone", "--nproc_per_node", "2"]
    else:
        launch = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d",
                  "--rdzv_endpoint", f"127.0.0.1:{free_port()}", "--rdzv_id", "pip-two-nodes"]
    launchers = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launch,
                                   str(ROOT / "tests" / "workers" / "ddp_train.py"), str(ddp), str(prepared)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
                 for _ in range(nodes)]
    for launcher in launchers:
        output, _ = launcher.communicate(timeout=300)
        assert launcher.returncode == 0, output
    rank0 = torch.load(ddp / "rank0.pt", weights_only=True)
    rank1 = torch.load(ddp / "rank1.pt", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"replicas disagree on {key}"
    single = train(TINY, seed=0, device="cpu", prepared_dir=prepared, pairs_dir=None, model_path=tmp_path / "m.pt",
                   curve_path=tmp_path / "c.csv", checkpoint_path=tmp_path / "k.pt", progress=False)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(rank0[key], value, rtol=1e-4, atol=1e-5, msg=key)
    torch.manual_seed(0)
    initial = build_model(TINY.model).state_dict()
    assert any(not torch.equal(initial[key], value) for key, value in rank0.items())  # weights did train
    assert (ddp / "model.pt").exists()
    # Each rank built only its half of every batch of 4; the logged figures are those of the whole batch.
    for rank in (0, 1):
        assert sorted((ddp / f"rank{rank}_slots.txt").read_text().split("\n")[:-1]) == ["0 2", "1 2", "2 2"]
    pd.testing.assert_frame_equal(pd.read_csv(ddp / "curve.csv"), single.curve, rtol=1e-4)


@pytest.mark.integration
def test_unreachable_tracking_server_fails_before_training(prepared, tmp_path):
    params = _stage_params(tmp_path / "config")
    env = stage_environment(tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    out = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run(_train_command(params, prepared, out), env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "does not answer" in done.stderr and "nothing was trained" in done.stderr
    assert not (out / "model.pt").exists() and time.monotonic() - started < 60


def test_sensor_tells_rain_from_haze_and_finds_both_at_once(prepared):
    """Multi-label: trained on rain, haze and their composite, it scores each class on its own, so a rainy hazy
    crop scores high on both, and its prompt weights sum to one."""
    tasks = ("derain", "dehaze", "derain_dehaze")
    config = SensorConfig(tasks=tasks, steps=150, batch_size=16, patch=40, lr=3e-3)  # checked on 48-px crops
    sensor = train_sensor(config, seed=0, device="cpu", prepared_dir=prepared, progress=False)
    images = [image for _, image in load_split(prepared, "test")]
    check = OnlinePairSampler(images, tasks=tasks, patch=48, batch_size=48, seed=99).batch(0)
    with torch.no_grad():
        scores, weights = sensor.prompt(check.degraded)
    assert ((scores > 0.5) == (check.prompts > 0)).all(dim=1).float().mean() > 0.7
    both = [index for index, task in enumerate(check.tasks) if task == "derain_dehaze"]
    assert (scores[both][:, [1, 2]] > 0.5).all(dim=1).float().mean() > 0.5
    assert torch.allclose(weights.sum(dim=1), torch.ones(len(weights)))
    with pytest.raises(ValueError, match="sensor.model must be a sensor"):
        SensorConfig(model="pip_restormer_tiny")


def test_a_training_step_reads_nothing_back_from_the_device(tmp_path):
    """The default recipe's step, on the meta device (no values at all), with a share of real pairs: the batch is
    built, degraded, restored, its loss and PSNR computed, gradients clipped and AdamW stepped, and no operation
    reads a device value on the host, where a GPU would wait. The figures are read once per log step."""
    config = load_train_config(ROOT / "params.yaml")
    write_png(tmp_path / "rain.png", np.full((40, 44, 3), 0.8, np.float32))
    write_png(tmp_path / "clean.png", np.full((40, 44, 3), 0.5, np.float32))
    images = [torch.rand(3, 70, 90) for _ in range(3)]
    sampler = OnlinePairSampler(images, tasks=config.tasks, patch=config.patch, batch_size=config.batch_size, seed=0,
                                device="meta", augment=True, real_pairs={"derain": [(tmp_path / "rain.png",
                                                                                     tmp_path / "clean.png")]},
                                real_share={"derain": 0.5})
    model = build_model(config.model, classes=sampler.classes).to("meta")  # the default tasks hold snow: 6 classes
    optimisation = Optimisation.adamw(model, lr=config.lr, weight_decay=0.0, steps=9, warmup=2, floor=0.1)
    pending, seen = [], set()
    with DeviceReads("meta") as recorded:
        for step in range(4):
            batch = sampler.batch(step)
            figures, restored, _ = training_step(model, model, batch, optimisation=optimisation, config=config,
                                                 restoration_loss=pixel_loss(config.loss))
            pending.append(figures)
            seen |= set(batch.tasks)
    assert recorded.reads == [] and restored.shape == (config.batch_size, 3, config.patch, config.patch)
    assert set(config.tasks) & set(TASKS) <= seen and seen & set(COMPOSITE_TASKS)  # singles and composites went through
    with DeviceReads("meta") as recorded, pytest.raises(NotImplementedError):
        read_figures(pending, Distributed())  # a log step: the one read, which meta cannot serve
    assert recorded.reads == ["aten::_to_copy"]


def test_the_training_forward_compiles_to_one_graph():
    model = build_model(load_train_config(ROOT / "params.yaml").model)
    explained = torch._dynamo.explain(model)(torch.rand(2, 3, 32, 32), torch.tensor([0, 3]))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


@pytest.mark.integration
def test_the_gpu_benchmark_dry_runs_on_the_cpu():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--model",
                           "pip_nafnet_tiny", "--steps", "2", "--batch", "4", "--size", "32", "--workers", "1",
                           "--no-compile"], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "model only, compile=False:" in done.stdout and "CPU half" in done.stdout
    assert "end to end, compile=False, 1 workers/rank:" in done.stdout and "of the time getting batches" in done.stdout


def test_each_rank_gets_its_slots_gpu_and_share_of_the_loader_workers():
    ranks = [Distributed(rank=rank, world_size=4, local_rank=rank % 2, local_world_size=2) for rank in range(4)]
    assert [rank.slots(8) for rank in ranks] == [range(0, 2), range(2, 4), range(4, 6), range(6, 8)]
    with pytest.raises(ValueError, match=r"batch_size \(6\) must divide by the 4 ranks"):
        ranks[0].slots(6)
    gpus = max(torch.cuda.device_count(), 1)  # a launcher that binds one GPU per rank leaves each rank one
    assert ranks[3].cuda_device() == f"cuda:{1 % gpus}"
    cores = os.cpu_count() or 1
    assert ranks[0].loader_workers(64) == max(1, cores // 2) and ranks[0].loader_workers(1) == 1


def test_the_samples_a_run_shows_are_fixed_labelled_and_unshuffled(prepared):
    """One task per class (then composites), centre crops of training photographs as they are (no colour shuffle
    or turn), drawn without touching the training's random streams, shown enlarged under column titles."""
    from pip_model.engine.previews import PREVIEW_ROWS, PREVIEW_SIDE, preview_grid, preview_pairs

    images = [image for _, image in load_split(prepared, "train")]
    before = torch.get_rng_state()
    previews = preview_pairs(images, [*TASKS, *COMPOSITE_TASKS], seed=0, ranges=None)
    assert torch.equal(torch.get_rng_state(), before)
    assert [task for task, _, _ in previews] == ["denoise_15", "derain", "dehaze", "deblur", "lowlight",
                                                 "desnow", "dejpeg", "derain_dehaze"][:PREVIEW_ROWS]
    for index, (task, degraded, clean) in enumerate(previews):
        image = images[index % len(images)]
        side = min(PREVIEW_SIDE, *image.shape[-2:])
        top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
        torch.testing.assert_close(clean[0], image[:, top : top + side, left : left + side], rtol=0, atol=0)
        assert not torch.equal(degraded, clean)
    again = preview_pairs(images, [*TASKS, *COMPOSITE_TASKS], seed=0, ranges=None)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(previews, again))
    model = build_model("pip_restormer_tiny", classes=classes_for(TASKS)).train()  # a prompt for every task shown
    before = torch.get_rng_state()
    grid = preview_grid(model, previews)
    assert torch.equal(torch.get_rng_state(), before) and model.training
    side = previews[0][2].shape[-1]
    assert grid.ndim == 3 and grid.shape[0] == 22 + 2 * sum(p[2].shape[-2] for p in previews)
    assert grid.shape[1] > 3 * 2 * side and 0 <= grid.min() and grid.max() <= 1


def test_run_settings_come_from_train_run_and_a_misplaced_one_is_named(tmp_path):
    """`train_run` holds how training runs (no stage depends on it); the recipe in `train` may not hold those."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train_run"].update(workers=3, log_every=7, sensor_log_every=9)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert (load_train_config(path).workers, load_train_config(path).log_every) == (3, 7)
    assert load_sensor_config(path).log_every == 9
    params["train"]["workers"] = 2
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"train.workers is a run setting.*move it to train_run.workers"):
        load_train_config(path)
    del params["train"]["workers"]
    params["train_run"]["lr"] = 0.1
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"train_run.lr is not a run setting"):
        load_train_config(path)
