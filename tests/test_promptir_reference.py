"""The released PromptIR checkpoint loads in one call: our promptir computes the published PromptIR's function from
its state dict, bare, saved from DistributedDataParallel, or inside PromptIR's PyTorch Lightning file; anything else
is refused in one line, and a file that would run code when unpickled runs nothing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pip_model import build_model, load_published
from pip_model.apps.published import PUBLISHED
from pip_model.apps.restore import main as restore
from pip_model.data.images import to_array, to_tensor
from pip_model.evaluation.benchmark import EvaluateConfig, ModelSource, load_contenders
from pip_model.image_files import read_image, write_png
from pip_model.networks.checkpoints import save_model_file
from pip_model.networks.reference import PROMPTIR, ReferenceCheckpointError, load_model_or_published
from tests.helpers.pipeline import TINY, make_pipeline_repo
from tests.helpers.reference_weights import PROMPTIR_TABLE, promptir_state_dict, reference_dir, reference_layout

REFERENCE = reference_dir()
if REFERENCE is None and os.environ.get("PIP_REQUIRE_REFERENCE"):
    raise RuntimeError("PIP_REQUIRE_REFERENCE is set but no reference files were found; set PIP_REFERENCE_DIR")
pytestmark = pytest.mark.skipif(REFERENCE is None or not (REFERENCE / PROMPTIR_TABLE).is_file(),
                                reason="shared/reference/promptir is not beside this checkout")

# From shared/reference/promptir/README.md: the published model's tensors and numbers, and those its forward pass
# never uses (chnl_reduce1..3, reduce_noise_channel_1..3).
PUBLISHED_TENSORS = 548
PUBLISHED_NUMBERS = 35_592_263
UNUSED_NUMBERS = 215_296
LIVE_PARAMETERS = 35_376_967
TOLERANCE = 1e-4


class RunsCodeWhenUnpickled:
    """What a malicious checkpoint holds: unpickling it (torch.load with weights_only=False) creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def lightning_checkpoint(state: dict[str, torch.Tensor]) -> dict:
    """``state`` as PromptIR's train.py saves it through PyTorch Lightning: the LightningModule's state dict (the
    network is its ``net``), the AdamW and scheduler states, the loops' progress and the checkpoint callback's."""
    progress = {"ready": 120, "started": 120, "processed": 120, "completed": 119}
    batches = {"ready": 534_120, "completed": 534_120, "started": 534_120, "processed": 534_120}
    first = list(state.values())[:2]  # two parameters' moments stand for all of them: the layout is the point
    return {
        "epoch": 119,
        "global_step": 534_120,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": {f"net.{key}": value for key, value in state.items()},
        "loops": {
            "fit_loop": {"state_dict": {}, "epoch_progress": {"total": progress, "current": progress},
                         "epoch_loop.state_dict": {"_batches_that_stepped": 534_120},
                         "epoch_loop.batch_progress": {"total": batches, "current": batches, "is_last_batch": True},
                         "epoch_loop.scheduler_progress": {"total": {"ready": 119, "completed": 119},
                                                           "current": {"ready": 119, "completed": 119}}},
            "validate_loop": {"state_dict": {}, "batch_progress": {"total": {"ready": 0}, "current": {"ready": 0}}},
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
            "'train_time_interval': None}": {
                "monitor": None, "best_model_score": None, "best_model_path": "", "current_score": None,
                "dirpath": "train_ckpt", "best_k_models": {}, "kth_best_model_path": "",
                "kth_value": torch.tensor(float("inf")), "last_model_path": ""},
        },
        "optimizer_states": [{
            "state": {index: {"step": torch.tensor(534_120.0), "exp_avg": torch.zeros_like(value),
                              "exp_avg_sq": torch.zeros_like(value)} for index, value in enumerate(first)},
            "param_groups": [{"lr": 2.4e-05, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.01,
                              "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                              "differentiable": False, "fused": None, "initial_lr": 0.0002,
                              "params": list(range(len(state)))}],
        }],
        "lr_schedulers": [{"warmup_epochs": 15, "max_epochs": 150, "warmup_start_lr": 0.0, "eta_min": 0.0,
                           "base_lrs": [0.0002], "last_epoch": 119, "verbose": False, "_step_count": 120,
                           "_get_lr_called_within_step": False, "_last_lr": [2.4e-05]}],
    }


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    return promptir_state_dict(REFERENCE)


@pytest.fixture(scope="module")
def lightning_file(reference_state, tmp_path_factory) -> Path:
    """The test weights as PromptIR's released checkpoint holds them: a Lightning ``model.ckpt``."""
    path = tmp_path_factory.mktemp("promptir_ckpt") / "model.ckpt"
    torch.save(lightning_checkpoint(reference_state), path)
    return path


@pytest.fixture(scope="module")
def from_state(reference_state) -> torch.nn.Module:
    model, network = load_published(reference_state)
    assert network is PROMPTIR
    return model


@pytest.fixture(scope="module")
def from_lightning(lightning_file) -> torch.nn.Module:
    model, network = load_published(lightning_file)
    assert network is PROMPTIR
    return model


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    return dict(np.load(REFERENCE / "promptir" / "promptir_vectors.npz"))


def test_layout_and_live_parameter_count(reference_state):
    assert len(reference_layout(REFERENCE, PROMPTIR_TABLE)) == len(reference_state) == PUBLISHED_TENSORS
    assert sum(value.numel() for value in reference_state.values()) == PUBLISHED_NUMBERS
    unused = sum(value.numel() for key, value in reference_state.items()
                 if key.startswith(("chnl_reduce", "reduce_noise_channel_")))
    assert unused == UNUSED_NUMBERS and PUBLISHED_NUMBERS - unused == LIVE_PARAMETERS
    assert sum(parameter.numel() for parameter in build_model("promptir").parameters()) == LIVE_PARAMETERS


@pytest.mark.parametrize("case", ["a", "b"])
@pytest.mark.parametrize("source", ["state dict", "Lightning file"])
def test_outputs_match_the_reference_vectors(source, case, from_state, from_lightning, vectors):
    """Blind: the images alone, no degradation label."""
    model = from_state if source == "state dict" else from_lightning
    with torch.no_grad():
        restored = model(torch.from_numpy(vectors[f"input_{case}"]))
    difference = (restored - torch.from_numpy(vectors[f"output_{case}"])).abs().max().item()
    assert difference <= TOLERANCE, f"{source}, output_{case}: max abs difference {difference:.2e}"


def test_a_state_dict_saved_from_distributed_data_parallel_loads_the_same_weights(reference_state, from_state):
    model, network = load_published({f"module.{key}": value for key, value in reference_state.items()})
    assert network is PROMPTIR
    expected = from_state.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())


def test_a_file_that_is_neither_network_gets_one_line(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(4, 3), "encoder.bias": torch.zeros(4)}, other)
    with pytest.raises(ReferenceCheckpointError) as error:
        load_published(other)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{other}: neither a published PIP-Restormer nor a published "
                                                      "PromptIR checkpoint")
    assert "'noise_level1.attn.qkv.weight'" in message and "2 tensors: encoder.weight, encoder.bias" in message
    with pytest.raises(ReferenceCheckpointError) as error:
        load_model_or_published(other)
    assert str(error.value).startswith(f"{other} is neither a model file of this project nor a published checkpoint "
                                       "(PIP-Restormer, PromptIR): it has no")
    # Lightning's bookkeeping without its weights, and a model file of this project.
    torch.save({"epoch": 3, "global_step": 10, "optimizer_states": []}, tmp_path / "no_weights.ckpt")
    with pytest.raises(ReferenceCheckpointError, match=r"^[^\n]*'epoch' holds int[^\n]*$"):
        load_published(tmp_path / "no_weights.ckpt")
    save_model_file(tmp_path / "ours.pt", build_model("promptir_tiny"), model_name="promptir_tiny")
    with pytest.raises(ReferenceCheckpointError, match=r"ours.pt: a model file of this project \(promptir_tiny\), "
                                                       "not a published checkpoint: load it with load_model_file$"):
        load_published(tmp_path / "ours.pt")
    assert load_model_or_published(tmp_path / "ours.pt")[1]["model_name"] == "promptir_tiny"


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    malicious = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"net.patch_embed.proj.weight": torch.zeros(1)}, "callbacks": RunsCodeWhenUnpickled(
        marker)}, malicious)
    with pytest.raises(ReferenceCheckpointError) as error:
        load_published(malicious)
    assert not marker.exists()
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{malicious}: not a readable weights-only checkpoint: it "
                                                      "holds io.open, an object a weights-only load refuses")
    photo = tmp_path / "photo.png"
    write_png(photo, np.zeros((8, 8, 3), dtype=np.float32))
    assert restore([str(photo), "--out", str(tmp_path / "out"), "--model", str(malicious), "--device", "cpu"]) == 2
    assert not marker.exists() and "holds io.open" in capsys.readouterr().err


def test_a_broken_promptir_state_dict_lists_what_does_not_fit(reference_state):
    broken = dict(reference_state)
    del broken["prompt2.conv3x3.weight"]
    broken["prompt9.extra.weight"] = torch.zeros(1)
    broken["output.weight"] = torch.zeros(3, 96, 5, 5)
    with pytest.raises(ReferenceCheckpointError) as error:
        load_published({"state_dict": {f"net.{key}": value for key, value in broken.items()}})
    message = str(error.value)
    assert message.startswith("the state dict does not fit the published PromptIR (promptir):")
    assert "missing (1): decoder_prompts.level2.generate.conv.weight" in message
    assert "unexpected (1): prompt9.extra.weight" in message
    assert "wrong shape (1): output.weight: got (3, 96, 5, 5), expected (3, 96, 3, 3)" in message


def test_restore_runs_the_released_checkpoint_on_any_image_size(lightning_file, from_lightning, tmp_path, capsys):
    """``prompt-restore --model model.ckpt``, no --task (PromptIR is blind), on sides that are not multiples of 8."""
    photo = tmp_path / "photo.png"
    write_png(photo, np.random.default_rng(0).random((20, 28, 3), dtype=np.float32))  # small: 35 M parameters
    assert restore([str(photo), "--out", str(tmp_path / "out"), "--model", str(lightning_file), "--device",
                    "cpu"]) == 0
    assert f"restore: model {lightning_file} (published PromptIR checkpoint)" in capsys.readouterr().out
    with torch.no_grad():
        expected = from_lightning(to_tensor(read_image(photo).rgb)[None])[0].clamp(0, 1)
    restored = read_image(tmp_path / "out" / "photo.png").rgb
    assert restored.shape == (20, 28, 3)
    assert np.abs(restored - to_array(expected)).max() <= 0.5 / 255 + 1e-5  # 8-bit rounding only
    summary = json.loads((tmp_path / "out" / "restore_summary.json").read_text())
    assert summary["model"] == f"{lightning_file} (published PromptIR checkpoint)"


def test_the_evaluate_stage_takes_the_released_checkpoint_by_its_registry_name(lightning_file, tmp_path):
    config = EvaluateConfig(classical=False)
    contenders, _ = load_contenders(config, [ModelSource.parse(f"promptir={lightning_file}")], sensor_path=None,
                                    device="meta")
    assert [contender.name for contender in contenders] == ["input", "promptir"]
    with pytest.raises(ValueError, match=f"{lightning_file}: expected pip_restormer, but it holds promptir"):
        load_contenders(config, [ModelSource.parse(f"pip_restormer={lightning_file}")], sensor_path=None,
                        device="meta")
    # A bare path is named by what it holds, too: two files of one model would share a row.
    with pytest.raises(ValueError, match="both hold promptir: evaluate them in separate runs"):
        load_contenders(config, [lightning_file, lightning_file], sensor_path=None, device="meta")


def _cell(text: str) -> tuple[float, float]:
    psnr, ssim = text.split("/")
    return float(psnr), float(ssim)


@pytest.mark.integration
def test_the_paper_flow_scores_the_released_checkpoint_without_training(lightning_file, tmp_path_factory,
                                                                          prefect_api):
    """`python -m flows.paper 3task DATASETS --evaluate-only promptir=model.ckpt` on stand-ins: the protocol's
    benchmark (real rain and haze test pairs, noise at the published sigmas, crops to a multiple of 16, one pass),
    the checkpoint scored on it, nothing trained, and its row printed beside PromptIR's published one."""
    from pip_model.data.datasets.standins import write_standins

    root = tmp_path_factory.mktemp("evaluate_only")
    repo = make_pipeline_repo(root / "repo", TINY)
    datasets = root / "datasets"
    # One image per set, the paper's test sets alone: the 35 M model takes seconds per image on a CPU.
    write_standins(datasets, count=1, size=32, omit={"Urban100", "Kodak24", "Rain100H", "GoPro", "LOL"})
    done = repo.run(sys.executable, "-m", "flows.paper", "3task", str(datasets), "--evaluate-only",
                    f"promptir={lightning_file}", "base.device=cpu", "prepare.min_side=32", "prepare.train_lists={}",
                    env=prefect_api)
    said = done.stdout + done.stderr
    assert "Running stage 'train" not in said and not (repo.path / "models").exists()
    assert "paper-3task-benchmark" in repo.dvc("exp", "list", "--name-only").stdout

    out = repo.path / "reports" / "evaluate_only"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"input", "classical", "promptir"}
    scored = pd.read_csv(out / "per_image.csv")
    assert ((scored["height"] % 16 == 0) & (scored["width"] % 16 == 0)).all()
    table = pd.read_csv(out / "paper_table.csv", index_col=0, keep_default_na=False)
    assert table.loc["promptir", "source"] == "this run" and table.loc["PromptIR", "BSD68 s15"] == "33.98/0.933"

    # PromptIR's published figures (its repository's table), the mean of its five, and ours minus them.
    published = ["33.98/0.933", "31.31/0.888", "28.06/0.799", "36.37/0.972", "30.58/0.974", "32.06/0.913"]
    comparison = pd.read_csv(out / "promptir_vs_published.csv", index_col=0, keep_default_na=False)
    assert list(comparison.index) == ["promptir (this run)", "PromptIR (published)", "difference"]
    assert list(comparison.loc["PromptIR (published)"]) == published
    tasks = PUBLISHED["3task"].tasks
    ours = [(metrics["promptir"][task]["psnr"], metrics["promptir"][task]["ssim"]) for task in tasks]
    ours.append((float(np.mean([psnr for psnr, _ in ours])), float(np.mean([ssim for _, ssim in ours]))))
    for column, (psnr, ssim), theirs in zip(comparison.columns, ours, published):
        difference, published_cell = _cell(comparison.loc["difference", column]), _cell(theirs)
        assert difference[0] == pytest.approx(psnr - published_cell[0], abs=0.011), column  # printed to 0.01 dB
        assert difference[1] == pytest.approx(ssim - published_cell[1], abs=0.0011), column
    assert "promptir beside its published row (difference: this run minus published" in said
    for line in comparison.to_string().splitlines():
        assert line in said, line
    assert f"promptir = {lightning_file} (published PromptIR checkpoint)" in said
