"""Datasets, angle-encoding preprocessing and client partitions for QFL experiments.

A study loads one dataset, holds out a stratified global test set, partitions the rest over
clients (IID, Dirichlet or label shards), splits each client into train and test, and encodes
features as rotation angles fitted on the clients' training rows only, so no test row leaks into
the preprocessing. A one-vs-rest relabelling (an anomaly class against the rest) is applied after
partitioning, so clients can differ in which classes make up their "normal" rows. Every random
choice comes from one seed, so a partition can be rebuilt exactly.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qflhw.config.spec import BUILTIN_DATASETS, PARTITIONS, Partition
from qflhw.errors import ConfigError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

Seed = int | np.random.Generator


def load_dataset(name_or_path: str | Path, *, classes: Sequence[int | str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features (float64, one row per sample) and integer labels of a shipped dataset or a file.

    Names are scikit-learn's bundled datasets; a path is a CSV (last column the label, header
    optional) or an NPZ with arrays ``X`` and ``y``. ``classes`` keeps only those labels and
    renumbers them 0..k-1 in the order given, e.g. ``classes=[3, 8]`` makes 3 -> 0 and 8 -> 1.
    Labels may be class names (``"setosa"``): they are numbered in sorted order, or in the order
    ``classes`` lists them.
    """
    if str(name_or_path) in BUILTIN_DATASETS:
        X, y = _load_builtin(str(name_or_path))
        where = f"dataset {name_or_path!r}"
    else:
        path = Path(name_or_path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(
                f"{path}: no such dataset file; give one of {', '.join(BUILTIN_DATASETS)} or a .csv/.npz path"
            )
        if path.suffix.lower() == ".csv":
            X, y = _load_csv(path)
        elif path.suffix.lower() == ".npz":
            X, y = _load_npz(path)
        else:
            raise ConfigError(f"{path}: unsupported dataset format {path.suffix!r}; use .csv or .npz")
    if np.asarray(y).dtype.kind in "USO":  # class names
        keep, y = _name_labels(np.asarray(y), classes, where)
        if len(keep) == len(np.asarray(X)):
            X = np.asarray(X)[keep]
        classes = None
    elif classes is not None and any(isinstance(c, str) for c in classes):
        raise ConfigError(f"{where}: data.classes {list(classes)} are names but the labels are numbers; list label numbers")
    X, y = _check_arrays(X, y, where)
    return (X, y) if classes is None else _keep_classes(X, y, [int(c) for c in classes], where)


def _name_labels(y: np.ndarray, classes: Sequence[int | str] | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows to keep (all, or those of ``classes``) and labels 0..k-1 for class names."""
    names = np.array([str(v).strip() for v in y.tolist()])
    present = sorted(set(names.tolist()))
    if classes is None:
        order = present
    else:
        order = [str(c) for c in classes]
        if len(set(order)) != len(order) or not order:
            raise ConfigError(f"{where}: classes {order} must be a non-empty list without repeats")
        missing = [c for c in order if c not in present]
        if missing:
            raise ConfigError(f"{where}: classes {missing} not in the labels {present}; pick from those")
    index = {c: k for k, c in enumerate(order)}
    keep = np.array([c in index for c in names.tolist()], dtype=bool)
    return keep, np.array([index[c] for c in names[keep].tolist()], dtype=np.int64)


def _load_builtin(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X, y


def _load_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as fh:
        rows = [row for row in csv.reader(fh) if row]
    if rows and not _is_numeric(rows[0][:-1] if len(rows[0]) > 1 else rows[0]):
        rows = rows[1:]  # a header line (the label column alone may hold class names)
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        raise ConfigError(f"{path}: expected rows of equal length with >= 2 columns (features, then label)")
    try:
        features = np.array([r[:-1] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise ConfigError(f"{path}: every feature after the header must be a number ({err})") from err
    labels = [r[-1].strip() for r in rows]
    if _is_numeric(labels):
        return features, np.array(labels, dtype=np.float64)
    return features, np.array(labels)  # class names


def _is_numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    fix = "save it with np.savez(path, X=X, y=y)"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("X", "y") if key in npz.files}
            found = ", ".join(npz.files) or "none"
    except (OSError, ValueError, TypeError) as err:  # TypeError: a bare .npy array, not an archive
        raise ConfigError(f"{path}: not a readable .npz archive of plain arrays ({err}); {fix}") from err
    if len(arrays) != 2:
        raise ConfigError(f"{path}: expected arrays 'X' and 'y', found {found}; {fix}")
    return arrays["X"], arrays["y"]


def _check_arrays(X: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Shape, finiteness and integer labels, so later code can trust both arrays."""
    try:
        X = np.asarray(X, dtype=np.float64)
        y_raw = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: X and y must be numeric arrays ({err})") from err
    if X.ndim != 2 or y_raw.ndim != 1 or X.shape[0] != y_raw.shape[0] or X.shape[0] == 0:
        raise ConfigError(
            f"{where}: expected X of shape (n, d) and y of shape (n,) with n >= 1, got {X.shape} and {y_raw.shape}"
        )
    if not np.isfinite(X).all():
        raise ConfigError(f"{where}: X has NaN or infinite values; drop or impute those rows")
    if not (np.isfinite(y_raw).all() and (y_raw == np.round(y_raw)).all()):
        raise ConfigError(f"{where}: labels must be integers; encode class names as 0..k-1")
    return X, y_raw.astype(np.int64)


def _keep_classes(X: np.ndarray, y: np.ndarray, classes: list[int], where: str) -> tuple[np.ndarray, np.ndarray]:
    present = sorted(set(y.tolist()))
    if len(set(classes)) != len(classes) or not classes:
        raise ConfigError(f"{where}: classes {classes} must be a non-empty list without repeats")
    missing = [c for c in classes if c not in present]
    if missing:
        raise ConfigError(f"{where}: classes {missing} not in the labels {present}; pick from those")
    keep = np.isin(y, classes)
    relabel = {c: k for k, c in enumerate(classes)}
    return X[keep], np.array([relabel[c] for c in y[keep].tolist()], dtype=np.int64)


def prepare(X: np.ndarray, num_features: int, *, train_idx: np.ndarray) -> Pipeline:
    """Fit standardize -> PCA(num_features) -> scale to [0, pi] on the rows ``train_idx``.

    The result's ``.transform(X)`` gives one rotation angle per qubit. Angles of rows outside the
    training range are clipped to [0, pi], where angle encoding is one-to-one.
    """
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X = np.asarray(X, dtype=np.float64)
    train_idx = np.asarray(train_idx, dtype=np.int64)
    limit = min(len(train_idx), X.shape[1])
    if not 1 <= num_features <= limit:
        raise ConfigError(
            f"num_features={num_features}: PCA needs 1..{limit} (min of training rows and input features)"
        )
    pipeline = make_pipeline(
        StandardScaler(),
        PCA(n_components=num_features, svd_solver="full"),
        MinMaxScaler(feature_range=(0.0, math.pi), clip=True),
    )
    return pipeline.fit(X[train_idx])


def iid(y: np.ndarray, n_clients: int, rng: Seed) -> list[np.ndarray]:
    """Shuffle all samples and deal them into ``n_clients`` parts whose sizes differ by at most one."""
    y = np.asarray(y)
    _check_clients(n_clients, len(y))
    order = np.random.default_rng(rng).permutation(len(y))
    return [np.sort(part) for part in np.array_split(order, n_clients)]


def dirichlet(y: np.ndarray, n_clients: int, alpha: float, rng: Seed) -> list[np.ndarray]:
    """Each class is shared over clients in proportions drawn from Dir(alpha); small alpha = skewed.

    A client left empty by the draw takes one sample from the largest client, so every client can
    train; this moves at most ``n_clients - 1`` samples.
    """
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ConfigError(f"alpha={alpha}: the Dirichlet concentration must be > 0 (e.g. 0.1 skewed, 100 near IID)")
    y = np.asarray(y)
    _check_clients(n_clients, len(y))
    gen = np.random.default_rng(rng)
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for label in np.unique(y):
        idx = gen.permutation(np.flatnonzero(y == label))
        shares = gen.dirichlet(np.full(n_clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.extend(chunk.tolist())
    for part in parts:
        if not part:
            donor = max(parts, key=len)
            part.append(donor.pop(int(gen.integers(len(donor)))))
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def label_shards(y: np.ndarray, n_clients: int, labels_per_client: int = 1, *, rng: Seed) -> list[np.ndarray]:
    """Client k holds only labels k*L .. k*L+L-1 (mod the number of labels), L = labels_per_client.

    A label held by several clients is split evenly among them at random. With one label per
    client and as many clients as labels, client k holds exactly label k's samples.
    """
    y = np.asarray(y)
    labels = np.unique(y)
    _check_clients(n_clients, len(y))
    if not 1 <= labels_per_client <= len(labels):
        raise ConfigError(f"labels_per_client={labels_per_client}: must be 1..{len(labels)} (the number of labels)")
    if n_clients * labels_per_client < len(labels):
        raise ConfigError(
            f"label_shards: {n_clients} clients x {labels_per_client} labels cannot cover all {len(labels)} labels; "
            "raise n_clients or labels_per_client, or keep fewer classes with load_dataset(classes=...)"
        )
    gen = np.random.default_rng(rng)
    holders: dict[int, list[int]] = {k: [] for k in range(len(labels))}
    for client in range(n_clients):
        for j in range(labels_per_client):
            holders[(client * labels_per_client + j) % len(labels)].append(client)
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for k, label in enumerate(labels):
        idx = gen.permutation(np.flatnonzero(y == label))
        if len(idx) < len(holders[k]):
            raise ConfigError(
                f"label_shards: label {label} has {len(idx)} samples for {len(holders[k])} clients; use fewer clients"
            )
        for client, chunk in zip(holders[k], np.array_split(idx, len(holders[k]))):
            parts[client].extend(chunk.tolist())
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def _check_clients(n_clients: int, n_samples: int) -> None:
    if not 1 <= n_clients <= n_samples:
        raise ConfigError(f"n_clients={n_clients}: must be 1..{n_samples} (one sample per client at least)")


def split(indices: np.ndarray, test_fraction: float, rng: Seed) -> tuple[np.ndarray, np.ndarray]:
    """One client's (train, test) indices; the test part is test_fraction * n rounded half up; train keeps >= 1."""
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"test_fraction={test_fraction}: must be in [0, 1)")
    indices = np.asarray(indices, dtype=np.int64)
    n_test = min(int(test_fraction * len(indices) + 0.5), max(len(indices) - 1, 0))
    order = np.random.default_rng(rng).permutation(indices)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


@dataclass(frozen=True, eq=False)
class Samples:
    """Encoded rows and their labels (and their row numbers in the dataset)."""

    X: np.ndarray
    y: np.ndarray
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class ClientData:
    """One client's encoded training and test rows, and their row numbers in the dataset."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class FederatedData:
    """Per-client data, the global test set held out before partitioning, and the fitted encoding."""

    clients: tuple[ClientData, ...]
    global_test: Samples
    transform: Pipeline


def federate(
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_clients: int,
    partition: Partition,
    num_features: int,
    alpha: float = 0.5,
    labels_per_client: int = 1,
    test_fraction: float = 0.2,
    global_test_fraction: float = 0.2,
    seed: int = 0,
) -> FederatedData:
    """Hold out a stratified global test set, partition the rest, split each client, encode all.

    ``alpha`` is used by ``partition="dirichlet"`` and ``labels_per_client`` by ``"label-shards"``.
    The encoding is fitted on the union of the clients' training rows only.
    """
    from sklearn.model_selection import train_test_split

    if partition not in PARTITIONS:
        raise ConfigError(f"partition={partition!r}: choose one of {', '.join(PARTITIONS)}")
    if not 0 < global_test_fraction < 1:
        raise ConfigError(f"global_test_fraction={global_test_fraction}: must be in (0, 1)")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    try:
        pool, held_out = train_test_split(
            np.arange(len(y)), test_size=global_test_fraction, stratify=y, random_state=seed
        )
    except ValueError as err:
        raise ConfigError(
            f"global_test_fraction={global_test_fraction}: cannot stratify the global test set ({err}); "
            "change the fraction or drop rare classes"
        ) from err
    gen = np.random.default_rng(seed)
    if partition == "iid":
        parts = iid(y[pool], n_clients, gen)
    elif partition == "dirichlet":
        parts = dirichlet(y[pool], n_clients, alpha, gen)
    else:
        parts = label_shards(y[pool], n_clients, labels_per_client, rng=gen)
    splits = [split(pool[part], test_fraction, gen) for part in parts]
    transform = prepare(X, num_features, train_idx=np.concatenate([tr for tr, _ in splits]))
    Z = transform.transform(X)
    clients = tuple(ClientData(Z[tr], y[tr], Z[te], y[te], tr, te) for tr, te in splits)
    return FederatedData(clients=clients, global_test=Samples(Z[held_out], y[held_out], np.asarray(held_out)), transform=transform)


def keep_positive_fraction(
    X: np.ndarray, y: np.ndarray, positive: Sequence[int], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop a seeded subset of the rows labelled ``positive`` so they make ``fraction`` of the rows
    (an anomaly-detection task: anomalies rare); rows keep their order and original labels."""
    pos = np.flatnonzero(np.isin(y, list(positive)))
    neg = len(y) - len(pos)
    if len(pos) == 0:
        raise ConfigError(f"data.positive {list(positive)}: no row has these labels; pick labels the dataset has")
    want = min(len(pos), max(1, int(round(fraction * neg / (1 - fraction)))))
    keep_pos = np.random.default_rng(seed).choice(pos, size=want, replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(~np.isin(y, list(positive))), keep_pos]))
    return X[keep], y[keep]


def one_vs_rest(data: FederatedData, y: np.ndarray, positive: Sequence[int]) -> FederatedData:
    """``data`` (partitioned on the original labels ``y``) relabelled 1 for ``positive`` labels, else 0."""
    binary = np.isin(y, list(positive)).astype(np.int64)
    clients = tuple(
        ClientData(c.X_train, binary[c.train_index], c.X_test, binary[c.test_index], c.train_index, c.test_index)
        for c in data.clients
    )
    g = data.global_test
    return FederatedData(clients=clients, global_test=Samples(g.X, binary[g.index], g.index), transform=data.transform)
