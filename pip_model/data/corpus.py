"""The ``prepare`` stage's logic: collect clean images, reject bad ones, split, and pair datasets.

Clean images come from scikit-image's bundled photographs (nothing is downloaded), from a
user folder (``prepare.source``), or from the clean sets under ``prepare.datasets_root``. The
photographs are written as 8-bit RGB PNGs; the images of a user folder or of the datasets are
listed where they lie, never copied, and every later stage reads them with the same checked
reader (:func:`pip_model.image_files.read_image`). Every usable image is listed in a manifest;
every unusable file is listed with its reason in a rejects table, and the run goes on.

Splits are drawn per image from a hash of the seed and the image's pixels, so they are
stable when images are added, and an image (duplicates are kept once) is never in two
splits.

Paired datasets (real degraded/clean pairs such as Rain100L, SOTS, GoPro or LOL) come from
``prepare.datasets_root``, where :mod:`pip_model.data.datasets` recognises the paper's datasets in
their published layouts (clean sets such as BSD400 and BSD68 keep the split their role gives
them), or from ``prepare.paired`` folders matched by name (see :func:`pair_source`); both are paired by
:func:`pip_model.data.datasets.base.pair_by_name`. Every pair gets an id of its own, even when two sources hold
the same file names.

With ``prepare.train_lists`` (the published list files, see :mod:`pip_model.data.train_lists`) exactly the listed
training images and pairs train: listed files that are not there are rejected, unlisted ones left out. A training
image or pair whose clean pixels equal a test image's (RESIDE's OTS and SOTS share scenes) is kept out of training
and rejected with the test image it copies: no test image is ever trained on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pip_model.data.datasets import KNOWN_TEST_SETS, discover, require_test_sets, unique_id, unknown_test_sets
from pip_model.data.datasets.base import (
    CLEAN_FOLDERS,
    DEGRADED_FOLDERS,
    FoundClean,
    FoundPair,
    pair_by_name,
    paired_names,
    slug,
)
from pip_model.data.train_lists import LIST_KEYS, TrainList, TrainListSource, read_train_lists, select_listed
from pip_model.image_files import (
    DEFAULT_MAX_PIXELS,
    ImageFileError,
    LoadedImage,
    file_digest,
    printable,
    read_image,
    walk_files,
    write_png,
)
from pip_model.tasks import parse_task, task_components

SPLITS = ("train", "val", "test")

# scikit-image's bundled natural colour photographs (loader name -> corpus name).
SKIMAGE_PHOTOS: dict[str, str] = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "motorcycle_left": "motorcycle_left",
    "motorcycle_right": "motorcycle_right",
    "retina": "retina",
    "immunohistochemistry": "immunohistochemistry",
}


@dataclass(frozen=True)
class PairedSource:
    """One real paired dataset: ``params.yaml: prepare.paired[i]``.

    Attributes:
        task: the task its degraded images belong to.
        degraded_dir: folder of degraded images (searched recursively).
        clean_dir: folder of clean images (may be the same folder).
        split: ``test`` joins the task's benchmark; ``train`` joins training.
    """

    task: str
    degraded_dir: str
    clean_dir: str
    split: Literal["train", "test"] = "test"

    def __post_init__(self) -> None:
        task_components(self.task)


@dataclass(frozen=True)
class PrepareConfig:
    """``params.yaml: prepare``.

    Attributes:
        source: folder of clean images; empty for scikit-image's photographs.
        min_side: images whose shorter side is smaller are rejected.
        val_fraction: expected share of images in the validation split.
        test_fraction: expected share of images in the test split.
        min_per_split: every split needs at least this many images.
        datasets_root: a folder holding the paper's datasets (see :mod:`pip_model.data.datasets`); its clean sets
            replace the default photographs, its pairs join the benchmark (test) or training (train).
        paired: real paired datasets to add, folder by folder.
        max_pixels: images whose header declares more pixels are rejected before decoding.
        require_test_sets: test sets that ``datasets_root`` must hold (a paper protocol's: BSD68, Rain100L, SOTS...):
            a missing one stops the run here, before anything is read, with the folders it was looked for in.
        train_lists: the published training lists, by key (``denoise``, ``derain``, ``dehaze``, ``deblur``,
            ``lowlight``): a list file, relative to ``datasets_root``, or ``{file, folder}``. Only the listed training
            images (``denoise``) or pairs of that task train; see :mod:`pip_model.data.train_lists`.
    """

    source: str = ""
    datasets_root: str = ""
    min_side: int = 128
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    min_per_split: int = 1
    paired: tuple[PairedSource, ...] = ()
    max_pixels: int = DEFAULT_MAX_PIXELS
    require_test_sets: tuple[str, ...] = ()
    train_lists: dict[str, str | TrainListSource] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if unknown := unknown_test_sets(self.require_test_sets):
            raise ValueError(f"prepare.require_test_sets: {', '.join(unknown)} is no test set the dataset families "
                             f"name (known: {', '.join(KNOWN_TEST_SETS)})")
        if unknown := sorted(set(self.train_lists) - set(LIST_KEYS)):
            raise ValueError(f"prepare.train_lists.{unknown[0]}: unknown list; known: {', '.join(LIST_KEYS)}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError(
                f"prepare.val_fraction ({self.val_fraction}) and prepare.test_fraction ({self.test_fraction}) "
                "must be >= 0 and sum to less than 1"
            )


class NotEnoughImagesError(RuntimeError):
    """Too few usable images remain for the splits."""


@dataclass
class Candidate:
    """An image to consider: where it comes from and how to decode it."""

    name: str
    origin: str
    load: Callable[[], LoadedImage]
    split: str | None = None  # fixed by its dataset (BSD400 trains, BSD68 tests); None: drawn by hash
    path: Path | None = None  # the file, listed where it lies (absolute); None: written as images/<id>.png
    test_set: str = ""  # the test set it is scored in (BSD68, Urban100...); "" when none is named


def skimage_candidates() -> list[Candidate]:
    """scikit-image's bundled colour photographs."""
    import skimage.data

    def loader(name: str) -> Callable[[], LoadedImage]:
        def load() -> LoadedImage:
            if name.startswith("motorcycle_"):
                left, right, _ = skimage.data.stereo_motorcycle()
                pixels = left if name == "motorcycle_left" else right
            else:
                pixels = getattr(skimage.data, name)()
            return LoadedImage(rgb=pixels[..., :3].astype(np.float32) / 255.0, alpha=None, bit_depth=8)

        return load

    return [Candidate(name=name, origin=f"skimage.data.{name}", load=loader(name)) for name in SKIMAGE_PHOTOS]


def folder_candidates(root: Path, rejects: list[dict[str, str]], max_pixels: int = DEFAULT_MAX_PIXELS
                      ) -> list[Candidate]:
    """Every file of a user folder, to be listed where it lies (its absolute path); non-images are rejected later
    with a reason, bad entries (broken links, loops, unreadable files, names that are not UTF-8) now."""
    if not root.is_dir():
        raise FileNotFoundError(f"prepare.source: {root} is not a folder")
    walk = walk_files(root)
    for path, reason in walk.problems:
        _reject(rejects, path, reason)
    return [
        Candidate(name=str(path.relative_to(root)), origin=str(path),
                  load=lambda path=path: read_image(path, max_pixels=max_pixels), path=path.resolve())
        for path in walk.files
    ]


def pixel_hash(image: LoadedImage) -> str:
    """SHA-256 of the 8-bit RGB pixels and the size: equal for duplicate images."""
    pixels = np.round(image.rgb * 255).astype(np.uint8)
    return hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def _unit_score(seed: int, digest: str) -> float:
    """A stable pseudo-random number in [0, 1) for an image."""
    return int(hashlib.sha256(f"{seed}:{digest}".encode()).hexdigest()[:13], 16) / 16**13


def assign_splits(
    digests: list[str], *, seed: int, val_fraction: float, test_fraction: float, min_per_split: int
) -> list[str]:
    """Splits images by a hash of (seed, pixels): test below ``test_fraction``, then val, then train.

    When a split would hold fewer than ``min_per_split`` images, the images whose scores lie
    closest to that split's interval move into it, so small corpora still get every split.
    Assignments by fraction alone never change when images are added.

    Raises:
        NotEnoughImagesError: fewer than ``3 * min_per_split`` images.
    """
    needed = len(SPLITS) * min_per_split
    if len(digests) < needed:
        raise NotEnoughImagesError(
            f"only {len(digests)} usable image(s); the train/val/test splits need at least {needed} "
            f"({min_per_split} each, prepare.min_per_split). See the rejects table for skipped files."
        )
    scores = [_unit_score(seed, digest) for digest in digests]
    bounds = {"test": (0.0, test_fraction), "val": (test_fraction, test_fraction + val_fraction),
              "train": (test_fraction + val_fraction, 1.0)}
    splits = [next(name for name, (low, high) in bounds.items() if low <= score < high) for score in scores]
    for target in ("test", "val", "train"):
        low, high = bounds[target]
        while (count := Counter(splits))[target] < min_per_split:
            donors = [i for i, split in enumerate(splits) if split != target and count[split] > min_per_split]
            distance = lambda i: max(low - scores[i], scores[i] - high, 0.0)  # noqa: E731
            splits[min(donors, key=distance)] = target
    return splits


@dataclass
class PreparedCorpus:
    """What :func:`prepare_corpus` wrote: the manifest, rejects and paired tables."""

    manifest: pd.DataFrame
    rejects: pd.DataFrame
    pairs: pd.DataFrame


def _reject(rejects: list[dict[str, str]], origin: str, reason: str) -> None:
    rejects.append({"path": printable(origin), "reason": printable(reason)})


def _load_checked(candidate: Candidate, min_side: int, rejects: list[dict[str, str]]) -> LoadedImage | None:
    try:
        image = candidate.load()
    except ImageFileError as error:
        _reject(rejects, candidate.origin, error.reason)
        return None
    except Exception as error:  # an unreadable file must never stop the run
        _reject(rejects, candidate.origin, f"unreadable: {type(error).__name__}: {error}")
        return None
    if min(image.size) < min_side:
        height, width = image.size
        _reject(rejects, candidate.origin, f"too small: {width}x{height}, shorter side under prepare.min_side={min_side}")
        return None
    return image


def _is_clean_name(path: Path, root: Path) -> bool:
    parts = {part.lower() for part in path.relative_to(root).parent.parts}
    return bool(parts & CLEAN_FOLDERS) or path.stem.lower().startswith("norain-")


def pair_source(source: PairedSource) -> tuple[list[tuple[Path, Path]], list[Path], list[tuple[str, str]]]:
    """Pairs the degraded and clean files of one ``prepare.paired`` entry by name.

    Both folders are searched recursively (:func:`pip_model.image_files.walk_files`). Folders named after a role
    (``blur``/``sharp`` of GoPro, ``low``/``high`` of LOL, ``hazy``/``gt`` or ``clear`` of SOTS, ``rainy``/
    ``norain``, ``input``/``target``) count as the same folder, so one root may hold both sides: then its clean
    files are those in a clean role folder or named ``norain-N``, and every other file is degraded. A degraded
    file pairs by :func:`pip_model.data.datasets.base.pair_by_name` with the rule
    :func:`pip_model.data.datasets.base.paired_names` (the same name; ``rain-N`` -> ``norain-N``; SOTS's
    ``0001_0.8_0.2`` -> ``0001``).

    Returns:
        The pairs, the degraded files that found no clean partner, and the folders' bad entries (path, reason).

    Raises:
        FileNotFoundError: a folder is missing.
    """
    degraded_dir, clean_dir = Path(source.degraded_dir), Path(source.clean_dir)
    for folder in (degraded_dir, clean_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"prepare.paired ({source.task}): {folder} is not a folder")
    same_root = degraded_dir.resolve() == clean_dir.resolve()
    if same_root:
        clean_dir = degraded_dir  # one walk, whichever way the folder was spelt
    degraded_walk = walk_files(degraded_dir)
    clean_walk = degraded_walk if same_root else walk_files(clean_dir)
    clean = [path for path in clean_walk.files if not same_root or _is_clean_name(path, clean_dir)]
    on_clean_side = set(clean)
    degraded = [path for path in degraded_walk.files if path not in on_clean_side]
    # Two folders are the two sides: OTS's synthetic/partK/ID_A_B.jpg pairs with original/ID.jpg.
    pairs, unpaired = pair_by_name(degraded, clean, roots=(degraded_dir, clean_dir),
                                   roles=DEGRADED_FOLDERS | CLEAN_FOLDERS, partners=paired_names,
                                   roots_are_roles=not same_root)
    problems = degraded_walk.problems + ([] if same_root else clean_walk.problems)
    return pairs, unpaired, problems


@dataclass(frozen=True)
class PairJob:
    """A degraded/clean file pair to check and list, with the base of its id."""

    task: str
    split: str
    degraded: Path
    clean: Path
    id_base: str
    test_set: str = ""
    dataset: str = ""


def _paired_source_jobs(source: PairedSource, rejects: list[dict[str, str]]) -> list[PairJob]:
    degraded_dir, clean_dir = Path(source.degraded_dir), Path(source.clean_dir)
    pairs, unpaired, problems = pair_source(source)
    for path, reason in problems:
        _reject(rejects, path, f"paired {source.task}: {reason}")
    for path in unpaired:
        _reject(rejects, str(path), f"paired {source.task}: no clean image matches this name in {clean_dir}")
    return [PairJob(source.task, source.split, degraded, clean,
                    f"{source.task}-{slug(str(degraded.relative_to(degraded_dir)))}", dataset=degraded_dir.name)
            for degraded, clean in pairs]


REAL_PAIR_COLUMNS = ["id", "task", "class_id", "split", "degraded_path", "clean_path", "width", "height",
                     "degraded_bytes", "clean_bytes", "degraded_sha256", "clean_sha256"]
# Written only when some row names its test set, so a run without named test sets writes the tables as before.
TEST_SET_COLUMN = "test_set"


def with_test_sets(rows: list[dict[str, object]], columns: list[str]) -> pd.DataFrame:
    """The table of ``rows``, with the ``test_set`` column when any row names a test set."""
    named = any(row.get(TEST_SET_COLUMN) for row in rows)
    return pd.DataFrame(rows, columns=[*columns, TEST_SET_COLUMN] if named else columns)


def _index_pairs(jobs: list[PairJob], rejects: list[dict[str, str]], progress: Callable[[str], None],
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> list[dict[str, object]]:
    """Checks every pair (both files decode, same size) and lists it where it lies, with sizes and hashes (and,
    under ``_clean_pixels``, the :func:`pixel_hash` of its clean image).

    Nothing is copied: the datasets stay where they are, one image pair in memory at a time.
    """
    rows: list[dict[str, object]] = []
    used: set[str] = set()
    clean_pixels: dict[Path, str] = {}  # many pairs share a clean image (OTS: 35 hazy renderings of one scene)
    for number, job in enumerate(jobs, start=1):
        if number % 100 == 0 or number == len(jobs):
            progress(f"prepare: pairs [{number}/{len(jobs)}]")
        try:
            degraded = read_image(job.degraded, max_pixels=max_pixels)
            clean = read_image(job.clean, max_pixels=max_pixels)
        except ImageFileError as error:
            _reject(rejects, str(error.path), f"paired {job.task}: {error.reason}")
            continue
        if degraded.size != clean.size:
            _reject(rejects, str(job.degraded), f"paired {job.task}: size {degraded.size[::-1]} differs from "
                    f"its clean image {job.clean} {clean.size[::-1]}")
            continue
        height, width = degraded.size
        rows.append({
            "id": unique_id(job.id_base, job.degraded, used),  # same names from two sources never collide
            "task": job.task, "class_id": parse_task(job.task).class_id, "split": job.split,
            "degraded_path": str(job.degraded.resolve()), "clean_path": str(job.clean.resolve()),
            "width": width, "height": height,
            "degraded_bytes": job.degraded.stat().st_size, "clean_bytes": job.clean.stat().st_size,
            "degraded_sha256": file_digest(job.degraded), "clean_sha256": file_digest(job.clean),
            TEST_SET_COLUMN: job.test_set,
            # Not written: what the check against the test images compares.
            "_clean_pixels": clean_pixels.setdefault(job.clean, pixel_hash(clean)), "_dataset": job.dataset,
        })
    return rows


def dataset_sources(root: Path, rejects: list[dict[str, str]], progress: Callable[[str], None],
                    max_pixels: int = DEFAULT_MAX_PIXELS, lists: Sequence[TrainList] = ()
                    ) -> tuple[list[Candidate], list[PairJob]]:
    """The clean images (with their fixed split) and the pairs that the datasets under ``root`` hold; the bad
    entries of the folder (broken links, loops, unreadable files, names that are not UTF-8) and the files that
    do not pair are rejected (:func:`pip_model.data.datasets.discover` lists them). With ``lists``, only the
    training images and pairs they name are kept (:func:`apply_train_lists`)."""
    found = discover(root)
    for line in found.summary():
        progress(f"prepare: {root}: {line}")
    for path, reason in found.skipped:
        _reject(rejects, path, reason)
    clean, pairs = apply_train_lists(found.clean, found.pairs, lists, rejects, progress)
    candidates = [Candidate(name=f"{image.dataset}/{image.key}", origin=str(image.path.resolve()),
                            load=lambda path=image.path: read_image(path, max_pixels=max_pixels), split=image.split,
                            path=image.path.resolve(), test_set=image.test_set)
                  for image in clean]
    jobs = [PairJob(pair.task, pair.split, pair.degraded, pair.clean,
                    f"{pair.task}-{slug(pair.dataset)}-{slug(pair.key)}", test_set=pair.test_set, dataset=pair.dataset)
            for pair in pairs]
    return candidates, jobs


def apply_train_lists(clean: list[FoundClean], pairs: list[FoundPair], lists: Sequence[TrainList],
                      rejects: list[dict[str, str]], progress: Callable[[str], None]
                      ) -> tuple[list[FoundClean], list[FoundPair]]:
    """The clean images and pairs that train by the published lists: the ``denoise`` list selects among the clean
    training images, each other list among the training pairs of its task; test images and pairs stay. A listed file
    that is not there is rejected (one row per line), and how many files each list left out is said."""
    for train_list in lists:
        task = LIST_KEYS[train_list.key]
        if task is None:
            training = [image for image in clean if image.split == "train"]
            selection = select_listed(training, lambda image: image.path, train_list)
            kept = {id(image) for image in selection.kept}
            clean = [image for image in clean if image.split != "train" or id(image) in kept]
            what = "clean training images"
        else:
            training = [pair for pair in pairs if pair.split == "train" and pair.task == task]
            selection = select_listed(training, lambda pair: pair.degraded, train_list)
            kept = {id(pair) for pair in selection.kept}
            pairs = [pair for pair in pairs if pair.split != "train" or pair.task != task or id(pair) in kept]
            what = f"{task} training pairs"
        for number, line in selection.missing:
            _reject(rejects, line, f"listed in {train_list.path} (line {number}), but no such file among the {what}")
        progress(f"prepare: {train_list.label}: {len(train_list.lines)} lines, {len(selection.kept)} {what} found, "
                 f"{len(selection.missing)} not found (see rejects.csv), {selection.left_out} unlisted left out")
    return clean, pairs


def _image_row(candidate: Candidate, image: LoadedImage, digest: str, out_dir: Path) -> dict[str, object]:
    image_id = f"{slug(candidate.name)}-{digest[:8]}"
    if candidate.path is not None:
        path = str(candidate.path)
    else:
        path = (Path("images") / f"{image_id}.png").as_posix()
        write_png(out_dir / path, image.rgb)
    height, width = image.size
    return {"id": image_id, "path": path, "size": f"{width}x{height}", "width": width, "height": height,
            "hash": digest, "split": "", "origin": candidate.origin, TEST_SET_COLUMN: candidate.test_set,
            "_dataset": candidate.name.split("/")[0]}


def _collect_images(candidates: list[Candidate], config: PrepareConfig, out_dir: Path, rejects: list[dict[str, str]],
                    progress: Callable[[str], None]) -> tuple[list[dict[str, object]], list[str | None]]:
    """Reads and checks every candidate and keeps one of each set of equal pixels: the first, unless a later one is
    a test image, which then replaces a training copy (a test image is never the one dropped). Returns the rows and
    their fixed splits (None: drawn)."""
    kept: dict[str, tuple[dict[str, object], str | None]] = {}  # pixel hash -> (row, fixed split), in reading order
    copies: Counter[str] = Counter()
    for number, candidate in enumerate(candidates, start=1):
        progress(f"prepare: [{number}/{len(candidates)}] {candidate.origin}")
        image = _load_checked(candidate, config.min_side, rejects)
        if image is None:
            continue
        digest = pixel_hash(image)
        if digest in kept:
            earlier, earlier_split = kept[digest]
            if candidate.split == "test" and earlier_split != "test":
                _reject(rejects, str(earlier["origin"]), f"same pixels as test image {candidate.origin}")
                copies[str(earlier["_dataset"])] += 1
                kept[digest] = (_image_row(candidate, image, digest, out_dir), candidate.split)
            elif earlier_split == "test" and candidate.split != "test":
                _reject(rejects, candidate.origin, f"same pixels as test image {earlier['origin']}")
                copies[candidate.name.split("/")[0]] += 1
            else:
                _reject(rejects, candidate.origin, f"duplicate of {earlier['origin']} (same pixels)")
            continue
        kept[digest] = (_image_row(candidate, image, digest, out_dir), candidate.split)
    for dataset, count in sorted(copies.items()):
        progress(f"prepare: {dataset}: {count} image(s) left out of training: same pixels as a test image "
                 "(see rejects.csv)")
    return [row for row, _ in kept.values()], [split for _, split in kept.values()]


def keep_test_images_out(rows: list[dict[str, object]], pair_rows: list[dict[str, object]],
                         rejects: list[dict[str, str]], progress: Callable[[str], None]
                         ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The image rows and pair rows without the training ones whose clean pixels equal a test image's (a test
    image of the manifest, or the clean side of a test pair), each rejected with the test image it copies; how many
    per dataset is said. RESIDE's OTS (training) and SOTS (test) render the same scenes, so such copies happen."""
    tests: dict[str, str] = {}
    for row in rows:
        if row["split"] == "test":
            tests.setdefault(str(row["hash"]), str(row["origin"]))
    for row in pair_rows:
        if row["split"] == "test":
            tests.setdefault(str(row["_clean_pixels"]), str(row["clean_path"]))
    copies: Counter[str] = Counter()
    kept_rows = []
    for row in rows:  # copies among the images themselves went already (_collect_images); these copy a test pair
        if row["split"] == "train" and (test := tests.get(str(row["hash"]))) and test != row["origin"]:
            _reject(rejects, str(row["origin"]), f"same pixels as test image {test}")
            copies[str(row["_dataset"])] += 1
        else:
            kept_rows.append(row)
    kept_pairs = []
    for row in pair_rows:
        if row["split"] == "train" and (test := tests.get(str(row["_clean_pixels"]))):
            _reject(rejects, str(row["degraded_path"]), f"paired {row['task']}: same pixels as test image {test}")
            copies[str(row["_dataset"])] += 1
        else:
            kept_pairs.append(row)
    for dataset, count in sorted(copies.items()):
        progress(f"prepare: {dataset}: {count} training image(s) or pair(s) left out: their clean pixels equal a "
                 "test image's (see rejects.csv)")
    return kept_rows, kept_pairs


def prepare_corpus(config: PrepareConfig, *, seed: int, out_dir: Path, progress: Callable[[str], None] = print) -> PreparedCorpus:
    """Collects, checks, deduplicates, splits and lists the clean images and the real pairs.

    Writes ``manifest.csv`` (id, path, size, hash, split, origin), ``rejects.csv`` (path, reason)
    and ``pairs.csv`` (see ``REAL_PAIR_COLUMNS``) under ``out_dir``; both tables get a ``test_set`` column (BSD68,
    Urban100, Rain100L...) when the datasets name the test sets of their images. Only the default photographs
    are written, as ``images/<id>.png``; the images of ``prepare.source`` and the images and pairs
    of ``datasets_root`` are listed where they lie (absolute paths), never copied, and are read
    from there by :func:`pip_model.image_files.read_image` downstream (``split_files``,
    ``load_split``, ``build_benchmark``), so they give the pixels checked here. One image is in
    memory at a time. With ``train_lists`` only the listed training images and pairs are kept; training images and
    pairs that copy a test image's pixels never are (:func:`keep_test_images_out`).

    Raises:
        NotEnoughImagesError: too few usable images for the splits.
        MissingTestSetError: a test set of ``require_test_sets`` is not under ``datasets_root``.
        ConfigError: a list of ``train_lists`` is missing or names a file twice over.
    """
    rejects: list[dict[str, str]] = []
    lists = read_train_lists(config.train_lists, Path(config.datasets_root)) if config.train_lists else []
    dataset_candidates, jobs = (dataset_sources(Path(config.datasets_root), rejects, progress, config.max_pixels,
                                                lists) if config.datasets_root else ([], []))
    for source in config.paired:
        jobs += _paired_source_jobs(source, rejects)
    if config.require_test_sets:  # before any image is read: a paper protocol without its test sets stops here
        found = {item.test_set for item in [*dataset_candidates, *jobs] if item.test_set and item.split == "test"}
        out_dir.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rejects, columns=["path", "reason"]).to_csv(out_dir / "rejects.csv", index=False)
        require_test_sets(config.require_test_sets, found, config.datasets_root, skipped=len(rejects))
    # The default photographs stand in only when no clean images are given.
    candidates = folder_candidates(Path(config.source), rejects, config.max_pixels) if config.source else \
        [] if dataset_candidates else skimage_candidates()
    candidates += dataset_candidates
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, fixed_splits = _collect_images(candidates, config, out_dir, rejects, progress)

    # Written now as well, so that the table explains a run that stops for lack of images.
    pd.DataFrame(rejects, columns=["path", "reason"]).to_csv(out_dir / "rejects.csv", index=False)
    free = [row["hash"] for row, split in zip(rows, fixed_splits) if split is None]
    drawn = iter(assign_splits(free, seed=seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                               min_per_split=config.min_per_split) if free or not rows else [])
    for row, split in zip(rows, fixed_splits):
        row["split"] = split or next(drawn)
    rows, pair_rows = keep_test_images_out(rows, _index_pairs(jobs, rejects, progress, config.max_pixels), rejects,
                                           progress)

    result = PreparedCorpus(
        manifest=with_test_sets(rows, ["id", "path", "size", "width", "height", "hash", "split", "origin"]),
        rejects=pd.DataFrame(rejects, columns=["path", "reason"]),
        pairs=with_test_sets(pair_rows, REAL_PAIR_COLUMNS),
    )
    result.manifest.to_csv(out_dir / "manifest.csv", index=False)
    result.rejects.to_csv(out_dir / "rejects.csv", index=False)
    result.pairs.to_csv(out_dir / "pairs.csv", index=False)
    return result
