import numpy as np
import pytest
import torch

from lsr_utils.base.errors import DataMissingError, LsrError
from lsr_utils.data import DeviceBatches, load_data, load_split
from lsr_utils.data.idx import read_idx
from lsr_utils.data.shapes import SHAPE_CLASSES, generate_shapes
from lsr_utils.training.loop import RunOptions


def test_shapes_deterministic_and_prefix_stable():
    a, fa, _ = generate_shapes(50, seed=3)
    b, fb, _ = generate_shapes(1500, seed=3)
    assert a.dtype == np.uint8 and a.shape == (50, 3, 32, 32)
    assert np.array_equal(a, b[:50]) and np.array_equal(fa["shape"], fb["shape"][:50])
    c, _, _ = generate_shapes(50, seed=4)
    assert not np.array_equal(a, c)
    test, _, _ = generate_shapes(50, seed=3, split="test")
    assert not np.array_equal(a, test)


def test_shapes_factors_are_labels_and_texture_is_per_image():
    x, f, clean = generate_shapes(400, seed=0)
    assert set(np.unique(f["shape"])) == set(range(len(SHAPE_CLASSES)))
    for k in ("hue", "bg_hue", "x", "y", "scale", "rotation"):
        assert len(f[k]) == 400
    diff = x.astype(float) - clean.astype(float)
    # texture is present and incompressible-looking: high pixel-level variance, no shared pattern
    assert diff.std() > 10
    corr = np.corrcoef(diff[0].ravel(), diff[1].ravel())[0, 1]
    assert abs(corr) < 0.1


def test_load_shapes(tiny_shapes):
    d = tiny_shapes
    assert d.train_x.shape == (96, 3, 32, 32) and d.test_x.shape == (64, 3, 32, 32)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert d.classes == SHAPE_CLASSES


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(LsrError, match="valid datasets: shapes, mnist"):
        load_data("cifar100")


def test_missing_offline_dataset_says_what_and_where(tmp_path):
    with pytest.raises(DataMissingError) as e:
        load_data("cifar10", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "cifar-10-batches-py" in msg and "--data-root" in msg
    with pytest.raises(DataMissingError, match="train-images-idx3-ubyte"):
        load_data("mnist", root=tmp_path)
    with pytest.raises(DataMissingError, match="val_data.npz"):
        load_data("imagenet64", root=tmp_path)


def test_imagefolder_loader(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("cats", "dogs"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    d = load_data("imagefolder", root=tmp_path)
    assert d.train_x.shape == (12, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)
    assert d.classes == ("cats", "dogs") and d.train_y.tolist().count(1) == 6


def test_imagenet64_npz_layout(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (5, 64 * 64 * 3), dtype=np.uint8)
    for name in ("train_data_batch_1.npz", "val_data.npz"):
        np.savez(tmp_path / name, data=x, labels=np.arange(1, 6))
    d = load_data("imagenet64", root=tmp_path)
    order = torch.argsort(d.train_y)  # the kit holds a split in balanced order; labels say which file row is which
    assert d.train_x.shape == (5, 3, 64, 64) and d.train_y[order].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(d.train_x[order[0], 0].flatten(), torch.from_numpy(x[0, :4096]))  # channel planes in order


def test_device_batches_cover_the_epoch():
    imgs = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    b = DeviceBatches(imgs, 4, "cpu")
    assert len(b) == 3  # 4 + 4 + 2
    perm = b.permutation(torch.Generator().manual_seed(0))
    got = torch.cat([b.batch(perm, i) for i in range(len(b))])
    assert got.min() >= -1 and got.max() <= 1
    assert sorted(((got[:, 0, 0, 0] + 1) * 127.5).round().long().tolist()) == list(range(10))
    assert len(DeviceBatches(imgs[:9], 4, "cpu")) == 2  # a last batch of 1 is dropped (BatchNorm)


@pytest.mark.shared_data
def test_real_cifar10_jpeg_zips(shared_data):
    d = load_data("cifar10", root=shared_data)
    assert d.train_x.shape == (50000, 3, 32, 32) and d.test_x.shape == (10000, 3, 32, 32)
    assert torch.equal(torch.bincount(d.test_y), torch.full((10,), 1000))
    assert d.classes[0] == "airplane"
    again = load_data("cifar10", root=shared_data, n_train=100)  # from the cache
    assert torch.equal(again.train_x, d.train_x[:100])
    # the zips are sorted by class: the kit's subsets are balanced all the same
    sub = load_data("cifar10", root=shared_data, n_train=10000, n_test=500)
    assert torch.equal(torch.bincount(sub.train_y), torch.full((10,), 1000))
    assert torch.equal(torch.bincount(sub.test_y), torch.full((10,), 50))


@pytest.mark.shared_data
def test_real_mnist_test_split(shared_data):
    x, y = load_split("mnist", "test", root=shared_data)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.uint8
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    raw = read_idx(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert raw.shape == (10000,)
    with pytest.raises(DataMissingError, match="no train split"):
        load_data("mnist", root=shared_data)  # only the test set is shared


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_digit_classifier_of_mnist_test_reads_the_held_out_digits(shared_data, tmp_path):
    """The classifier `lsr demo --dataset mnist-test` measures with, trained on the 8,000 training digits, reads
    the 2,000 held-out ones (the demo's check needs >= 97 %; with the general recipe it diverged to 16.5 %)."""
    from lsr_utils.base.pixels import uint8_to_unit
    from lsr_utils.measurement.classifier import classifier_config, train_classifier

    d = load_data("mnist-test", root=shared_data)
    run = train_classifier(classifier_config("mnist-test", "quick"), d, out=tmp_path, options=RunOptions(progress=False))
    assert not run.config.augment
    acc = (run.predict(uint8_to_unit(d.test_x)) == d.test_y).float().mean().item()
    assert acc >= 0.97, acc
