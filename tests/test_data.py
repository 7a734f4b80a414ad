"""The CIFAR-10 data module on small trees the tests write, including every bad input."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import learnable_images, write_image_folder
from torch_impl.data import CIFAR10DataModule, DataError, load_cifar10, split_train_val


def test_image_folder_is_decoded_exactly_and_labelled_by_class(image_tree: Path, cache_dir: Path) -> None:
    arrays = load_cifar10(image_tree, cache_dir)
    assert arrays.train_images.shape == (60, 32, 32, 3) and arrays.train_images.dtype == np.uint8
    assert arrays.test_images.shape == (20, 32, 32, 3)
    images, labels = learnable_images(6, seed=0)  # what write_image_folder wrote (PNG: lossless)
    order = np.lexsort((np.arange(60), labels))
    np.testing.assert_array_equal(arrays.train_labels, labels[order])
    np.testing.assert_array_equal(arrays.train_images, images[order])


def test_cache_is_written_reused_and_invalidated(image_tree: Path, cache_dir: Path) -> None:
    first = load_cifar10(image_tree, cache_dir)
    files = list(cache_dir.glob("cifar10-*.npz"))
    assert len(files) == 1
    again = load_cifar10(image_tree, cache_dir)
    np.testing.assert_array_equal(first.test_images, again.test_images)
    assert list(cache_dir.glob("cifar10-*.npz")) == files
    next((image_tree / "test" / "cat").iterdir()).unlink()  # the tree changed: decode anew
    assert len(load_cifar10(image_tree, cache_dir).test_labels) == 19


def test_env_var_is_the_fallback_location(image_tree: Path, cache_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CIFAR10_DIR", str(image_tree))
    assert len(load_cifar10(None, cache_dir).train_labels) == 60


def test_read_only_cache_location_still_loads(image_tree: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    arrays = load_cifar10(image_tree, blocker / "cache")
    assert len(arrays.train_labels) == 60
    assert "could not write the decoded-data cache" in capsys.readouterr().out


def test_datamodule_splits_are_seeded_and_disjoint(image_tree: Path, cache_dir: Path) -> None:
    dm = CIFAR10DataModule(str(image_tree), str(cache_dir), batch_size=8, val_fraction=0.25)
    dm.setup("fit")
    splits = dm.numpy_splits()
    assert len(splits["train"][1]) == 45 and len(splits["val"][1]) == 15 and len(splits["test"][1]) == 20
    tr, va = split_train_val(60, 0.25, seed=0)
    assert set(tr).isdisjoint(va) and len(set(tr) | set(va)) == 60
    tr2, _ = split_train_val(60, 0.25, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 32, 32, 3) and str(images.dtype) == "torch.uint8" and labels.shape == (8,)
    assert next(iter(dm.test_dataloader()))[0].shape == (20, 32, 32, 3)


def test_no_validation_split(image_tree: Path, cache_dir: Path) -> None:
    dm = CIFAR10DataModule(str(image_tree), str(cache_dir), val_fraction=0.0)
    dm.setup("fit")
    assert dm.val_dataloader() == []


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_bad_val_fraction(bad: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        CIFAR10DataModule("x", val_fraction=bad)


# Each bad input stops with one message naming the path and what was expected.
def _offline(monkeypatch) -> list:
    """torchvision's download raising what it raises without a network; records the calls."""
    import torchvision.datasets.cifar as tv_cifar

    calls = []

    def offline(*args, **kwargs):
        calls.append(kwargs.get("download_root", args[1] if len(args) > 1 else None))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    return calls


def test_no_location_given_downloads_to_the_default_and_says_what_to_do_offline(
        tmp_path: Path, monkeypatch, cache_dir: Path) -> None:
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    calls = _offline(monkeypatch)
    with pytest.raises(DataError) as err:
        load_cifar10(None, cache_dir)
    assert calls == [str(tmp_path / "data" / "cifar10")]  # it tried torchvision's download, there
    message = str(err.value)
    assert "\n" not in message
    for needed in ("could not download CIFAR-10 into", "offline", "--data-dir", "CIFAR10_DIR",
                   "train/<class>/", "cifar-10-batches-py"):
        assert needed in message, needed


def test_the_default_location_is_read_when_it_holds_a_copy(image_tree: Path, tmp_path: Path, monkeypatch,
                                                           cache_dir: Path) -> None:
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    (tmp_path / "cwd" / "data").mkdir(parents=True)
    image_tree.rename(tmp_path / "cwd" / "data" / "cifar10")
    monkeypatch.chdir(tmp_path / "cwd")
    calls = _offline(monkeypatch)
    assert load_cifar10(None, cache_dir).train_images.shape[1:] == (32, 32, 3)
    assert calls == []


def test_missing_directory(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere does not exist; point --data-dir or CIFAR10_DIR at a copy"):
        load_cifar10(tmp_path / "nowhere", cache_dir)


def test_directory_without_cifar(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "junk").mkdir()
    with pytest.raises(DataError, match=r"junk holds no CIFAR-10: expected train/<class>"):
        load_cifar10(tmp_path / "junk", cache_dir)


def test_test_split_missing(image_tree: Path, cache_dir: Path) -> None:
    import shutil

    shutil.rmtree(image_tree / "test")
    with pytest.raises(DataError, match="has train/ but no test/"):
        load_cifar10(image_tree, cache_dir)


def test_wrong_class_layout(image_tree: Path, cache_dir: Path) -> None:
    (image_tree / "train" / "dog").rename(image_tree / "train" / "doggo")
    with pytest.raises(DataError, match=r"train: expected one folder per CIFAR-10 class.*doggo"):
        load_cifar10(image_tree, cache_dir)


def test_empty_class_folder(image_tree: Path, cache_dir: Path) -> None:
    for f in (image_tree / "test" / "frog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="test"):
        load_cifar10(image_tree, cache_dir)


def test_unreadable_image(image_tree: Path, cache_dir: Path) -> None:
    bad = image_tree / "train" / "ship" / "0050.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot read image .*0050.png"):
        load_cifar10(image_tree, cache_dir)


def test_wrong_image_size(image_tree: Path, cache_dir: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image_tree / "test" / "bird" / "0004.png")
    with pytest.raises(DataError, match=r"0004.png has shape \(64, 64, 3\), expected 32x32"):
        load_cifar10(image_tree, cache_dir)


def test_jpeg_tree_like_the_shared_copy(tmp_path: Path, cache_dir: Path) -> None:
    root = write_image_folder(tmp_path / "jpg", n_train=2, n_test=1, fmt="jpg")
    arrays = load_cifar10(root, cache_dir)
    assert arrays.train_images.shape == (20, 32, 32, 3)


def test_offline_download_says_how_to_point_at_a_local_copy(tmp_path: Path, cache_dir: Path,
                                                             monkeypatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match=r"could not download CIFAR-10.*offline.*--data-dir"):
        load_cifar10(tmp_path / "dl", cache_dir, download=True)


def test_torchvision_layout_without_download(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "tv" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DataError, match=r"tv: Dataset not found or corrupted"):
        load_cifar10(tmp_path / "tv", cache_dir)
