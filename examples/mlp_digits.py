"""
A two-layer MLP in plain NumPy on digits
========================================

A two-layer MLP in plain NumPy, trained on scikit-learn's digits with xentfast.

The network is ``logits = relu(X @ W1 + b1) @ W2 + b2``; the loss and its
gradient with respect to the logits come from one call to
``xentfast.cross_entropy(..., return_grad=True, grad_out=G)``, which writes
into a buffer allocated once. Backpropagation through the two layers and the
Adam updates are a few lines of NumPy.

The digits (1,797 8x8 images, bundled with scikit-learn: no download) are
split 75/25 into train and test sets. Each epoch prints the mean training
loss and the train/test accuracy; with matplotlib installed the training
curve is saved as a PNG.

Run:  python examples/mlp_digits.py [--epochs 30] [--quick] [--plot FILE]
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits

import xentfast as xf

DESCRIPTION = "Train a two-layer NumPy MLP on digits with xentfast."


def load_data(seed):
    """Standardised digits, split 75/25 with a fixed permutation."""
    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_train = int(0.75 * len(y))
    tr, te = perm[:n_train], perm[n_train:]
    mean, std = X[tr].mean(axis=0), X[tr].std(axis=0) + 1e-6
    X = ((X - mean) / std).astype(np.float32)
    return X[tr], y[tr], X[te], y[te]


class MLP:
    """Two-layer ReLU network with He initialisation and Adam."""

    def __init__(self, n_in, n_hidden, n_out, rng, lr=3e-3):
        self.params = [
            rng.normal(0, np.sqrt(2 / n_in), (n_in, n_hidden)).astype(np.float32),
            np.zeros(n_hidden, np.float32),
            rng.normal(0, np.sqrt(2 / n_hidden), (n_hidden, n_out)).astype(np.float32),
            np.zeros(n_out, np.float32),
        ]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.lr, self.t = lr, 0

    def forward(self, X):
        W1, b1, W2, b2 = self.params
        H = np.maximum(X @ W1 + b1, 0)
        return H, H @ W2 + b2

    def backward(self, X, H, G):
        """Parameter gradients from G = d loss / d logits."""
        W1, b1, W2, b2 = self.params
        dH = G @ W2.T
        dH[H <= 0] = 0  # ReLU
        return [X.T @ dH, dH.sum(0), H.T @ G, G.sum(0)]

    def adam_step(self, grads, beta1=0.9, beta2=0.999, eps=1e-8):
        self.t += 1
        c1, c2 = 1 - beta1 ** self.t, 1 - beta2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + eps)

    def accuracy(self, X, y):
        return float(np.mean(self.forward(X)[1].argmax(axis=1) == y))


def train(epochs, batch_size=64, n_hidden=128, seed=0):
    """Train and return (model, history); history rows: epoch, loss, accs."""
    Xtr, ytr, Xte, yte = load_data(seed)
    rng = np.random.default_rng(seed)
    model = MLP(Xtr.shape[1], n_hidden, 10, rng)
    G = np.empty((batch_size, 10), np.float32)  # d loss / d logits, reused
    history = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(ytr))
        total = 0.0
        for start in range(0, len(ytr), batch_size):
            idx = order[start:start + batch_size]
            Xb, yb = Xtr[idx], ytr[idx]
            H, logits = model.forward(Xb)
            # Fused loss + gradient, written into the first len(idx) rows
            # of G (a C-contiguous row slice).
            loss, Gb = xf.cross_entropy(logits, yb, return_grad=True,
                                        grad_out=G[:len(idx)])
            total += float(loss) * len(idx)
            model.adam_step(model.backward(Xb, H, Gb))
        row = (epoch, total / len(ytr), model.accuracy(Xtr, ytr),
               model.accuracy(Xte, yte))
        history.append(row)
        print(f"epoch {row[0]:3d}  loss {row[1]:.4f}  "
              f"train acc {row[2]:.4f}  test acc {row[3]:.4f}", flush=True)
    return model, np.array(history)


def plot(history, path):
    """Save loss and accuracy curves as a PNG, if matplotlib is present."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(history[:, 0], history[:, 1])
    ax1.set(xlabel="epoch", ylabel="training loss", yscale="log")
    ax2.plot(history[:, 0], history[:, 2], label="train")
    ax2.plot(history[:, 0], history[:, 3], label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy")
    ax2.legend()
    fig.suptitle("Two-layer NumPy MLP on digits, loss by xentfast")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"saved {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true",
                        help="5 epochs, no plot (used by the test suite)")
    parser.add_argument("--plot", default="mlp_digits.png",
                        help="PNG file for the training curve")
    args = parser.parse_args(argv)
    epochs = 5 if args.quick else args.epochs
    start = time.perf_counter()
    # The matrices are tiny (batches of 64 x 128): extra BLAS threads only
    # add hand-off overhead, so keep BLAS on one thread when we can.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        _, history = train(epochs)
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            _, history = train(epochs)
    elapsed = time.perf_counter() - start
    print(f"final test accuracy {history[-1, 3]:.4f} after {epochs} epochs "
          f"in {elapsed:.2f} s")
    if not args.quick:
        plot(history, args.plot)


if __name__ == "__main__":
    main()
