"""Datasets, encoding and partitions: counts checked by hand on tiny label vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_iris

from qflhw.errors import ConfigError
from qflhw.training.data import dirichlet, federate, iid, label_shards, load_dataset, prepare, split


def _assert_partition(parts: list[np.ndarray], n: int) -> None:
    """Every sample in exactly one client, and no client empty."""
    assert all(len(p) > 0 for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))


# --- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "shape"), [("iris", (150, 4)), ("wine", (178, 13)), ("breast_cancer", (569, 30))])
def test_builtin_datasets_load_as_float_and_int(name, shape):
    X, y = load_dataset(name)
    assert X.shape == shape and X.dtype == np.float64
    assert y.shape == (shape[0],) and y.dtype.kind == "i"


def test_classes_keep_and_renumber_in_given_order():
    X_ref, y_ref = load_iris(return_X_y=True)
    X, y = load_dataset("iris", classes=[2, 0])
    assert np.bincount(y).tolist() == [50, 50]
    np.testing.assert_array_equal(X[y == 0], X_ref[y_ref == 2])
    np.testing.assert_array_equal(X[y == 1], X_ref[y_ref == 0])


def test_digits_two_classes():
    X, y = load_dataset("digits", classes=[3, 8])
    assert X.shape[1] == 64 and set(y.tolist()) == {0, 1}


@pytest.mark.parametrize("header", ["f1,f2,label\n", ""])
def test_csv_with_or_without_header(tmp_path, header):
    path = tmp_path / "d.csv"
    path.write_text(header + "0.5,1.0,1\n2.0,-3.0,0\n4.0,5.0,1\n")
    X, y = load_dataset(path)
    np.testing.assert_array_equal(X, [[0.5, 1.0], [2.0, -3.0], [4.0, 5.0]])
    assert y.tolist() == [1, 0, 1] and y.dtype.kind == "i"


def test_class_names_are_numbered_in_sorted_or_given_order(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("length,width,species\n1.0,2.0,setosa\n3.0,4.0,virginica\n5.0,6.0,setosa\n7.0,8.0,versicolor\n")
    X, y = load_dataset(path)
    assert y.tolist() == [0, 2, 0, 1] and X.shape == (4, 2)  # setosa, versicolor, virginica
    X, y = load_dataset(path, classes=["virginica", "setosa"])
    np.testing.assert_array_equal(X, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert y.tolist() == [1, 0, 1]
    with pytest.raises(ConfigError, match=r"classes \['daisy'\] not in the labels"):
        load_dataset(path, classes=["daisy"])
    npz = tmp_path / "named.npz"
    np.savez(npz, X=np.zeros((3, 2)), y=np.array(["b", "a", "b"]))
    assert load_dataset(npz)[1].tolist() == [1, 0, 1]


def test_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(6).reshape(3, 2), y=np.array([2, 1, 2]))
    X, y = load_dataset(str(path), classes=[2])
    np.testing.assert_array_equal(X, [[0.0, 1.0], [4.0, 5.0]])
    assert y.tolist() == [0, 0]


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.csv: no such dataset file; give one of digits"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="mnist"):
        load_dataset("mnist")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1\n2\n", ">= 2 columns"),
        ("1,2,0\n3,0\n", "equal length"),
        ("a,b,c\n1,x,0\n", "must be a number"),
        ("1,2,0.5\n", "labels must be integers"),
        ("1,nan,0\n", "NaN or infinite"),
    ],
)
def test_bad_csv_names_the_path(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_dataset(path)
    assert str(path) in str(info.value)


def test_bad_npz(tmp_path):
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, X=np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="expected arrays 'X' and 'y', found X"):
        load_dataset(no_y)
    mismatched = tmp_path / "mismatch.npz"
    np.savez(mismatched, X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(ConfigError, match=r"expected X of shape \(n, d\)"):
        load_dataset(mismatched)
    other = tmp_path / "d.txt"
    other.write_text("1,2,0\n")
    with pytest.raises(ConfigError, match="use .csv or .npz"):
        load_dataset(other)


def test_classes_not_present():
    with pytest.raises(ConfigError, match=r"classes \[7\] not in the labels \[0, 1, 2\]"):
        load_dataset("iris", classes=[0, 7])
    with pytest.raises(ConfigError, match="without repeats"):
        load_dataset("iris", classes=[0, 0])


# --- partitions ----------------------------------------------------------------------------------

Y6 = np.array([0, 0, 1, 1, 1, 2])


def test_iid_sizes_and_determinism():
    parts = iid(Y6, 4, 0)
    _assert_partition(parts, 6)
    assert sorted(len(p) for p in parts) == [1, 1, 2, 2]
    assert [p.tolist() for p in parts] == [p.tolist() for p in iid(Y6, 4, np.random.default_rng(0))]


def test_label_shards_one_label_per_client_is_exactly_that_class():
    parts = label_shards(Y6, 3, rng=0)
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3, 4], [5]]


def test_label_shards_two_labels_per_client_counts_by_hand():
    # 3 clients x 2 labels over labels {0,1,2}: client 0 -> {0,1}, client 1 -> {2,0}, client 2 -> {1,2};
    # each label is held by two clients, each taking one of its two samples.
    y = np.array([0, 0, 1, 1, 2, 2])
    parts = label_shards(y, 3, 2, rng=1)
    _assert_partition(parts, 6)
    counts = [np.bincount(y[p], minlength=3).tolist() for p in parts]
    assert counts == [[1, 1, 0], [1, 0, 1], [0, 1, 1]]


def test_label_shards_errors():
    with pytest.raises(ConfigError, match="cannot cover all 3 labels"):
        label_shards(Y6, 2, rng=0)
    with pytest.raises(ConfigError, match="labels_per_client=4: must be 1..3"):
        label_shards(Y6, 3, 4, rng=0)
    with pytest.raises(ConfigError, match="label 2 has 1 samples for 2 clients"):
        label_shards(Y6, 6, rng=0)


def test_dirichlet_is_deterministic_and_covers_every_client():
    y = np.repeat(np.arange(3), 10)
    for alpha in (0.01, 0.5, 100.0):
        parts = dirichlet(y, 10, alpha, 7)
        _assert_partition(parts, 30)
        assert [p.tolist() for p in parts] == [p.tolist() for p in dirichlet(y, 10, alpha, 7)]
    assert [p.tolist() for p in dirichlet(y, 10, 0.5, 7)] != [p.tolist() for p in dirichlet(y, 10, 0.5, 8)]


def test_dirichlet_alpha_controls_skew():
    y = np.repeat(np.arange(2), 1000)
    even = dirichlet(y, 4, 1000.0, 0)
    assert all(abs(np.mean(y[p]) - 0.5) < 0.1 for p in even)
    # with tiny alpha each class lands (almost) whole on one client; the rest only get donated samples
    skewed = np.array([np.bincount(y[p], minlength=2) for p in dirichlet(y, 4, 0.01, 0)])
    assert (skewed.max(axis=0) >= 990).all()


@pytest.mark.parametrize("alpha", [0.0, -1.0, math.inf])
def test_dirichlet_rejects_bad_alpha(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        dirichlet(Y6, 2, alpha, 0)


def test_too_many_clients():
    with pytest.raises(ConfigError, match="n_clients=7: must be 1..6"):
        iid(Y6, 7, 0)


def test_split_sizes():
    train, test = split(np.arange(10, 20), 0.3, 0)
    assert len(train) == 7 and len(test) == 3
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(10, 20))
    train, test = split(np.array([5]), 0.5, 0)
    assert train.tolist() == [5] and test.tolist() == []
    with pytest.raises(ConfigError, match="test_fraction=1"):
        split(np.arange(3), 1, 0)


# --- encoding and federation ---------------------------------------------------------------------


def test_prepare_maps_training_rows_onto_zero_to_pi_and_ignores_other_rows():
    X, _ = load_dataset("wine")
    train = np.arange(0, 178, 2)
    Z = prepare(X, 3, train_idx=train).transform(X)
    assert Z.shape == (178, 3)
    np.testing.assert_allclose(Z[train].min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z[train].max(axis=0), math.pi)
    assert Z.min() >= 0.0 and Z.max() <= math.pi
    X_other = X.copy()
    X_other[1::2] *= 100.0  # rows outside train_idx must not move the fit
    Z_other = prepare(X_other, 3, train_idx=train).transform(X)
    np.testing.assert_allclose(Z_other, Z)


def test_prepare_rejects_too_many_features():
    with pytest.raises(ConfigError, match=r"num_features=5: PCA needs 1..4"):
        prepare(np.zeros((10, 4)), 5, train_idx=np.arange(10))


def test_federate_iris_label_shards():
    X, y = load_dataset("iris")
    fd = federate(X, y, n_clients=3, partition="label-shards", num_features=2, seed=3)
    assert np.bincount(fd.global_test.y).tolist() == [10, 10, 10]  # stratified 20% of 50/50/50
    assert fd.global_test.X.shape == (30, 2)
    assert [set(c.y_train.tolist()) for c in fd.clients] == [{0}, {1}, {2}]
    assert [len(c.y_train) + len(c.y_test) for c in fd.clients] == [40, 40, 40]
    assert [len(c.y_test) for c in fd.clients] == [8, 8, 8]
    # the encoding was fitted on exactly the union of client training rows
    train = np.concatenate([c.X_train for c in fd.clients])
    np.testing.assert_allclose(train.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(train.max(axis=0), math.pi)


def test_federate_is_deterministic_per_seed():
    X, y = load_dataset("wine")
    a, b, c = (federate(X, y, n_clients=4, partition="dirichlet", alpha=0.3, num_features=4, seed=s) for s in (1, 1, 2))
    for ca, cb in zip(a.clients, b.clients):
        np.testing.assert_array_equal(ca.X_train, cb.X_train)
        np.testing.assert_array_equal(ca.y_test, cb.y_test)
    assert [len(x.y_train) for x in a.clients] != [len(x.y_train) for x in c.clients]


def test_federate_rejects_unknown_partition():
    X, y = load_dataset("iris")
    with pytest.raises(ConfigError, match="partition='shards': choose one of iid, dirichlet, label-shards"):
        federate(X, y, n_clients=3, partition="shards", num_features=2)


@pytest.mark.parametrize("partition", ["iid", "dirichlet", "label-shards"])
def test_client_test_rows_are_disjoint_from_every_training_row(partition):
    X, y = load_dataset("digits", classes=[0, 1, 2])
    data = federate(X, y, n_clients=3, partition=partition, num_features=4, labels_per_client=1, seed=2)
    train = np.concatenate([c.train_index for c in data.clients])
    test = np.concatenate([c.test_index for c in data.clients])
    assert len(set(train.tolist())) == len(train) and len(set(test.tolist())) == len(test)  # no row twice
    assert not set(train.tolist()) & set(test.tolist())
    assert not (set(train.tolist()) | set(test.tolist())) & set(data.global_test.index.tolist())
    assert len(train) + len(test) + len(data.global_test.index) == len(y)
    for c in data.clients:  # the row numbers are the rows: labels and encoded features match
        np.testing.assert_array_equal(c.y_test, y[c.test_index])
        np.testing.assert_array_equal(c.X_test, data.transform.transform(X[c.test_index]))
        assert len(c.test_index) == int(0.2 * (len(c.train_index) + len(c.test_index)) + 0.5)
