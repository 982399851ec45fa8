"""scikit-learn estimators: ``CNNClassifier`` (train a cnnfast network) and ``CNNFeatures`` (run one).

Both follow scikit-learn's estimator API, so they go into ``Pipeline``, ``GridSearchCV`` (also with
``n_jobs``: fitted estimators pickle), ``cross_val_score`` and friends::

    from sklearn.model_selection import cross_val_score
    digits = sklearn.datasets.load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]         # (N, 1, 8, 8) in [0, 1]
    cross_val_score(CNNClassifier(random_state=0), X, digits.target, cv=3).mean()   # 0.969

    Pipeline([("cnn", CNNFeatures(backbone)), ("clf", LogisticRegression())])

Needs the optional extra: ``pip install 'cnnfast[sklearn]'``.
"""

from __future__ import annotations

import copy
import numbers

import numpy as np

import cnnfast
from cnnfast import nn

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("cnnfast.sklearn needs scikit-learn >= 1.6: pip install 'cnnfast[sklearn]'") from e

__all__ = ["EXPECTED_FAILED_CHECKS", "CNNClassifier", "CNNFeatures", "default_network"]

#: Checks of ``sklearn.utils.estimator_checks.check_estimator`` that ``CNNClassifier`` is expected to
#: fail, with the reason (the form ``check_estimator(..., expected_failed_checks=...)`` takes).
EXPECTED_FAILED_CHECKS = {}


def _float32(X):
    return np.ascontiguousarray(X, dtype=np.float32)


def default_network(input_shape, n_outputs, random_state=None):
    """The network ``CNNClassifier`` trains when no ``module`` is given, built for ``input_shape``
    (one sample's shape, without the batch axis).

    Images ``(C, H, W)``: two 3x3 convolutions (32 and 64 channels, padding 1) with ReLU, each
    followed by 2x2 max-pooling while the maps are at least 2x2, then a linear layer to
    ``n_outputs`` logits. Tabular rows ``(F,)``: a perceptron with one hidden layer of 64 ReLU
    units. Initialised from ``random_state`` (an int, a ``RandomState`` or None), without touching
    cnnfast's default generator.
    """
    rs = check_random_state(random_state)
    gen = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) == 1:
        return nn.Sequential(
            nn.Linear(input_shape[0], 64, generator=gen), nn.ReLU(), nn.Linear(64, n_outputs, generator=gen)
        )
    if len(input_shape) != 3:
        raise ValueError(f"default_network: expected one sample of shape (C, H, W) or (F,), got {input_shape}")
    c, h, w = input_shape
    layers = []
    for out in (32, 64):  # widths chosen on the digits (see CNNClassifier's max_iter)
        layers += [nn.Conv2d(c, out, 3, padding=1, generator=gen), nn.ReLU()]
        if h >= 2 and w >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out
    layers += [nn.Flatten(), nn.Linear(c * h * w, n_outputs, generator=gen)]
    return nn.Sequential(*layers)


def _check_positive(name, value, kind=numbers.Integral):
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValueError(
            f"CNNClassifier: {name} must be a positive {'int' if kind is numbers.Integral else 'number'}, "
            f"got {value!r}"
        )


class _ShapeMixin:
    def _validate(self, X, reset, y="no_validation"):
        """2-D (N, F) or image (N, C, H, W) float32 data; remembers/checks one sample's shape."""
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, reset=reset, allow_nd=True, dtype=[np.float32, np.float64])
        else:
            X, y = validate_data(self, X, y, reset=reset, allow_nd=True, dtype=[np.float32, np.float64])
        if X.ndim not in (2, 4):
            raise ValueError(
                f"{type(self).__name__}: expected tabular data (n_samples, n_features) or images "
                f"(n_samples, channels, height, width), got an array of shape {X.shape}"
            )
        if reset:
            self.input_shape_ = X.shape[1:]
        elif X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"{type(self).__name__}: X has samples of shape {X.shape[1:]}, but this estimator "
                f"was fitted on samples of shape {self.input_shape_}"
            )
        return _float32(X) if isinstance(y, str) and y == "no_validation" else (_float32(X), y)


class CNNClassifier(_ShapeMixin, ClassifierMixin, BaseEstimator):
    """A cnnfast network trained as a scikit-learn classifier (softmax cross-entropy, Adam).

    Parameters
    ----------
    module : cnnfast.nn.Module, optional
        The network: it maps a batch of ``X`` to ``(n, n_classes)`` logits. It is copied at fit
        (the given module is never trained); the trained copy is ``module_``. Default: built for
        the input by :func:`default_network` (a small CNN for images ``(N, C, H, W)``, a one-hidden-
        layer perceptron for tabular ``(N, F)``).
    max_iter : int, default 15
        Training epochs (as ``MLPClassifier``'s ``max_iter``). The default is small, so that a fit
        on a few thousand small samples takes seconds; on scikit-learn's 8x8 digits
        ``cross_val_score(..., cv=3)`` averages 0.969, 0.967, 0.963 with ``random_state`` 0, 1, 2
        (with batch 64, random_state 0-4: 0.956-0.966; with lr 5e-3, random_state 0-2: 0.962-0.967).
    batch_size : int, default 32
    learning_rate_init : float, default 1e-2
        Adam's learning rate, annealed to 0 over the ``max_iter`` epochs by a cosine schedule.
    weight_decay : float, default 0
    random_state : int, RandomState or None
        Seeds the default network's initialisation and the shuffling of every epoch.
    warm_start : bool, default False
        Continue training ``module_`` (``max_iter`` more epochs) on the next ``fit`` instead of
        starting from a new network.
    verbose : int, default 0
        Passed to :func:`cnnfast.fit` (0 silent, 1 progress bar, 2 one line per epoch).

    Attributes: ``classes_``, ``module_``, ``n_features_in_``, ``input_shape_``, ``n_iter_``
    (epochs run by the last fit), ``loss_curve_`` (training loss per epoch, across warm starts).
    """

    def __init__(
        self,
        module=None,
        *,
        max_iter=15,
        batch_size=32,
        learning_rate_init=1e-2,
        weight_decay=0.0,
        random_state=None,
        warm_start=False,
        verbose=0,
    ):
        self.module = module
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def fit(self, X, y):
        """Train on ``X`` (float (N, F) or (N, C, H, W)) and class labels ``y``; returns self."""
        _check_positive("max_iter", self.max_iter)
        _check_positive("batch_size", self.batch_size)
        _check_positive("learning_rate_init", self.learning_rate_init, numbers.Real)
        warm = self.warm_start and hasattr(self, "module_")
        X, y = self._validate(X, reset=not warm, y=y)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if warm:
            if not np.array_equal(classes, np.intersect1d(classes, self.classes_)):
                raise ValueError(
                    f"CNNClassifier: warm_start fit got classes {classes} not all among the classes "
                    f"of the first fit {self.classes_}"
                )
            y_index = np.searchsorted(self.classes_, y)
        else:
            if len(classes) < 2:
                raise ValueError(
                    f"CNNClassifier: needs samples of at least 2 classes in the data, but the data "
                    f"contains only one class: {classes[0]!r}"
                )
            self.classes_ = classes
        rs = check_random_state(self.random_state)
        if not warm:
            if self.module is None:
                self.module_ = default_network(X.shape[1:], len(self.classes_), rs)
            else:
                self.module_ = copy.deepcopy(self.module)
            self.loss_curve_ = []
        self._check_output(X[:1])
        optimizer = cnnfast.optim.Adam(
            self.module_.parameters(), lr=self.learning_rate_init, weight_decay=self.weight_decay
        )
        scheduler = cnnfast.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.max_iter)
        history = cnnfast.fit(
            self.module_,
            X,
            y_index.astype(np.int64),
            epochs=int(self.max_iter),
            batch_size=int(self.batch_size),
            optimizer=optimizer,
            seed=int(rs.randint(np.iinfo(np.int32).max)),
            verbose=self.verbose,
            callbacks=[lambda epoch, logs: scheduler.step()],
        )
        self.n_iter_ = len(history.epoch)
        self.loss_curve_ = list(self.loss_curve_) + list(history.history["loss"])
        self.module_.eval()
        return self

    def _check_output(self, X1):
        out = cnnfast.predict(self.module_, X1)
        if out.shape != (1, len(self.classes_)):
            raise ValueError(
                f"CNNClassifier: the module maps a sample of shape {X1.shape[1:]} to an output of shape "
                f"{out.shape[1:]}, but {len(self.classes_)} class logits are needed"
            )

    def predict_proba(self, X):
        """Class probabilities, shape (N, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        proba = cnnfast.predict(self.module_, X, softmax=True).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class CNNFeatures(_ShapeMixin, TransformerMixin, BaseEstimator):
    """Run a (frozen, e.g. pretrained) cnnfast network and return its flattened outputs as features.

    ``fit`` learns nothing (it records the input shape); ``transform(X)`` returns
    ``cnnfast.predict(module, X)`` reshaped to ``(N, -1)``, computed in eval mode in batches of
    ``batch_size``. ``module=None`` passes the input through, flattened.
    """

    def __init__(self, module=None, *, batch_size=256):
        self.module = module
        self.batch_size = batch_size

    def fit(self, X, y=None):
        self._validate(X, reset=True)
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        out = X if self.module is None else cnnfast.predict(self.module, X, batch_size=int(self.batch_size))
        return np.asarray(out).reshape(len(X), -1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # features are float32, whatever the input
        return tags
