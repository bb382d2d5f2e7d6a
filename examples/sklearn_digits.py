"""
CrossEntropyClassifier against LogisticRegression on digits
===========================================================

xentfast.sklearn.CrossEntropyClassifier against scikit-learn's LogisticRegression.

Prints two Markdown tables:

1. Test accuracy and fitting time on the digits data (1,797 8x8 images,
   bundled with scikit-learn) at equal regularisation: ``alpha`` here is
   ``C = 1 / (alpha * n_samples)`` there, and both stop when the largest
   gradient component falls below 1e-6 (the same objective, scaled the same
   way, so the same stopping rule).
2. Recall of a minority class on an imbalanced subset (digit 8 keeps 10 of
   its training rows) for the plain fit, ``class_weight='balanced'`` and
   ``loss='focal'``.

Times are the median of ``--repeat`` fits; ``--plot FILE`` also draws the
per-digit recall of the imbalanced fits. Run::

    python examples/sklearn_digits.py [--repeat 5] [--plot FILE]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from xentfast.sklearn import CrossEntropyClassifier

DESCRIPTION = "CrossEntropyClassifier against LogisticRegression on digits."


def timed_fit(make, X, y, repeat):
    """Median fit time in ms and the last fitted model."""
    times = []
    for _ in range(repeat):
        model = make()
        start = time.perf_counter()
        model.fit(X, y)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), model


def comparison(repeat):
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25,
                                          random_state=0, stratify=y)
    print(f"digits: {len(ytr)} train / {len(yte)} test rows, 64 features, "
          "10 classes\n")
    print("| alpha | C | xentfast acc | LogisticRegression acc "
          "| xentfast fit | LogisticRegression fit | ... BLAS on 1 thread "
          "| iterations (xf / LR) |")
    print("|---|---|---|---|---|---|---|---|")
    for alpha in (1e-4, 1e-3, 1e-2):
        C = 1.0 / (alpha * len(ytr))
        t_xf, xf_model = timed_fit(
            lambda: CrossEntropyClassifier(alpha=alpha, max_iter=1000),
            Xtr, ytr, repeat)

        def make_lr():
            return LogisticRegression(C=C, tol=1e-6, max_iter=1000)

        t_lr, lr_model = timed_fit(make_lr, Xtr, ytr, repeat)
        with threadpool_limits(limits=1, user_api="blas"):
            t_lr1, _ = timed_fit(make_lr, Xtr, ytr, repeat)
        print(f"| {alpha:g} | {C:.3g} | {xf_model.score(Xte, yte):.4f} "
              f"| {lr_model.score(Xte, yte):.4f} | {t_xf:.0f} ms "
              f"| {t_lr:.0f} ms | {t_lr1:.0f} ms "
              f"| {xf_model.n_iter_} / {lr_model.n_iter_[0]} |")


def imbalanced(plot_path=None):
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.5,
                                          random_state=0, stratify=y)
    idx = np.flatnonzero(ytr == 8)
    keep = np.ones(len(ytr), bool)
    keep[np.random.RandomState(0).permutation(idx)[10:]] = False
    Xtr, ytr = Xtr[keep], ytr[keep]
    print(f"\nimbalanced digits: digit 8 has {np.sum(ytr == 8)} of "
          f"{len(ytr)} training rows; {np.sum(yte == 8)} in the test set; "
          "alpha=1e-3\n")
    print("| fit | recall of 8 | overall accuracy |")
    print("|---|---|---|")
    recalls = {}
    for label, kw in [("plain cross-entropy", {}),
                      ("class_weight='balanced'", dict(class_weight="balanced")),
                      ("loss='focal' (gamma=2)", dict(loss="focal")),
                      ("focal + balanced", dict(loss="focal",
                                                class_weight="balanced"))]:
        model = CrossEntropyClassifier(alpha=1e-3, max_iter=500, **kw)
        pred = model.fit(Xtr, ytr).predict(Xte)
        print(f"| {label} | {recall_score(yte == 8, pred == 8):.2f} "
              f"| {np.mean(pred == yte):.4f} |")
        recalls[label] = recall_score(yte, pred, average=None)
    if plot_path:
        plot_recalls(recalls, plot_path)


def plot_recalls(recalls, path):
    """Per-digit recall of each fit as grouped bars, saved as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 3.5))
    width = 0.8 / len(recalls)
    for j, (label, recall) in enumerate(recalls.items()):
        ax.bar(np.arange(10) + (j - (len(recalls) - 1) / 2) * width, recall,
               width, label=label)
    ax.set_xticks(range(10), [f"{d}" + (" (10 rows)" if d == 8 else "")
                              for d in range(10)])
    ax.set(xlabel="digit", ylabel="test recall", ylim=(0, 1.05),
           title="Digits with digit 8 kept to 10 training rows")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"saved {path}")


def main():
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plot", metavar="FILE",
                        help="save the per-digit recall of the imbalanced fits as a "
                             "PNG (needs matplotlib)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # report, don't warn, on max_iter
        comparison(args.repeat)
        imbalanced(args.plot)


if __name__ == "__main__":
    main()
