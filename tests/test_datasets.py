"""The dataset loaders of the studies, on tiny files written by the tests themselves."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from experiments import datasets


def _write_idx(path, array, *, compress=False):
    array = np.asarray(array)
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _mnist_folder(tmp_path, *, compress):
    rng = np.random.default_rng(0)
    arrays = {
        "train": (rng.integers(0, 256, (5, 4, 3), dtype=np.uint8), np.arange(5, dtype=np.uint8)),
        "t10k": (rng.integers(0, 256, (2, 4, 3), dtype=np.uint8), np.array([7, 9], np.uint8)),
    }
    for prefix, (images, labels) in arrays.items():
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images, compress=compress)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels, compress=compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(tmp_path, compress):
    arrays = _mnist_folder(tmp_path, compress=compress)
    data = datasets.load("mnist", tmp_path)
    assert data.x_train.shape == (5, 12) and data.x_train.dtype == np.float32
    np.testing.assert_allclose(data.x_train, arrays["train"][0].reshape(5, 12) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train, np.arange(5))
    np.testing.assert_array_equal(data.y_test, [7, 9])
    assert data.y_test.dtype == np.int32 and data.image_shape == (4, 3)

    raw = datasets.load("fashion-mnist", tmp_path, flatten=False, scale="raw")
    np.testing.assert_array_equal(raw.x_test, arrays["t10k"][0].astype(np.float32))
    assert raw.name == "fashion-mnist"


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2], [300000, 4]], dtype=">i4")
    _write_idx(tmp_path / "x-idx2-int", values)
    out = datasets.read_idx(tmp_path / "x-idx2-int")
    np.testing.assert_array_equal(out, [[1, -2], [300000, 4]])


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "bad")
    truncated = bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3
    (tmp_path / "short").write_bytes(truncated)
    with pytest.raises(ValueError, match="bytes follow"):
        datasets.read_idx(tmp_path / "short")


def test_missing_files_say_nothing_is_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        datasets.load("mnist", tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        datasets.load("cifar10", tmp_path)
    with pytest.raises(ValueError, match="--data-dir"):
        datasets.load("cifar10")


def test_cifar10_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name, n in (("data_batch_1", 3), ("data_batch_2", 2), ("test_batch", 2)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n))
        batches[name] = (data, labels)
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)

    data = datasets.load("cifar10", tmp_path, flatten=False, scale="raw")
    assert data.x_train.shape == (5, 32, 32, 3) and data.x_test.shape == (2, 32, 32, 3)
    first = batches["data_batch_1"][0][0]
    # Channel-major rows: red plane, then green, then blue; pixel (0, 1) of each.
    np.testing.assert_array_equal(
        data.x_train[0, 0, 1], [first[1], first[1024 + 1], first[2048 + 1]]
    )
    np.testing.assert_array_equal(
        data.y_train, batches["data_batch_1"][1] + batches["data_batch_2"][1]
    )
    flat = datasets.load("cifar10", folder)
    assert flat.x_train.shape == (5, 3072)
    np.testing.assert_allclose(flat.x_test, data.x_test.reshape(2, -1) / 255.0, rtol=1e-6)
    planes = batches["test_batch"][0][1].reshape(3, 32, 32) / 255.0
    np.testing.assert_allclose(flat.x_test[1], planes.transpose(1, 2, 0).ravel(), rtol=1e-6)


def test_digits_split_and_scale():
    unit = datasets.load_digits(seed=3)
    raw = datasets.load_digits(seed=3, scale="raw")
    assert unit.x_train.shape[1] == 64 and len(unit.x_train) + len(unit.x_test) == 1797
    assert float(raw.x_train.max()) == 16.0 and float(unit.x_train.max()) == 1.0
    np.testing.assert_allclose(raw.x_train / 16.0, unit.x_train)
    assert set(np.unique(unit.y_train)) == set(range(10))
