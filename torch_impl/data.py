"""CIFAR-10 as uint8 NHWC arrays, cached once, served by a ``LightningDataModule``.

Two on-disk layouts are accepted:
  * an image-folder tree ``train/<class>/*`` + ``test/<class>/*`` (read with
    ``torchvision.datasets.ImageFolder``; ``../shared/cifar10`` is laid out this way);
  * torchvision's ``cifar-10-batches-py`` (``torchvision.datasets.CIFAR10``), downloaded
    on request with ``download=True``.
Where: ``--data-dir``, else ``$CIFAR10_DIR``, else ``./data/cifar10`` (torchvision's habit),
which is downloaded into by torchvision (progress bar, checksums) when it holds no copy.

Decoding 60,000 JPEGs takes a while, so the decoded arrays are written once to a cache
directory (the data directory may be read-only) and later runs start in seconds. The
same arrays are what the JAX reference trains on (``CIFAR10DataModule.numpy_splits``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset
from tqdm.auto import tqdm


# EpochSampler: the training order as a function of (seed, epoch), so a run resumes mid-epoch exactly.
#
# ``DataLoader(shuffle=True)`` draws each epoch's order from the global RNG, which a resumed
# process cannot reproduce: a run restarted in the middle of an epoch would see another order
# from there on. Here epoch ``e``'s order is ``randperm(n)`` from a generator seeded with
# ``(seed, e)``, and a run resumed after ``start_step`` optimizer steps (one batch each, whole
# batches only) starts epoch ``start_step // batches_per_epoch`` at its batch
# ``start_step % batches_per_epoch``: the same batches, in the same order, as the run that was
# never stopped. Lightning tells the sampler its epoch through ``set_epoch`` (as it does for
# ``DistributedSampler``) before each epoch; nothing needs saving in the checkpoint, whose
# step counter already says where the data stands.
#
# torchdata's ``StatefulDataLoader`` solves the general case (workers, iterable datasets) by
# saving the loader's state in the checkpoint; this in-memory dataset needs only the arithmetic.
class EpochSampler(Sampler[int]):
    """Indices ``0..n-1`` in epoch ``e``'s seeded order, from ``start_step``'s batch on in the
    epoch the run resumes in. Yields whole batches only (``n // batch_size`` per epoch), like
    ``drop_last=True``."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0) -> None:
        if n < batch_size:
            raise ValueError(f"EpochSampler needs at least one whole batch: {n} items, batch size {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self.resume_epoch, self.resume_batch = divmod(start_step, self.per_epoch)
        self.epoch = self.resume_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s whole order (its first ``per_epoch * batch_size`` items are used)."""
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        return torch.randperm(self.n, generator=g)

    def _skip(self) -> int:
        return self.resume_batch * self.batch_size if self.epoch == self.resume_epoch else 0

    def __iter__(self) -> Iterator[int]:
        yield from self.order(self.epoch)[self._skip(): self.per_epoch * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.per_epoch * self.batch_size - self._skip()



CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATA_ENV = "CIFAR10_DIR"
DEFAULT_DATA_DIR = Path("data") / "cifar10"  # relative to the working directory
LAYOUTS = ("image folders train/<class>/ + test/<class>/, or torchvision's cifar-10-batches-py/")
CACHE_ENV = "SVD_COMPRESS_CACHE"
CACHE_VERSION = 1


class DataError(RuntimeError):
    """The data directory is missing, malformed or unreadable; the message says how to fix it."""


@dataclass
class CifarArrays:
    """Images are uint8 ``[N, 32, 32, 3]`` (NHWC), labels int64 ``[N]``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$CIFAR10_DIR``, else ``./data/cifar10``."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser().resolve()


def _is_default(data_dir: str | os.PathLike | None) -> bool:
    return data_dir is None and not os.environ.get(DATA_ENV)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "svd_compress")).expanduser()


def _image_folder_files(root: Path, split: str) -> list[tuple[str, int]]:
    from torchvision.datasets import ImageFolder

    split_dir = root / split
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if tuple(found) != CLASSES:
        raise DataError(
            f"{split_dir}: expected one folder per CIFAR-10 class {list(CLASSES)}, found {found or 'none'}"
        )
    try:
        folder = ImageFolder(str(split_dir))
    except (FileNotFoundError, OSError) as err:  # e.g. a class folder with no image files
        raise DataError(f"{split_dir}: {err}") from None
    return folder.samples


def _decode(path: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # PIL raises several types for corrupt files
        raise DataError(f"cannot read image {path}: {err}") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"image {path} has shape {arr.shape}, expected 32x32 RGB")
    return arr


def _read_image_folder(root: Path) -> CifarArrays:
    out = []
    for split in ("train", "test"):
        samples = _image_folder_files(root, split)
        paths = [p for p, _ in samples]
        # PIL releases the GIL while decoding, so threads use both cores.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            images = list(tqdm(pool.map(_decode, paths, chunksize=256), total=len(paths),
                               desc=f"decoding {split} images", unit="img"))
        out += [np.stack(images), np.asarray([c for _, c in samples], dtype=np.int64)]
    return CifarArrays(*out)


def _read_torchvision(root: Path, download: bool) -> CifarArrays:
    from torchvision.datasets import CIFAR10

    out = []
    for train in (True, False):
        try:
            ds = CIFAR10(str(root), train=train, download=download)
        except RuntimeError as err:  # torchvision's "Dataset not found or corrupted"
            raise DataError(f"{root}: {err}") from None
        except OSError as err:  # URLError and friends when offline
            raise DataError(
                f"could not download CIFAR-10 into {root} ({err}); this machine may be offline: "
                f"pass --data-dir PATH or set {DATA_ENV}=PATH to a local copy ({LAYOUTS})"
            ) from None
        out += [np.ascontiguousarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)]
    return CifarArrays(*out)


def detect_layout(root: Path, download: bool = False) -> str:
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train and has_test:
        return "image_folder"
    if has_train or has_test:
        missing = "test" if has_train else "train"
        raise DataError(f"{root} has {'train' if has_train else 'test'}/ but no {missing}/: "
                        "an image-folder copy of CIFAR-10 needs both train/<class>/ and test/<class>/")
    if (root / "cifar-10-batches-py").is_dir() or download:
        return "torchvision"
    if not root.exists():
        raise DataError(f"data directory {root} does not exist; point --data-dir or {DATA_ENV} at a copy of "
                        f"CIFAR-10 ({LAYOUTS}), or set neither to download it into ./{DEFAULT_DATA_DIR}")
    raise DataError(
        f"{root} holds no CIFAR-10: expected train/<class>/*.jpg and test/<class>/*.jpg, "
        "or torchvision's cifar-10-batches-py/ (add --download to fetch it)"
    )


def _fingerprint(root: Path, layout: str) -> str:
    """Changes when files are added, removed or rewritten, so a stale cache is never read."""
    h = hashlib.sha1(f"v{CACHE_VERSION}|{layout}|{root}".encode())
    base = root if layout == "image_folder" else root / "cifar-10-batches-py"
    if base.exists():
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_cifar10(data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 download: bool = False) -> CifarArrays:
    """Decoded CIFAR-10, from the cache when its fingerprint matches, else decoded and cached."""
    root = resolve_data_dir(data_dir)
    if _is_default(data_dir) and not download:
        try:
            detect_layout(root)
        except DataError:  # nothing there yet: fetch it, as torchvision's own examples do
            print(f"no CIFAR-10 location given and none at {root}: downloading it there with torchvision "
                  f"(or pass --data-dir PATH / set {DATA_ENV}=PATH to use a copy you have)", flush=True)
            download = True
    layout = detect_layout(root, download)
    if layout == "torchvision" and download:
        _read_torchvision(root, download=True)  # fetch first so the fingerprint sees the files
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache_file = cache / f"cifar10-{_fingerprint(root, layout)}.npz"
    if cache_file.exists():
        with np.load(cache_file) as z:
            return CifarArrays(**{k: z[k] for k in CifarArrays.__dataclass_fields__})
    arrays = _read_image_folder(root) if layout == "image_folder" else _read_torchvision(root, False)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays.__dict__)
        os.replace(tmp, cache_file)  # atomic: a concurrent reader never sees half a file
    except OSError as err:
        print(f"warning: could not write the decoded-data cache to {cache} ({err}); "
              f"set {CACHE_ENV} to a writable directory to start faster next time")
    return arrays


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the training indices into (train, validation), both in random order.

    The order stays shuffled so that a prefix (``train_limit``) is a random subset: the
    image-folder layout stores the images sorted by class.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


def split_record(n: int, val_fraction: float, seed: int, train_limit: int | None = None) -> dict:
    """What a run trained on, in a form another run can check: the split's arguments and a
    hash of the held-out (validation) indices, so a changed split function is caught too."""
    _, val = split_train_val(n, val_fraction, seed)
    digest = hashlib.sha256(np.sort(val).astype("<i8").tobytes()).hexdigest()
    return {"seed": seed, "val_fraction": val_fraction, "n_images": n, "train_limit": train_limit,
            "n_val": len(val), "held_out_sha256": digest}


def trained_indices(record: dict) -> np.ndarray:
    """The training-image indices a run with this ``split_record`` may have trained on."""
    tr, _ = split_train_val(record["n_images"], record["val_fraction"], record["seed"])
    return tr[: record["train_limit"]] if record.get("train_limit") else tr


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10 train/val/test loaders over uint8 NHWC tensors (the model normalizes)."""

    def __init__(self, data_dir: str | None = None, cache_dir: str | None = None, batch_size: int = 128,
                 eval_batch_size: int = 1000, val_fraction: float = 0.1, split_seed: int = 0,
                 download: bool = False, train_limit: int | None = None, test_limit: int | None = None,
                 num_workers: int = 0, shuffle_seed: int = 0) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be positive, got {batch_size} and {eval_batch_size}")
        split_train_val(10, val_fraction, split_seed)  # validates val_fraction early
        self.save_hyperparameters()
        self._splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self.resume_step = 0  # optimizer steps already taken: the training order starts after them
        self._prepared = False

    def prepare_data(self) -> None:
        if not self._prepared:  # once per process: a trainer may call it after the caller did
            load_cifar10(self.hparams.data_dir, self.hparams.cache_dir, self.hparams.download)
            self._prepared = True

    def numpy_splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train"|"val"|"test": (uint8 images NHWC, int64 labels)}``, shared with ``jax_ref``."""
        if self._splits is None:
            hp = self.hparams
            arr = load_cifar10(hp.data_dir, hp.cache_dir, hp.download)
            self._n_images = len(arr.train_labels)
            tr, va = split_train_val(len(arr.train_labels), hp.val_fraction, hp.split_seed)
            tr = tr[: hp.train_limit] if hp.train_limit else tr
            te = np.arange(len(arr.test_labels))
            if hp.test_limit:  # a seeded random subset: the test images are stored by class
                te = np.sort(np.random.default_rng(hp.split_seed).permutation(te)[: hp.test_limit])
            self._splits = {
                "train": (arr.train_images[tr], arr.train_labels[tr]),
                "val": (arr.train_images[va], arr.train_labels[va]),
                "test": (arr.test_images[te], arr.test_labels[te]),
            }
        return self._splits

    def split_record(self) -> dict:
        """``split_record`` of this module's training/validation split (``model.pt`` keeps it)."""
        hp = self.hparams
        self.numpy_splits()
        return split_record(self._n_images, hp.val_fraction, hp.split_seed, hp.train_limit)

    def setup(self, stage: str | None = None) -> None:
        self.numpy_splits()

    def _loader(self, split: str, train: bool) -> DataLoader:
        images, labels = self.numpy_splits()[split]
        ds = TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
        bs = self.hparams.batch_size if train else self.hparams.eval_batch_size
        if train and len(ds) >= bs:  # the order depends on (seed, epoch) only: exact resume mid-epoch
            sampler = EpochSampler(len(ds), bs, self.hparams.shuffle_seed, self.resume_step)
            return DataLoader(ds, batch_size=bs, sampler=sampler, drop_last=True,
                              num_workers=self.hparams.num_workers)
        return DataLoader(ds, batch_size=bs, shuffle=train, num_workers=self.hparams.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader | list:
        # An empty list tells Lightning there is no validation (val_fraction=0).
        return self._loader("val", train=False) if len(self.numpy_splits()["val"][1]) else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)
