"""cnnfast.sklearn: check_estimator, pickling, GridSearchCV(n_jobs=2), Pipeline, the digits score."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import cnnfast


def _require(name):
    """Import an optional extra; in CI (where the test extra installs it) a missing one fails instead of skipping."""
    import importlib

    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"{name} is not installed: pip install 'cnnfast[sklearn]'")


_require("sklearn")
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import check_estimator

from cnnfast.sklearn import EXPECTED_FAILED_CHECKS, CNNClassifier, CNNFeatures


def _digits(n=None):
    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    return (X, d.target) if n is None else (X[:n], d.target[:n])


def _blobs(n=120, f=6, seed=0):
    """Three well separated Gaussian classes in f dimensions, string labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, f)) + 4 * np.eye(3, f)[y]
    return X, np.array(["a", "b", "c"])[y]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")  # pandas / array-API checks skip
@pytest.mark.parametrize("estimator", [CNNClassifier(random_state=0), CNNFeatures()], ids=lambda e: type(e).__name__)
def test_check_estimator(estimator):
    assert len(EXPECTED_FAILED_CHECKS) <= 5 and all(isinstance(r, str) and r for r in EXPECTED_FAILED_CHECKS.values())
    results = check_estimator(estimator, expected_failed_checks=EXPECTED_FAILED_CHECKS, on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed, failed
    assert sum(r["status"] == "passed" for r in results) > 40


def test_default_network_for_images_and_tables_and_pickling(tmp_path):
    X, y = _digits(300)
    clf = CNNClassifier(random_state=0, max_iter=5).fit(X, y)
    assert clf.input_shape_ == (1, 8, 8) and list(clf.classes_) == list(range(10)) and clf.n_iter_ == 5
    assert any(isinstance(m, cnnfast.nn.Conv2d) for m in clf.module_.modules())
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 10) and np.allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    assert clf.score(X, y) > 0.9
    again = pickle.loads(pickle.dumps(clf))  # a fitted estimator pickles, predictions unchanged
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    # the same random_state gives the same network, another gives another
    np.testing.assert_array_equal(CNNClassifier(random_state=0, max_iter=5).fit(X, y).predict_proba(X), proba)
    assert not np.array_equal(CNNClassifier(random_state=1, max_iter=5).fit(X, y).predict_proba(X), proba)

    Xt, yt = _blobs()
    tab = CNNClassifier(random_state=0, max_iter=10, batch_size=16).fit(Xt, yt)  # 2-D tabular data, string labels
    assert not any(isinstance(m, cnnfast.nn.Conv2d) for m in tab.module_.modules())
    assert list(tab.classes_) == ["a", "b", "c"] and tab.score(Xt, yt) > 0.95
    with pytest.raises(ValueError, match=r"fitted on samples of shape \(1, 8, 8\)"):
        clf.predict(np.zeros((2, 1, 8, 9), np.float32))
    with pytest.raises(ValueError, match="expected tabular data"):
        CNNClassifier().fit(np.zeros((4, 8, 8)), [0, 1, 0, 1])


def test_user_module_warm_start_and_params():
    X, y = _digits(200)
    cnnfast.manual_seed(0)
    net = cnnfast.nn.Sequential(cnnfast.nn.Flatten(), cnnfast.nn.Linear(64, 10))
    before = net[1].weight.data.copy()
    clf = CNNClassifier(net, max_iter=3, random_state=0, warm_start=True)
    assert clf.get_params()["module"] is net and clf.get_params()["max_iter"] == 3
    clf.fit(X, y)
    np.testing.assert_array_equal(net[1].weight.data, before)  # the given module is copied, never trained
    trained, curve = clf.module_, list(clf.loss_curve_)
    clf.set_params(max_iter=2).fit(X, y)  # warm start: the same network trains 2 more epochs
    assert clf.module_ is trained and len(clf.loss_curve_) == 5 and clf.loss_curve_[:3] == curve
    assert clf.loss_curve_[-1] < curve[0]
    clf.set_params(warm_start=False).fit(X, y)
    assert clf.module_ is not trained and len(clf.loss_curve_) == 2
    with pytest.raises(ValueError, match="10 class logits are needed"):
        CNNClassifier(cnnfast.nn.Sequential(cnnfast.nn.Flatten(), cnnfast.nn.Linear(64, 3))).fit(X, y)
    with pytest.raises(ValueError, match="max_iter must be a positive int"):
        CNNClassifier(max_iter=0).fit(X, y)


def test_grid_search_with_two_processes():
    X, y = _digits(240)
    search = GridSearchCV(
        CNNClassifier(random_state=0, max_iter=3), {"learning_rate_init": [1e-4, 1e-2]}, cv=2, n_jobs=2
    )  # estimators go to 2 worker processes by pickle
    search.fit(X, y)
    assert search.best_params_ == {"learning_rate_init": 1e-2}
    assert search.best_estimator_.score(X, y) > 0.8


def test_cnn_features_in_a_pipeline():
    X, y = _digits(400)
    cnnfast.manual_seed(0)
    backbone = cnnfast.nn.Sequential(cnnfast.nn.Conv2d(1, 8, 3, padding=1), cnnfast.nn.ReLU(), cnnfast.nn.MaxPool2d(2))
    features = CNNFeatures(backbone).fit(X)
    F = features.transform(X[:5])
    assert F.shape == (5, 8 * 4 * 4) and F.dtype == np.float32
    np.testing.assert_allclose(F, cnnfast.predict(backbone, X[:5]).reshape(5, -1), rtol=1e-6)
    pipe = Pipeline([("cnn", CNNFeatures(backbone)), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(X[:300], y[:300])
    assert pipe.score(X[300:], y[300:]) > 0.8  # chance: 0.1; 0.88 here
    assert backbone.training  # the frozen backbone ran in eval mode; its mode is restored


def test_digits_cross_validation_reaches_095():
    X, y = _digits()
    scores = cross_val_score(CNNClassifier(random_state=0), X, y, cv=3)
    assert scores.mean() >= 0.95, scores
