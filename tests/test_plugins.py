"""Bring your own model: a model's identity in its spec, plug-ins through entry points and module:attribute
references, PIP on a user's encoder-decoder, non-blind task experts as a row of their own, one restore path, model
fingerprints that leave other train stages alone, and names from files or requests that never import anything."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from pip_model.evaluation.benchmark import EXPERTS, EvaluateConfig, model_contender, parameter_counts, with_experts
from pip_model.evaluation.inference import SteeringError, restore
from pip_model.networks import registry
from pip_model.networks.backbone import PIPOn
from pip_model.networks.checkpoints import save_model_file
from pip_model.networks.fingerprint import model_fingerprint
from pip_model.networks.registry import (
    MODELS,
    ModelSpec,
    PluginError,
    build_model,
    model_spec,
    spec_of_model,
    use_plugins,
)
from tests.helpers.stages import ROOT

EXAMPLE = ROOT / "examples" / "my_backbone"


@pytest.fixture
def plugins(monkeypatch, tmp_path):
    """A clean plug-in registry for one test, with the example package's source importable."""
    monkeypatch.setattr(registry, "_added", {})
    monkeypatch.setattr(registry, "_entry_point_models", {})
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_every_built_in_model_says_what_it_is():
    for name, spec in MODELS.items():
        assert spec.kind == ("sensor" if name.startswith("sensor") else "restorer")
        if spec.role == "pip":
            assert spec.call == "prompted" and spec.backbone in MODELS and MODELS[spec.backbone].role == "plain"
            assert all(MODELS[peer].role == "peer" for peer in spec.peers)
    assert model_spec("promptir").published == "PromptIR" and model_spec("promptir").call == "blind"
    with pytest.raises(ValueError, match="non_blind model names the task parameters"):
        ModelSpec(factory=nn.Identity, role="expert", call="non_blind")
    with pytest.raises(ValueError, match="no parameter among"):
        ModelSpec(factory=nn.Identity, role="expert", call="non_blind", conditions=("sigma",), tasks=("derain",))


def test_nothing_reads_a_model_from_its_name():
    """No model-name prefix test anywhere but the registry: what a model is comes from its spec."""
    offenders = []
    for path in (ROOT / "pip_model").rglob("*.py"):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("startswith", "endswith") and node.args
                    and isinstance(node.args[0], ast.Constant | ast.Tuple)
                    and any(str(getattr(value, "value", "")).startswith(("pip_", "promptir", "restormer", "nafnet"))
                            for value in ([node.args[0]] if isinstance(node.args[0], ast.Constant)
                                          else node.args[0].elts))):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_a_module_reference_registers_pip_on_a_users_backbone_and_a_task_expert(plugins):
    names = use_plugins(["my_backbone.models:unet_models", "my_backbone.models:DENOISER"])
    assert names == ["my_unet", "pip_my_unet", "DENOISER"]
    plain, prompted = build_model("my_unet"), build_model("pip_my_unet")
    assert isinstance(plain, PIPOn) and plain.pip is None and prompted.pip is not None
    assert spec_of_model(prompted).rivals(["my_unet", "promptir_tiny", "input"]) == ["my_unet", "promptir_tiny"]
    images = torch.rand(2, 3, 30, 41)  # any size: padded to the backbone's multiple and cropped back
    with torch.no_grad():
        out = restore(prompted.eval(), images, tasks=["derain", "dehaze"])
        assert out.images.shape == images.shape and out.weights.tolist()[0] == [0, 1, 0, 0, 0]
        # PIP on the backbone: the prompt changes the output; the plain model takes none.
        other = restore(prompted, images, prompt=torch.eye(5)[0])
        assert not torch.allclose(out.images, other.images)
        assert restore(plain.eval(), images, tasks=["derain"]).weights is None
    with pytest.raises(TypeError, match="no encode\\(\\); no decode\\(\\); skip_channels"):
        PIPOn(backbone=nn.Conv2d(3, 3, 1), pip=None)


def test_a_non_blind_expert_is_told_the_noise_level_and_covers_its_tasks_only(plugins):
    use_plugins(["my_backbone.models:DENOISER"])
    expert = build_model("DENOISER").eval()
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        low, high = (restore(expert, images, tasks=[task]).images for task in ("denoise_15", "denoise_50"))
        assert not torch.allclose(low, high)  # the sigma reaches the network
    with pytest.raises(SteeringError, match="covers denoise_15, denoise_25, denoise_50, not derain"):
        restore(expert, images, tasks=["derain"])
    config = EvaluateConfig(tile=0, classical=False)
    contenders = with_experts([model_contender("DENOISER", expert, config),
                               model_contender("pip_restormer_tiny", build_model("pip_restormer_tiny"), config)])
    row = contenders[-1]
    assert row.name == EXPERTS and row.covers("denoise_25") and not row.covers("derain")
    counts = parameter_counts(contenders)
    assert counts[EXPERTS] == counts["DENOISER"] == sum(p.numel() for p in expert.parameters())


def test_plug_ins_cannot_take_a_built_in_name_or_each_others(plugins):
    (plugins / "clash_models.py").write_text(textwrap.dedent("""
        from torch import nn
        from pip_model.networks.registry import ModelSpec
        BUILT_IN = {"promptir": ModelSpec(factory=nn.Identity, role="peer")}
        MINE = {"mine": ModelSpec(factory=nn.Identity, role="peer")}
        NOT_A_SPEC = {"other": 3}
    """))
    with pytest.raises(PluginError, match="'promptir' is a built-in model of pip_model"):
        use_plugins(["clash_models:BUILT_IN"])
    registry._entry_point_models["mine"] = ModelSpec(factory=nn.Identity, role="peer", origin="distribution:x==1")
    with pytest.raises(PluginError, match="'mine' is registered already by distribution:x==1"):
        use_plugins(["clash_models:MINE"])
    with pytest.raises(PluginError, match="not a ModelSpec or a mapping"):
        use_plugins(["clash_models:NOT_A_SPEC"])
    with pytest.raises(PluginError, match="cannot be loaded: ModuleNotFoundError"):
        use_plugins(["no_such_module_here:MODELS"])
    with pytest.raises(PluginError, match="expected module:attribute"):
        use_plugins(["os.system('x')"])


def test_a_fingerprint_changes_with_its_models_code_only(plugins):
    module = plugins / "fingerprinted.py"
    source = textwrap.dedent("""
        from torch import nn
        from pip_model.networks.registry import ModelSpec
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 3, padding=1)
            def forward(self, images):
                return images + self.conv(images)
        MODELS = {"fingerprinted": ModelSpec(factory=Net, role="peer")}
    """)
    module.write_text(source)
    use_plugins(["fingerprinted:MODELS"])
    before, other = model_fingerprint("fingerprinted"), model_fingerprint("restormer_tiny")
    assert set(before["code"]) == {"fingerprinted"} and before["origin"] == "module:fingerprinted"
    module.write_text(source + "# an edit\n")
    after = model_fingerprint("fingerprinted")
    assert after["code"] != before["code"] and model_fingerprint("restormer_tiny") == other
    assert set(model_fingerprint("pip_restormer_tiny")["code"]) >= {"pip_model.networks.pip",
                                                                    "pip_model.networks.restormer"}


SENTINEL = textwrap.dedent("""
    import pathlib
    pathlib.Path(__file__).with_name("IMPORTED").write_text("imported")
    MODELS = {}
""")


def test_a_name_inside_a_model_file_or_a_request_never_imports(tmp_path, monkeypatch):
    """A model file naming `module:attribute` as its model, and requests naming one as their task or sensor, are
    refused by name; the module, which would leave a file behind when imported, is never imported."""
    (tmp_path / "evil_sentinel.py").write_text(SENTINEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    model = build_model("restormer_tiny")
    save_model_file(tmp_path / "evil.pt", model, model_name="evil_sentinel:MODELS")
    from pip_model.apps.restore import main as prompt_restore
    from pip_model.image_files import write_png

    write_png(tmp_path / "in.png", torch.rand(16, 16, 3).numpy())
    assert prompt_restore([str(tmp_path / "in.png"), "--out", str(tmp_path / "out"), "--model",
                           str(tmp_path / "evil.pt")]) == 2
    from pip_model.apps.serving import RequestRefused, ServedRestorer

    served = ServedRestorer(build_model("pip_restormer_tiny").eval())
    for params in ({"task": "evil_sentinel:MODELS"}, {"sensor": "evil_sentinel:MODELS", "task": "auto"}):
        with pytest.raises(RequestRefused):
            served(torch.rand(1, 3, 16, 16), **params)
    assert "evil_sentinel" not in sys.modules and not (tmp_path / "IMPORTED").exists()
    import importlib  # the control: importing the module does leave its file

    importlib.import_module("evil_sentinel")
    assert (tmp_path / "IMPORTED").exists()
    monkeypatch.delitem(sys.modules, "evil_sentinel")


def _child_environment(tmp_path: Path) -> Path:
    """A virtual environment that sees the project's packages (a .pth file) and installs into itself only."""
    child = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(child)], check=True)
    site = next((child / "lib").glob("python3.*/site-packages"))
    parents = [path for path in sys.path if path.endswith("site-packages")]
    (site / "project.pth").write_text("\n".join([*parents, str(ROOT)]) + "\n")
    return child


@pytest.mark.integration
def test_an_installed_package_trains_and_scores_beside_pip_and_nothing_else_retrains(tmp_path):
    """The done-when of the open harness: a package outside pip_model, installed with `pip install -e`, declares a
    backbone and a non-blind denoiser through the entry-point group; `dvc repro` trains the plain backbone and PIP
    on it, scores the denoiser on the denoise rows only (and the experts row), shows them in the report, and no
    existing train stage reruns."""
    from tests.helpers.pipeline import TINY, make_pipeline_repo, stages_run

    child = _child_environment(tmp_path)
    python = child / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-e", str(EXAMPLE)], check=True)
    repo = make_pipeline_repo(tmp_path / "repo", TINY)
    repo.env = {**repo.env, "PATH": f"{child / 'bin'}{os.pathsep}{repo.env['PATH']}"}

    def repro() -> str:
        return repo.run(str(python), "-m", "dvc", "repro").stdout

    first = stages_run(repro())
    assert "train@pip_restormer_tiny" in first
    models = ["pip_restormer_tiny", "restormer_tiny", "promptir_tiny", "my_unet", "pip_my_unet", "my_denoiser"]
    repo.set_params({"train_run": {"models": models}})
    second = stages_run(repro())
    assert sorted(stage for stage in second if stage.startswith("train")) == [
        "train@my_denoiser", "train@my_unet", "train@pip_my_unet"], second
    metrics = json.loads((repo.path / "results" / "metrics.json").read_text())
    assert {"my_unet", "pip_my_unet", "my_denoiser", EXPERTS} <= set(metrics)
    assert sorted(metrics["my_denoiser"]) == ["denoise_15", "denoise_25", "denoise_50"]
    assert sorted(metrics[EXPERTS]) == sorted(metrics["my_denoiser"])
    parameters = json.loads((repo.path / "results" / "parameters.json").read_text())
    assert parameters[EXPERTS] == parameters["my_denoiser"] == 11_955
    page = (repo.path / "reports" / "index.html").read_text()
    assert "pip_my_unet − my_unet" in page and "Parameters (storage)" in page
    table = pd.read_csv(repo.path / "reports" / "metrics_psnr.csv", index_col=0)
    assert pd.isna(table.loc["derain", "my_denoiser"]) and table.loc["denoise_25", "my_denoiser"] > 0
    fingerprint = json.loads((repo.path / "data" / "model_code" / "pip_my_unet.json").read_text())
    assert fingerprint["origin"] == "distribution:my-backbone==0.1.0"
    # Registered in MLflow to serve from its own folder: the package is named in the model's requirements.
    requirements = [path.read_text() for path in repo.path.rglob("requirements.txt") if "pip_my_unet" in str(path)
                    or "my-backbone" in path.read_text()]
    assert any("my-backbone==0.1.0" in text for text in requirements)
