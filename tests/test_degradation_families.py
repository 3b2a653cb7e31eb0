"""Every registered degradation family keeps the contract the pipeline relies on, and a family is one module: one
from another package joins the tasks, classes, ranges and classical rows through its entry point alone."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pip_model.config import from_mapping
from pip_model.data.degradations import FAMILIES, DegradationRanges, degrade
from pip_model.evaluation.classical import classical_restore
from pip_model.tasks import CLASSES, TASK_TO_CLASS, classes_for, parse_task
from tests.helpers.device_reads import DeviceReads

FAMILY_TASKS = [(family.name, task) for family in FAMILIES for task in family.tasks]


@pytest.fixture(scope="module")
def scene() -> torch.Tensor:
    """Two smooth, textured 70x66 images (sizes no family may need to be a multiple of 8 or 16)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 70), torch.linspace(0, 1, 66), indexing="ij")
    first = torch.stack([0.5 + 0.3 * torch.sin(9 * x), 0.4 + 0.3 * y, 0.6 - 0.2 * x * y])
    return torch.stack([first, first.flip(-1) * 0.8])


@pytest.mark.parametrize("family_name, task", FAMILY_TASKS)
def test_a_family_degrades_within_range_replays_and_draws_on_the_cpu(scene, family_name, task):
    degraded, records = degrade(scene, task, seed=4)
    assert degraded.shape == scene.shape and degraded.min() >= 0 and degraded.max() <= 1
    assert (degraded - scene).abs().mean() > 1e-3  # it does degrade
    assert records[0]["class_id"] == CLASSES.index(family_name) == TASK_TO_CLASS[task]
    family = parse_task(task).families[0]
    for name in family.integers:  # recorded as integers, replayed as integers
        assert isinstance(records[0][name], int)
    replayed, again = degrade(scene, task, params=records)
    assert torch.equal(replayed, degraded) and again == records
    alone, _ = degrade(scene[1:], task, params=records[1:])  # an image depends on its own seed only
    torch.testing.assert_close(alone, degraded[1:], rtol=0, atol=1e-6)
    with DeviceReads("meta") as reads:
        elsewhere, meta_records = degrade(scene.to("meta"), task, seed=4)
    assert reads.reads == [] and meta_records == records and elsewhere.shape == scene.shape


@pytest.mark.parametrize("family", FAMILIES, ids=[family.name for family in FAMILIES])
def test_a_familys_ranges_come_from_params_and_its_classical_restorer_keeps_the_image_shape(scene, family):
    # Every range narrowed to one point (odd, for the kernel lengths drawn odd): two seeds then draw the same values.
    defaults = family.ranges()
    points = {field.name: [getattr(defaults, field.name)[0] | 1 if isinstance(getattr(defaults, field.name)[0], int)
                           else getattr(defaults, field.name)[0]] * 2 for field in dataclasses.fields(family.ranges)}
    narrowed = from_mapping(DegradationRanges, {family.name: points}, "degrade.ranges")
    task = next(iter(family.tasks))
    drawn = [degrade(scene[:1], task, seed=seed, ranges=narrowed)[1][0] for seed in (1, 2)]
    sampled = [{key: value for key, value in record.items() if key not in ("seed", "image_seed")} for record in drawn]
    assert sampled[0] == sampled[1]
    degraded, _ = degrade(scene[:1], task, seed=2)
    array = degraded[0].permute(1, 2, 0).numpy()
    restored = classical_restore(array, task)
    assert restored.shape == array.shape and restored.dtype == np.float32
    assert np.isfinite(restored).all() and restored.min() >= 0 and restored.max() <= 1


def test_the_paper_classes_keep_their_ids_and_a_model_gains_only_the_classes_it_trains_on():
    assert CLASSES[:5] == ("noise", "rain", "haze", "blur", "lowlight")
    assert classes_for(["denoise_25", "derain", "dehaze"]) == CLASSES[:5]
    assert classes_for(["desnow_dehaze"]) == (*CLASSES[:5], "snow")


PLUGIN = '''
"""A hail family from another package: white pellets, nothing else of the project changed."""
from dataclasses import dataclass
from typing import ClassVar

import torch

from pip_model.data.degradations.base import Family, Ranges, uniform


@dataclass(frozen=True)
class HailRanges(Ranges):
    family: ClassVar[str] = "hail"
    density: tuple[float, float] = (0.01, 0.02)


def sample(generator, ranges, fixed):
    return {"density": uniform(generator, ranges.density)}


def field(generator, height, width):
    return torch.rand(1, 1, height, width, generator=generator)


def apply(images, params, field):
    density = params["density"].to(images.device, images.dtype)[:, None, None, None]
    return torch.where(field.to(images.device) < density, torch.ones_like(images), images)


FAMILY = Family(name="hail", tasks={"dehail": {}}, ranges=HailRanges, sample=sample, field=field, apply=apply,
                restore=lambda image: image)
'''


def test_a_family_from_another_package_arrives_through_its_entry_point(tmp_path):
    """A package that declares ``hail`` in the group ``pip_model.degradations`` adds a class (appended: the others
    keep their ids), a task and its composites, ranges in params, a classical row; no line of pip_model changes."""
    (tmp_path / "hail_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "hail_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hail-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pip_model.degradations]\nhail = hail_plugin:FAMILY\n")
    script = textwrap.dedent('''
        import json, torch
        from pip_model.config import from_mapping
        from pip_model.data.degradations import DegradationRanges, degrade
        from pip_model.evaluation.classical import classical_restore
        from pip_model.tasks import ALL_TASKS, CLASSES, classes_for, task_label
        ranges = from_mapping(DegradationRanges, {"hail": {"density": [0.5, 0.5]}}, "degrade.ranges")
        hailed, records = degrade(torch.full((1, 3, 32, 32), 0.2), "dehail_dehaze", seed=0, ranges=ranges)
        print(json.dumps({"classes": CLASSES, "tasks": "dehail" in ALL_TASKS, "label": task_label("dehail_dehaze"),
                          "density": records[0]["dehail.density"], "model": classes_for(["dehail"]),
                          "classical": classical_restore(hailed[0].permute(1, 2, 0).numpy(), "dehail").shape}))
    ''')
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": f"{tmp_path}:{sys.path[0]}", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["classes"] == [*CLASSES, "hail"] and found["tasks"]
    assert found["label"] == f"{len(CLASSES)}+2" and found["density"] == pytest.approx(0.5)
    assert found["model"] == ["noise", "rain", "haze", "blur", "lowlight", "hail"] and found["classical"] == [32, 32, 3]
