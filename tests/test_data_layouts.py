"""Every dataset layout the README lists loads; subsets are class-balanced even from a class-sorted source."""
import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lsr_utils.base.errors import DataMissingError, LsrError
from lsr_utils.data import DATASETS, balanced_order, bind_data, load_data, load_split

README = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"  # the documentation's dataset page
CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _png(rng, size=32, channels=3) -> bytes:
    import io

    from PIL import Image

    arr = rng.integers(0, 255, (size, size, channels) if channels == 3 else (size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _class_folders(base: Path, classes, per_class: int, rng, as_zip: bool, split: str):
    """<base>/<split>/<class>/<i>.png in class order (a class-sorted source), or the same inside <split>.zip."""
    if as_zip:
        with zipfile.ZipFile(base / f"{split}.zip", "w") as z:
            for c in classes:
                for i in range(per_class):
                    z.writestr(f"{split}/{c}/{i:04d}.png", _png(rng))
        return
    for c in classes:
        (base / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (base / split / c / f"{i:04d}.png").write_bytes(_png(rng))


def _idx(path: Path, arr: np.ndarray, gz: bool):
    raw = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.with_name(path.name + ".gz") if gz else path).write_bytes(gzip.compress(raw) if gz else raw)


def _mnist(folder: Path, rng, gz: bool, n_train=30, n_test=10):
    for _split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        _idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8), gz)
        _idx(folder / f"{prefix}-labels-idx1-ubyte", np.sort(rng.integers(0, 10, n)).astype(np.uint8), gz)


@pytest.mark.parametrize("layout", [
    "{root}/mnist/", "{root}/MNIST/raw/", "{root}/"])
def test_mnist_layouts(tmp_path, layout):
    _mnist(Path(layout.format(root=tmp_path)), np.random.default_rng(0), gz=layout.endswith("raw/"))
    d = load_data("mnist", root=tmp_path)
    assert d.train_x.shape == (30, 1, 28, 28) and d.test_x.shape == (10, 1, 28, 28)


@pytest.mark.parametrize("layout", ["{root}/mnist/", "{root}/MNIST/raw/", "{root}/"])
def test_mnist_test_alone_is_split_8000_to_train_2000_held_out(tmp_path, layout):
    """mnist-test: the official test set alone, split into a seeded, class-balanced 8,000 / 2,000 (no overlap)."""
    folder = Path(layout.format(root=tmp_path))
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (10_000, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(10_000) // 256, np.arange(10_000) % 256  # each image named
    _idx(folder / "t10k-images-idx3-ubyte", images, gz=True)
    _idx(folder / "t10k-labels-idx1-ubyte", np.sort(rng.integers(0, 10, 10_000)).astype(np.uint8), gz=True)
    d = load_data("mnist-test", root=tmp_path)
    assert d.train_x.shape == (8000, 1, 28, 28) and d.test_x.shape == (2000, 1, 28, 28)
    ids = lambda x: set((x[:, 0, 0, 0].long() * 256 + x[:, 0, 0, 1].long()).tolist())
    assert not ids(d.train_x) & ids(d.test_x)  # held out means held out
    counts = np.bincount(d.test_y.numpy(), minlength=10)
    assert counts.max() - counts.min() <= 1  # the held-out images balanced
    train = np.bincount(d.train_y.numpy(), minlength=10)  # the training images balanced over what is left
    left = np.bincount(load_split("mnist", "test", root=tmp_path)[1].numpy(), minlength=10) - counts
    assert all(t == min(left_c, 800) or t >= 800 for t, left_c in zip(train, left)), (train, left)
    again = load_data("mnist-test", root=tmp_path)
    assert torch.equal(again.train_x, d.train_x)  # fixed: seeded


@pytest.mark.parametrize("layout", ["{root}/fashion-mnist/", "{root}/FashionMNIST/raw/", "debian"])
def test_fashion_mnist_layouts(tmp_path, layout, monkeypatch):
    if layout == "debian":  # where `apt-get install dataset-fashion-mnist` puts the files, here in a test folder
        import lsr_utils.data.idx as idx

        assert str(idx.DEBIAN_FASHION) == "/usr/share/datasets/fashion-mnist"
        monkeypatch.setattr(idx, "DEBIAN_FASHION", tmp_path / "usr-share-datasets-fashion-mnist")
        layout = str(idx.DEBIAN_FASHION)
    _mnist(Path(layout.format(root=tmp_path)), np.random.default_rng(1), gz=True)
    assert load_data("fashion-mnist", root=tmp_path).classes[0] == "t-shirt"


@pytest.mark.parametrize("layout", ["{root}/cifar10-jpeg/train.zip + test.zip", "{root}/train.zip + test.zip",
                                    "{root}/cifar10-jpeg/train/ + test/", "{root}/train/ + test/"])
def test_cifar10_image_layouts(tmp_path, layout):
    base = tmp_path / "cifar10-jpeg" if "cifar10-jpeg" in layout else tmp_path
    base.mkdir(exist_ok=True)
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        _class_folders(base, CIFAR, 3, rng, as_zip=".zip" in layout, split=split)
    d = load_data("cifar10", root=tmp_path)
    assert d.train_x.shape == (30, 3, 32, 32) and d.classes == CIFAR


def test_cifar10_pickled_batches_layout(tmp_path):
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    d = load_data("cifar10", root=tmp_path)
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)


def test_cifar10_pickle_with_code_is_refused(tmp_path):
    import os
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(LsrError, match="not a readable CIFAR-10 batch"):
        load_data("cifar10", root=tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_celeba_layout(tmp_path):
    from PIL import Image

    base = tmp_path / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(4)
    lines = []
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(base / "img_align_celeba" /
                                                                                  f"{i:06d}.jpg")
        lines.append(f"{i:06d}.jpg {0 if i < 3 else 2}")
    (base / "list_eval_partition.txt").write_text("\n".join(lines))
    d = load_data("celeba", root=tmp_path)
    assert d.train_x.shape == (3, 3, 64, 64) and d.test_x.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("layout", ["{root}/imagenet64/", "{root}/Imagenet64_train_npz/ + {root}/Imagenet64_val_npz/",
                                    "{root}/"])
def test_imagenet64_layouts(tmp_path, layout):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 255, (4, 64 * 64 * 3), dtype=np.uint8)
    parts = [Path(p.strip().format(root=tmp_path)) for p in layout.split("+")]
    train_dir, val_dir = parts[0], parts[-1]
    for d in (train_dir, val_dir):
        d.mkdir(parents=True, exist_ok=True)
    np.savez(train_dir / "train_data_batch_1.npz", data=x, labels=np.array([1, 2, 3, 4]))
    np.savez(val_dir / "val_data.npz", data=x, labels=np.array([1, 2, 3, 4]))
    assert load_data("imagenet64", root=tmp_path).train_x.shape == (4, 3, 64, 64)


@pytest.mark.parametrize("layout", ["{root}/train/ + {root}/test/", "{root}/train.zip + test.zip",
                                    "{root}/train/ alone (10% held out as test)"])
def test_imagefolder_layouts(tmp_path, layout):
    rng = np.random.default_rng(6)
    _class_folders(tmp_path, ("a", "b"), 10, rng, as_zip=".zip" in layout, split="train")
    if "alone" not in layout:
        _class_folders(tmp_path, ("a", "b"), 2, rng, as_zip=".zip" in layout, split="test")
    d = load_data("imagefolder", root=tmp_path)
    assert len(d.train_x) + len(d.test_x) == (20 if "alone" in layout else 24)


def test_every_layout_in_the_code_is_in_the_readme_and_tested():
    readme = README.read_text()
    tested = {"mnist": 3, "mnist-test": 3, "fashion-mnist": 3, "cifar10": 5, "celeba": 1, "imagenet64": 3,
              "imagefolder": 3}
    for name, info in DATASETS.items():
        assert f"`{name}`" in readme, name
        for layout in info.layouts:
            assert f"`{layout}`" in readme, f"{name}: README does not list {layout}"
        if name != "shapes":
            assert len(info.layouts) == tested[name], f"{name}: a layout is not tested here"


def test_missing_data_names_places_that_work(tmp_path):
    with pytest.raises(DataMissingError) as e:
        load_data("fashion-mnist", root=tmp_path)
    msg = str(e.value)
    assert "/usr/share/datasets/fashion-mnist/" in msg and "dataset-fashion-mnist" in msg
    assert not (tmp_path / "fashion-mnist").exists()  # a failed download leaves no empty folder


# --------------------------------------------------------------------------- balanced subsets
def test_subsets_of_a_class_sorted_source_are_balanced(tmp_path):
    rng = np.random.default_rng(7)
    for split in ("train", "test"):
        _class_folders(tmp_path, CIFAR, 12 if split == "train" else 6, rng, as_zip=True, split=split)
    for n in (10, 20, 37, 100):
        d = load_data("cifar10", root=tmp_path, n_train=n, n_test=min(n, 40))
        counts = torch.bincount(d.train_y, minlength=10)
        assert counts.max() - counts.min() <= 1, (n, counts.tolist())  # "first N" would be one or two classes
        tc = torch.bincount(d.test_y, minlength=10)
        assert tc.max() - tc.min() <= 1
    small = load_data("cifar10", root=tmp_path, n_train=20)
    large = load_data("cifar10", root=tmp_path, n_train=50)
    assert torch.equal(small.train_x, large.train_x[:20])  # nested: the same selection for every run
    other = load_data("cifar10", root=tmp_path, n_train=20, seed=1)
    assert not torch.equal(other.train_x, small.train_x)  # the seed chooses (and is part of the identity)
    assert other.fingerprint != small.fingerprint


def test_balanced_order_handles_unequal_classes():
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 1)
    order = balanced_order(labels, seed=0)
    assert sorted(order.tolist()) == list(range(14))
    first = labels[order[:3]].tolist()
    assert sorted(first) == [0, 1, 2]
    assert sorted(labels[order[:7]].tolist()).count(2) == 1


def test_bind_records_the_images_used(tmp_path):
    from lsr_utils.method.config import make_config

    d = load_data("shapes", n_train=80, n_test=8)
    cfg, data = bind_data(make_config("smoke").vae, d)  # 256 asked for, 80 given
    assert cfg.n_train == 80 and len(data.train_x) == 80 and cfg.data_id.endswith("|n=80")
    with pytest.raises(LsrError, match="trained on other images"):
        bind_data(cfg, load_data("shapes", n_train=80, n_test=8, seed=3))
