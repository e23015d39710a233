"""CIFAR data as uint8 tensors: torchvision CIFAR-10/100, an offline .npz copy, or generated images.

Images stay uint8 (N, 32, 32, 3) until a batch is taken on the device; the
notebooks' ToTensor + Normalize (MEAN, STD) is applied per batch there
(ablation.train.DeviceData.normalize).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
DATA_ROOT_ENV = "ABLATION_DATA_ROOT"
NPZ_KEYS = ("train_x", "train_y", "test_x", "test_y")
OFFLINE_HINT = "pass --data PATH.npz (a local copy) or --data synthetic"
SOURCE_CLASSES = {"cifar10": 10, "cifar100": 100, "synthetic": 10, "synthetic:100": 100}  # named source -> classes


class DataError(ValueError):
    """Data that cannot be used; the message says why and what to pass instead."""


@dataclass(frozen=True)
class Dataset:
    source: str
    train_x: torch.Tensor  # uint8 (N, 32, 32, 3), RGB
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int


def default_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV, Path.home() / ".cache" / "ablation-bench"))


def load_dataset(source: str, root: str | Path | None = None) -> Dataset:
    """``cifar10``, ``cifar100`` (torchvision, downloaded into ``root``), ``synthetic`` (10 classes),
    ``synthetic:100`` (100 classes) or a .npz path."""
    if source in ("cifar10", "cifar100"):
        return _torchvision(source, Path(root) if root else default_root())
    if source in ("synthetic", "synthetic:100"):
        return synthetic(classes=100 if source == "synthetic:100" else 10)
    if source.endswith(".npz"):
        return load_npz(source)
    raise DataError(f"unknown data source {source!r}: use {', '.join(SOURCE_CLASSES)} or a PATH.npz")


def sources_with(classes: int) -> str:
    """The data that has ``classes`` classes, as error messages suggest it: 'cifar10 or synthetic, or a PATH.npz of
    10 classes'."""
    names = " or ".join(name for name, count in SOURCE_CLASSES.items() if count == classes)
    return f"{names}, or a PATH.npz of {classes} classes"


def _torchvision(name: str, root: Path) -> Dataset:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except (OSError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot load {name} into {root} ({reason}); {OFFLINE_HINT}") from None
    return Dataset(
        source=name,
        train_x=torch.from_numpy(np.asarray(train.data)),
        train_y=torch.tensor(train.targets, dtype=torch.int64),
        test_x=torch.from_numpy(np.asarray(test.data)),
        test_y=torch.tensor(test.targets, dtype=torch.int64),
        classes=len(train.classes),
    )


def load_npz(path: str | Path) -> Dataset:
    """A .npz with train_x/test_x uint8 (N, 32, 32, 3) and integer train_y/test_y, validated."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such data file {path}; {OFFLINE_HINT}")
    if not zipfile.is_zipfile(path):  # numpy would take it for a pickle and suggest unpickling it
        raise DataError(f"{path} is not a complete .npz archive (numpy.savez writes one); {OFFLINE_HINT}")
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in NPZ_KEYS if key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a readable .npz file ({error})") from None
    missing = [key for key in NPZ_KEYS if key not in arrays]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; it needs {', '.join(NPZ_KEYS)}")
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # numpy hands back a member that is no .npy file as raw bytes
            raise DataError(f"{path}: {key} is not a numpy array; write the file with numpy.savez")
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            raise DataError(f"{path}: {split}_x is {x.dtype} {x.shape}; expected uint8 (N, 32, 32, 3)")
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
            raise DataError(f"{path}: {split}_y is {y.dtype} {y.shape}; expected integers ({len(x)},)")
        if len(y) == 0:
            raise DataError(f"{path}: {split} split is empty")
    classes = int(arrays["train_y"].max()) + 1
    for split in ("train", "test"):
        y = arrays[f"{split}_y"]
        if y.min() < 0 or y.max() >= classes:
            raise DataError(f"{path}: {split}_y holds labels outside 0..{classes - 1}")
    return Dataset(
        source=str(path),
        train_x=torch.from_numpy(arrays["train_x"]),
        train_y=torch.from_numpy(arrays["train_y"].astype(np.int64)),
        test_x=torch.from_numpy(arrays["test_x"]),
        test_y=torch.from_numpy(arrays["test_y"].astype(np.int64)),
        classes=classes,
    )


def synthetic(classes: int = 10, train_per_class: int = 500, test_per_class: int = 100, seed: int = 0) -> Dataset:
    """Class-conditional images a small CNN can learn: a smooth colour template per class plus noise."""
    g = torch.Generator().manual_seed(seed)
    templates = 128 + (torch.rand(classes, 3, 4, 4, generator=g) - 0.5) * 80
    templates = torch.nn.functional.interpolate(templates, size=32, mode="bilinear", align_corners=False)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(classes).repeat_interleave(per_class)
        y = y[torch.randperm(len(y), generator=g)]
        x = templates[y] + torch.randn(len(y), 3, 32, 32, generator=g) * 60
        return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous(), y

    train_x, train_y = draw(train_per_class)
    test_x, test_y = draw(test_per_class)
    return Dataset("synthetic" if classes == 10 else f"synthetic:{classes}", train_x, train_y, test_x, test_y, classes)


def balanced_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` images of every class, drawn at random with ``seed``, in pool order."""
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(int(labels.max()) + 1):
        pool = torch.nonzero(labels == c).flatten()
        if len(pool) < per_class:
            raise DataError(
                f"class {c} has {len(pool)} training images but the study takes {per_class} per class; "
                "use data with a larger training pool"
            )
        picked.append(pool[torch.randperm(len(pool), generator=g)[:per_class]])
    return torch.cat(picked).sort().values


def checksum(*tensors: torch.Tensor) -> str:
    """A short SHA-256 over the tensors' bytes: which images and labels a run used."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
