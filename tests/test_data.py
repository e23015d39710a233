"""The data layer: npz validation, torchvision wrapping, subsets, normalization, generated data."""

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ablation.data import MEAN, STD, DataError, balanced_subset, checksum, load_dataset, load_npz, synthetic
from ablation.results import read_results
from ablation.studies import DOCUMENTED
from ablation.train import prepare

RECORDED_RUN = Path(__file__).resolve().parent.parent / "bench" / "recorded" / "h200-bench-replicate-sgd.json"


def write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
        "train_y": np.arange(40) % 10,
        "test_x": rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
        "test_y": np.arange(20) % 10,
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_real_copy_loads_as_documented(cifar_npz):
    data = load_npz(cifar_npz)
    assert data.train_x.shape == (5000, 32, 32, 3) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (10000, 32, 32, 3) and data.classes == 10
    assert torch.bincount(data.train_y).tolist() == [500] * 10
    assert data.test_y[:4].tolist() == [3, 8, 8, 0]


@pytest.mark.parametrize("overrides,message", [
    ({"test_y": None}, "lacks test_y"),
    ({"train_x": np.zeros((40, 32, 32, 3), np.float32)}, r"train_x is float32 \(40, 32, 32, 3\); expected uint8"),
    ({"test_x": np.zeros((20, 3, 32, 32), np.uint8)}, r"test_x is uint8 \(20, 3, 32, 32\)"),
    ({"train_y": np.arange(39) % 10}, r"train_y is int64 \(39,\); expected integers \(40,\)"),
    ({"train_y": np.full(40, 1.0)}, "train_y is float64"),
    ({"test_y": np.arange(20) % 12}, r"test_y holds labels outside 0..9"),
    ({"train_y": np.arange(40) % 10 - 1}, r"train_y holds labels outside"),
    ({"test_x": np.zeros((0, 32, 32, 3), np.uint8), "test_y": np.zeros(0, np.int64)}, "test split is empty"),
])
def test_malformed_npz_is_rejected_with_the_reason(tmp_path, overrides, message):
    with pytest.raises(DataError, match=message):
        load_npz(write_npz(tmp_path / "bad.npz", **overrides))


def test_missing_and_unreadable_npz(tmp_path):
    with pytest.raises(DataError, match="no such data file .*--data synthetic"):
        load_dataset(str(tmp_path / "absent.npz"))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"junk.npz is not a complete .npz archive \(numpy.savez writes one\); pass --data") as error:
        load_npz(tmp_path / "junk.npz")
    assert "pickle" not in str(error.value)
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as archive:
        for key in ("train_x", "train_y", "test_x", "test_y"):
            archive.writestr(f"{key}.npy", b"raw bytes, no .npy header")
    with pytest.raises(DataError, match="raw.npz: train_x is not a numpy array; write the file with numpy.savez"):
        load_npz(tmp_path / "raw.npz")
    with pytest.raises(DataError, match="unknown data source 'imagenet'"):
        load_dataset("imagenet")


def test_torchvision_failure_names_the_offline_fix(tmp_path, monkeypatch):
    from torchvision import datasets  # here, not at the top: its import costs every xdist worker 1.5 s

    class Unreachable:
        def __init__(self, *args, **kwargs):
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(datasets, "CIFAR100", Unreachable)
    with pytest.raises(DataError, match=r"cannot load cifar100 into .*--data PATH.npz .* or --data synthetic"):
        load_dataset("cifar100", tmp_path)


def test_torchvision_datasets_become_uint8_tensors(tmp_path, monkeypatch):
    from torchvision import datasets

    seen = {}

    class FakeCIFAR10:
        classes = [str(i) for i in range(10)]

        def __init__(self, root, train, download):
            seen[train] = (root, download)
            n = 30 if train else 10
            self.data = np.full((n, 32, 32, 3), 7, np.uint8)
            self.targets = list(np.arange(n) % 10)

    monkeypatch.setattr(datasets, "CIFAR10", FakeCIFAR10)
    monkeypatch.setenv("ABLATION_DATA_ROOT", str(tmp_path / "root"))
    data = load_dataset("cifar10")
    assert seen == {True: (str(tmp_path / "root"), True), False: (str(tmp_path / "root"), True)}
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (30, 32, 32, 3)
    assert data.train_y.dtype == torch.int64 and data.classes == 10 and len(data.test_y) == 10


def test_balanced_subset_is_balanced_deterministic_and_seeded():
    labels = torch.arange(10).repeat_interleave(50)[torch.randperm(500, generator=torch.Generator().manual_seed(1))]
    a, b, c = (balanced_subset(labels, 20, s) for s in (5, 5, 6))
    assert torch.bincount(labels[a]).tolist() == [20] * 10
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 200
    with pytest.raises(DataError, match="class 0 has 50 training images but the study takes 60"):
        balanced_subset(labels, 60, 0)


@pytest.mark.parametrize("study", DOCUMENTED, ids=lambda study: study.name)
def test_each_study_draws_the_subset_the_recorded_gpu_runs_trained_on(cifar_npz, study):
    """The recorded H200 runs were made on this copy; compare and the bench refuse a baseline whose data checksum
    differs, so a change in which images a study draws, or in their order, would orphan every recorded run."""
    hp = study.settings()
    data = prepare(load_npz(cifar_npz), hp.per_class, study.subset_seed, "cpu", hp.test_limit)
    assert data.checksum == read_results(RECORDED_RUN)["studies"][study.name]["data_checksum"]


def notebooks_normalize() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The Normalize constants ablation/reference/README.md says every notebook used."""
    text = (Path(__file__).resolve().parent.parent / "ablation" / "reference" / "README.md").read_text()
    mean, std = re.search(r"Normalize\(mean=\(([^)]*)\), std=\(([^)]*)\)\)", text).groups()
    return tuple(map(float, mean.split(","))), tuple(map(float, std.split(",")))


def test_device_normalization_matches_the_notebooks_totensor_then_normalize(cifar_npz):
    from torchvision import transforms

    mean, std = notebooks_normalize()
    assert (MEAN, STD) == (mean, std)
    data = load_npz(cifar_npz)
    device_data = prepare(data, per_class=2, subset_seed=0, device="cpu", test_limit=8)
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    expected = torch.stack([reference(Image.fromarray(img.numpy())) for img in data.test_x[:8]])
    ours = device_data.normalize(device_data.test_x, torch.float32)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_synthetic_data_is_class_conditional_and_reproducible():
    a, b = synthetic(seed=3), synthetic(seed=3)
    assert torch.equal(a.train_x, b.train_x) and a.classes == 10
    assert torch.bincount(a.train_y).tolist() == [500] * 10
    class_means = torch.stack([a.train_x[a.train_y == c].float().mean(0) for c in range(10)])
    # each class has its own template: per-class means differ by far more than their noise
    assert torch.cdist(class_means.flatten(1), class_means.flatten(1)).fill_diagonal_(1e9).min() > 100
    assert synthetic(classes=100, train_per_class=5, test_per_class=1).classes == 100


def test_checksum_tracks_content():
    x = torch.arange(12, dtype=torch.uint8)
    assert checksum(x) == checksum(x.clone()) != checksum(x.flip(0))
