"""Datasets for the studies: scikit-learn's digits, and local MNIST, Fashion-MNIST, CIFAR-10.

Nothing is downloaded. ``digits`` ships with scikit-learn. For the others, pass
the folder that holds the files in their standard distribution formats:

* MNIST and Fashion-MNIST: the four IDX files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``).
* CIFAR-10: the python version, ``data_batch_1`` ... ``data_batch_5`` and
  ``test_batch`` (pickled dicts with ``data`` and ``labels``), in the folder or
  in its ``cifar-10-batches-py`` sub-folder.

Example:
  >>> data = load("mnist", "~/data/mnist", flatten=True)
  >>> data.x_train.shape, data.y_train.shape
  ((60000, 784), (60000,))
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
from pathlib import Path

import numpy as np

NAMES = ("digits", "mnist", "fashion-mnist", "cifar10")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test arrays: ``x`` float32 (pixels scaled as asked), ``y`` int32 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    image_shape: tuple[int, ...]

    @property
    def num_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` / ``n_test`` examples (all when None)."""
        return dataclasses.replace(
            self,
            x_train=self.x_train[:n_train],
            y_train=self.y_train[:n_train],
            x_test=self.x_test[:n_test],
            y_test=self.y_test[:n_test],
        )


# ----------------------------------------------------------------------------
# digits (bundled with scikit-learn)


def load_digits(*, test_fraction: float = 0.25, seed: int = 0, scale: str = "unit") -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, pixel values 0..16), split at random.

    Args:
      test_fraction: the fraction of examples held out for testing.
      seed: the seed of the split.
      scale: ``"unit"`` divides the pixels by 16 (0..1), ``"raw"`` keeps 0..16.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    if scale not in ("unit", "raw"):
        raise ValueError(f"load_digits: scale must be 'unit' or 'raw', got {scale!r}.")
    bunch = sk_load_digits()
    x = bunch.data.astype(np.float32)
    if scale == "unit":
        x = x / np.float32(16.0)
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test], 10, (8, 8))


# ----------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into an array of its stored shape and type.

    The format: two zero bytes, a type code (0x08 = uint8, ...), the number of
    dimensions, the dimensions as big-endian uint32, then the data row-major.
    """
    path = Path(path).expanduser()
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: it should start with two zero bytes and a type code "
            f"in {sorted(hex(k) for k in _IDX_DTYPES)}, got {raw[:4]!r}."
        )
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(
            f"{path}: the header announces shape {shape} of {dtype} "
            f"({count * dtype.itemsize} bytes) but {len(raw) - offset} bytes follow it."
        )
    return (
        np.frombuffer(raw, dtype, count=count, offset=offset)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    # Some copies use a dot instead of the dash before idx (train-images.idx3-ubyte).
    alt = stem.replace("-idx", ".idx")
    for candidate in (folder / alt, folder / f"{alt}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{stem} (or {stem}.gz) was not found in {folder}. Pass the folder that holds the four "
        "IDX files of MNIST / Fashion-MNIST; nothing is downloaded."
    )


def load_idx_folder(
    path: str | Path, *, name: str = "mnist", flatten: bool = True, scale: str = "unit"
) -> Dataset:
    """MNIST or Fashion-MNIST from a folder with the four standard IDX files."""
    folder = Path(path).expanduser()
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{folder}: {split} images have shape {images.shape} and labels {labels.shape}; "
                "expected (n, rows, cols) and (n,)."
            )
        arrays[split] = (images, labels)
    image_shape = arrays["train"][0].shape[1:]
    return _finish(name, arrays, 10, image_shape, flatten=flatten, scale=scale, maximum=255.0)


# ----------------------------------------------------------------------------
# CIFAR-10 (python pickles)


def _unpickle(path: Path) -> dict:
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def load_cifar10(path: str | Path, *, flatten: bool = True, scale: str = "unit") -> Dataset:
    """CIFAR-10 from the python batches (``data_batch_1..5``, ``test_batch``).

    Images come as (n, 32, 32, 3) (height, width, channel) or, with
    ``flatten``, as (n, 3072) rows of that array.
    """
    folder = Path(path).expanduser()
    if not (folder / "test_batch").exists() and (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    train_files = sorted(folder.glob("data_batch_*"))
    if not train_files or not (folder / "test_batch").exists():
        raise FileNotFoundError(
            f"data_batch_1..5 and test_batch were not found in {folder}. Pass the folder of "
            "CIFAR-10's python version (cifar-10-batches-py); nothing is downloaded."
        )

    def read(files):
        xs, ys = [], []
        for file in files:
            batch = _unpickle(file)
            data = np.asarray(batch["data"], dtype=np.uint8)
            labels = np.asarray(batch["labels"], dtype=np.int64)
            if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
                raise ValueError(
                    f"{file}: data has shape {data.shape} and labels {labels.shape}; expected "
                    "(n, 3072) uint8 and (n,)."
                )
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(labels)
        return np.concatenate(xs), np.concatenate(ys)

    arrays = {"train": read(train_files), "test": read([folder / "test_batch"])}
    return _finish("cifar10", arrays, 10, (32, 32, 3), flatten=flatten, scale=scale, maximum=255.0)


def _finish(name, arrays, num_classes, image_shape, *, flatten, scale, maximum) -> Dataset:
    if scale not in ("unit", "raw"):
        raise ValueError(f"{name}: scale must be 'unit' or 'raw', got {scale!r}.")
    out = {}
    for split, (images, labels) in arrays.items():
        x = images.astype(np.float32)
        if scale == "unit":
            x = x / np.float32(maximum)
        if flatten:
            x = x.reshape(len(x), -1)
        out[split] = (x, labels.astype(np.int32))
    return Dataset(
        name, *out["train"], *out["test"], num_classes=num_classes, image_shape=tuple(image_shape)
    )


def load(
    name: str = "digits",
    path: str | Path | None = None,
    *,
    flatten: bool = True,
    scale: str = "unit",
    seed: int = 0,
) -> Dataset:
    """Load a dataset by name: ``digits`` (bundled), or ``mnist`` / ``fashion-mnist`` / ``cifar10``
    from the local folder ``path``."""
    if name == "digits":
        return load_digits(seed=seed, scale=scale)
    if name not in NAMES:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list(NAMES)}.")
    if path is None:
        raise ValueError(
            f"The {name} dataset is read from local files: pass the folder that holds them "
            "(--data-dir PATH). Nothing is downloaded."
        )
    if name == "cifar10":
        return load_cifar10(path, flatten=flatten, scale=scale)
    return load_idx_folder(path, name=name, flatten=flatten, scale=scale)


def add_dataset_arguments(parser) -> None:
    """``--dataset`` and ``--data-dir`` for the studies that train classifiers."""
    parser.add_argument(
        "--dataset",
        choices=NAMES,
        default="digits",
        help="digits is bundled with scikit-learn; the others are read from --data-dir",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the MNIST/Fashion-MNIST IDX files or CIFAR-10 python batches",
    )
