"""
Next-token model on the standard library with linear_cross_entropy
==================================================================

A word-level next-token model trained on the Python standard library's own
source, with the output layer computed by ``xentfast.linear_cross_entropy``.

The text is every ``.py`` file of the running Python's standard library (on
every machine, no download), split into identifiers, numbers and single
punctuation characters; the ``--vocab`` most frequent tokens (32768 by
default) are the classes, every other token is ``<unk>``. A target that is
``<unk>`` is ignored (``ignore_index``), so the model is not rewarded for
predicting "some rare word".

The model reads the ``--context`` previous tokens: their embeddings,
concatenated, go through one tanh layer, and the output layer
``logits = h @ W_out.T + b_out`` has one row per vocabulary entry. That layer
and the loss are one call: ``linear_cross_entropy(h, W_out, y, bias=b_out,
return_grad=True)`` gives the loss and the gradients with respect to ``h``,
``W_out`` and ``b_out`` without ever holding the (batch, vocabulary) logits.
Everything else is plain NumPy with Adam.

At the end the script measures one output-layer step, fused against the
unfused NumPy version (logits, ``cross_entropy`` in place, two GEMMs), at
``--compare-batch`` tokens: peak memory (tracemalloc: everything NumPy
allocates, the returned gradients included) and time.

Run:  python examples/next_token_stdlib.py [--steps 150] [--batch 512] [--quick]
"""

import argparse
import collections
import pathlib
import re
import sysconfig
import time
import tracemalloc

import numpy as np

import xentfast as xf

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\S")
UNK = 0


def stdlib_files(max_files):
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    return files[:max_files] if max_files else files


def tokenize(files, vocab_size):
    """Token ids of every file (concatenated) and the vocabulary (id 0: <unk>)."""
    tokens = []
    for path in files:
        try:
            tokens += TOKEN.findall(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    counts = collections.Counter(tokens)
    vocab = ["<unk>"] + [t for t, _ in counts.most_common(vocab_size - 1)]
    index = {t: i for i, t in enumerate(vocab)}
    ids = np.fromiter((index.get(t, UNK) for t in tokens), dtype=np.int32, count=len(tokens))
    return ids, vocab


class Model:
    """Embeddings of the context tokens -> tanh layer -> output layer (V, H)."""

    def __init__(self, vocab, context, dim, hidden, rng, lr):
        f32 = np.float32
        self.context = context
        self.params = {
            "E": (rng.normal(size=(vocab, dim)) * 0.1).astype(f32),
            "W1": (rng.normal(size=(context * dim, hidden)) / np.sqrt(context * dim)).astype(f32),
            "b1": np.zeros(hidden, f32),
            "W_out": (rng.normal(size=(vocab, hidden)) / np.sqrt(hidden)).astype(f32),
            "b_out": np.zeros(vocab, f32),
        }
        self.m = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.v = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.lr, self.t = lr, 0

    def hidden(self, ctx):
        """ctx: (B, context) token ids -> concatenated embeddings, tanh layer."""
        p = self.params
        e = p["E"][ctx].reshape(len(ctx), -1)
        return e, np.tanh(e @ p["W1"] + p["b1"])

    def loss(self, ctx, y):
        _, h = self.hidden(ctx)
        p = self.params
        return xf.linear_cross_entropy(h, p["W_out"], y, bias=p["b_out"], ignore_index=UNK)

    def step(self, ctx, y):
        p = self.params
        e, h = self.hidden(ctx)
        loss, g = xf.linear_cross_entropy(h, p["W_out"], y, bias=p["b_out"],
                                          ignore_index=UNK, return_grad=True)
        dpre = g.x * (1 - h * h)                      # through tanh
        de = (dpre @ p["W1"].T).reshape(ctx.shape + (-1,))
        dE = np.zeros_like(p["E"])
        np.add.at(dE, ctx, de)
        self.adam({"E": dE, "W1": e.T @ dpre, "b1": dpre.sum(0), "W_out": g.W, "b_out": g.bias})
        return loss

    def adam(self, grads, b1=0.9, b2=0.999, eps=1e-8):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1**self.t)
            v_hat = self.v[k] / (1 - b2**self.t)
            self.params[k] -= (self.lr * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)


def batch(ids, context, size, rng, lo, hi):
    """`size` random positions in [lo + context, hi): contexts and targets."""
    pos = rng.integers(lo + context, hi, size=size)
    ctx = ids[pos[:, None] - np.arange(context, 0, -1)]
    return ctx, ids[pos].astype(np.int64)


def unfused_output_layer(h, W, b, y):
    """The same loss and gradients with the (B, V) logits in memory."""
    logits = h @ W.T + b
    loss, G = xf.cross_entropy(logits, y, ignore_index=UNK, return_grad=True, grad_out=logits)
    return loss, (G @ W, G.T @ h, G.sum(axis=0))


def measure(call):
    """(peak MB allocated by NumPy during call, seconds, result)."""
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 1e6, seconds, result


def compare_memory(model, ids, args, rng):
    h = model.hidden(batch(ids, args.context, args.compare_batch, rng, 0, len(ids))[0])[1]
    y = batch(ids, args.context, args.compare_batch, rng, 0, len(ids))[1]
    W, b = model.params["W_out"], model.params["b_out"]
    fused = measure(lambda: xf.linear_cross_entropy(h, W, y, bias=b, ignore_index=UNK,
                                                    return_grad=True))
    unfused = measure(lambda: unfused_output_layer(h, W, b, y))
    diff = max(float(np.max(np.abs(a - c)) / (np.max(np.abs(c)) or 1.0))
               for a, c in zip(fused[2][1], unfused[2][1]))
    n, v = len(y), W.shape[0]
    print(f"\noutput layer, one step at {n} tokens x {v} classes x {W.shape[1]} hidden "
          f"(the logits alone: {n * v * 4 / 1e6:.0f} MB):")
    print(f"  fused   linear_cross_entropy: peak {fused[0]:8.1f} MB  {fused[1]:.3f} s")
    print(f"  unfused logits + cross_entropy: peak {unfused[0]:8.1f} MB  {unfused[1]:.3f} s")
    print(f"  memory ratio unfused/fused {unfused[0] / fused[0]:.1f}x; "
          f"same loss ({fused[2][0]:.6f} vs {unfused[2][0]:.6f}), "
          f"gradients within {diff:.1e} (relative)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=512, help="tokens per step")
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--context", type=int, default=4)
    p.add_argument("--dim", type=int, default=32, help="embedding size")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-files", type=int, default=0, help="0: every stdlib file")
    p.add_argument("--compare-batch", type=int, default=4096,
                   help="tokens of the fused/unfused memory comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="seconds-long smoke run: 200 files, 4096 words, 40 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.max_files, args.vocab, args.steps, args.batch = 200, 4096, 40, 256
        args.hidden, args.compare_batch = 64, 1024
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    files = stdlib_files(args.max_files)
    ids, vocab = tokenize(files, args.vocab)
    split = int(0.95 * len(ids))                  # the last 5% of the text: validation
    print(f"{len(files)} stdlib files, {len(ids):,} tokens, vocabulary {len(vocab):,} "
          f"({np.mean(ids == UNK):.1%} <unk>), {time.perf_counter() - t0:.1f} s")

    model = Model(len(vocab), args.context, args.dim, args.hidden, rng, args.lr)
    val = batch(ids, args.context, 8192, np.random.default_rng(1), split, len(ids))
    print(f"step {0:5d}  validation loss {model.loss(*val):.3f}  (log V = {np.log(len(vocab)):.3f})")
    t0 = time.perf_counter()
    losses = []
    for step in range(1, args.steps + 1):
        losses.append(model.step(*batch(ids, args.context, args.batch, rng, 0, split)))
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            print(f"step {step:5d}  train loss {np.mean(losses[-10:]):.3f}  "
                  f"({time.perf_counter() - t0:.1f} s)")
    print(f"step {args.steps:5d}  validation loss {model.loss(*val):.3f}")
    compare_memory(model, ids, args, rng)


if __name__ == "__main__":
    main()
