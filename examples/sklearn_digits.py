"""Cross-validate cnnfast's scikit-learn classifier on scikit-learn's 8x8 digits.

    python examples/sklearn_digits.py [--cv 3] [--random-state 0] [--grid]
    python examples/sklearn_digits.py --random-state 1 --batch-size 64 --lr 5e-3 --max-iter 15   # other settings

Loads ``sklearn.datasets.load_digits`` (1,797 images), scales them to [0, 1] as ``(N, 1, 8, 8)``
float32 images and prints ``cross_val_score(CNNClassifier(random_state=0), X, y, cv=3)`` (the issue's
bar: a mean >= 0.95). ``--grid`` also runs a small ``GridSearchCV(n_jobs=2)`` over the learning rate,
and a ``Pipeline`` of frozen CNN features + ``LogisticRegression``. Needs ``pip install 'cnnfast[sklearn]'``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cv", type=int, default=3)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="CNNClassifier's batch_size (default: its default)")
    p.add_argument("--lr", type=float, default=None, help="CNNClassifier's learning_rate_init (default: its default)")
    p.add_argument("--max-iter", type=int, default=None, help="CNNClassifier's max_iter (default: its default)")
    p.add_argument("--grid", action="store_true", help="also a GridSearchCV(n_jobs=2) and a CNNFeatures pipeline")
    args = p.parse_args(argv)

    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score

    import cnnfast
    from cnnfast.sklearn import CNNClassifier, CNNFeatures

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    y = digits.target
    params = {"batch_size": args.batch_size, "learning_rate_init": args.lr, "max_iter": args.max_iter}
    clf = CNNClassifier(random_state=args.random_state, **{k: v for k, v in params.items() if v is not None})
    print(f"{clf!r} on digits {X.shape}, cv={args.cv}")
    t = time.perf_counter()
    scores = cross_val_score(clf, X, y, cv=args.cv)
    print(
        f"cross_val_score: {np.round(scores, 4).tolist()}  mean {scores.mean():.4f} "
        f"({'meets' if scores.mean() >= 0.95 else 'BELOW'} the 0.95 bar)  {time.perf_counter() - t:.1f}s"
    )

    if args.grid:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, train_test_split
        from sklearn.pipeline import Pipeline

        t = time.perf_counter()
        search = GridSearchCV(
            CNNClassifier(random_state=0, max_iter=8), {"learning_rate_init": [3e-3, 1e-2]}, cv=3, n_jobs=2
        ).fit(X, y)
        print(
            f"GridSearchCV(n_jobs=2): best {search.best_params_}, cv score {search.best_score_:.4f}  "
            f"{time.perf_counter() - t:.1f}s"
        )

        # A frozen network as a feature extractor: here the convolutional part of a CNN trained on
        # the first half, feeding a LogisticRegression fitted on the other half's features.
        Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
        backbone = CNNClassifier(random_state=0).fit(Xa, ya).module_[:-1]  # drop the last Linear
        pipe = Pipeline([("cnn", CNNFeatures(backbone)), ("clf", LogisticRegression(max_iter=1000))])
        Xb_train, Xb_test, yb_train, yb_test = train_test_split(Xb, yb, test_size=0.5, random_state=0, stratify=yb)
        pipe.fit(Xb_train, yb_train)
        print(
            f"Pipeline(CNNFeatures -> LogisticRegression): test accuracy {pipe.score(Xb_test, yb_test):.4f} "
            f"({cnnfast.predict(backbone, X[:1]).size} features)"
        )


if __name__ == "__main__":
    main()
