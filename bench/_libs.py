"""The libraries under test: how each one computes each op.

Importing this module imports only NumPy; a library is imported by its
adapter's ``setup``, inside the worker process that times it.

An adapter has
- ``ops``: op name -> names of the variants it times (a variant is reported
  as its own "lib", e.g. ``xentfast[grad_out]``);
- ``setup(threads)``: import the library, set its thread count, return what
  was done (raises ImportError when the library is missing);
- ``prepare(op, variant, inp)``: return ``(call, normalise)``, where
  ``call()`` is the timed zero-argument call and ``normalise(call())`` gives
  ``(loss, array)`` in the convention of ``_formulas``.

Every call returns a loss *and* writes the gradient (or the log-softmax), the
way a user of that library obtains both; peers that return per-row values
(scikit-learn) are timed as they are and rescaled only for the check.
"""

import numpy as np

import _formulas

OPS = ("cross_entropy", "log_softmax", "bce_logits")


def _version(module):
    return getattr(module, "__version__", "unknown")


class Copy:
    """``np.copyto`` of the logits into a preallocated array: the yardstick."""

    ops = {"copy": ("copy",)}

    def setup(self, threads):
        return {"version": np.__version__, "threads": "single-threaded (np.copyto)"}

    def prepare(self, op, variant, inp):
        dst = np.empty_like(inp.x)
        return (lambda: np.copyto(dst, inp.x)), None


class NumPy:
    """The plain NumPy formulas of ``_formulas`` at the input's dtype."""

    ops = {op: ("numpy",) for op in OPS}

    def setup(self, threads):
        return {"version": np.__version__,
                "threads": "single-threaded (NumPy ufuncs)"}

    def prepare(self, op, variant, inp):
        formula = _formulas.FORMULAS[op]
        return (lambda: formula(inp)), (lambda r: r)


class XentFast:
    """xentfast, allocating its outputs and writing into preallocated ones."""

    ops = {
        "cross_entropy": ("xentfast", "xentfast[grad_out]"),
        "log_softmax": ("xentfast", "xentfast[out]"),
        "bce_logits": ("xentfast", "xentfast[grad_out]"),
    }

    def setup(self, threads):
        import xentfast as xf

        self.xf = xf
        xf.set_num_threads(threads)
        info = {"version": _version(xf), "file": xf.__file__,
                "threads": f"OMP_NUM_THREADS={threads}; "
                           f"xf.set_num_threads({threads})"}
        simd = getattr(xf, "config_info", lambda: {})().get("simd")
        if simd is not None:
            # the floor of the "x floor" column: exps per second of one core
            # at the level the kernels run at, measured now
            from xentfast import _simd
            info["simd"] = simd
            info["exp_rate"] = {"float32": _simd.exp_rate(False),
                                "float64": _simd.exp_rate(True)}
        return info

    def prepare(self, op, variant, inp):
        xf, x = self.xf, inp.x
        buf = np.empty_like(x) if variant != "xentfast" else None
        if op == "cross_entropy":
            y = inp.y
            if buf is None:
                call = lambda: xf.cross_entropy(x, y, return_grad=True)
            else:
                call = lambda: xf.cross_entropy(x, y, return_grad=True, grad_out=buf)
            return call, lambda r: r
        if op == "log_softmax":
            if buf is None:
                call = lambda: xf.log_softmax(x)
            else:
                call = lambda: xf.log_softmax(x, out=buf)
            return call, lambda r: (None, r)
        t = inp.t
        if buf is None:
            call = lambda: xf.binary_cross_entropy_with_logits(x, t, return_grad=True)
        else:
            call = lambda: xf.binary_cross_entropy_with_logits(
                x, t, return_grad=True, grad_out=buf)
        return call, lambda r: r


class Torch:
    """PyTorch as users run it: a leaf tensor, forward, then ``backward()``."""

    ops = {op: ("torch",) for op in OPS}

    def setup(self, threads):
        import torch

        self.torch = torch
        self.losses = torch.nn.functional   # where cross_entropy etc. come from
        torch.set_num_threads(threads)
        return {"version": _version(torch),
                "threads": f"OMP_NUM_THREADS={threads}; "
                           f"torch.set_num_threads({threads}) -> "
                           f"get_num_threads()={torch.get_num_threads()}"}

    def prepare(self, op, variant, inp):
        torch = self.torch
        F = torch.nn.functional
        if op == "log_softmax":
            # inference: no autograd graph is built for a plain tensor
            x = torch.from_numpy(inp.x)
            return (lambda: F.log_softmax(x, dim=-1)), (lambda r: (None, r.numpy()))
        x = torch.from_numpy(inp.x).requires_grad_(True)
        losses = self.losses
        if op == "cross_entropy":
            y = torch.from_numpy(inp.y)
            forward = lambda: losses.cross_entropy(x, y)
        else:
            t = torch.from_numpy(inp.t)
            forward = lambda: losses.binary_cross_entropy_with_logits(x, t)

        def call():
            x.grad = None  # what optimizer.zero_grad() does by default
            loss = forward()
            loss.backward()
            return loss

        return call, lambda loss: (loss.item(), x.grad.numpy())


class XentFastTorch(Torch):
    """``xentfast.torch``, the PyTorch adapter, timed exactly as torch is:
    a leaf tensor, forward, then ``backward()``, in a torch process."""

    ops = {"cross_entropy": ("xentfast.torch",), "bce_logits": ("xentfast.torch",)}

    def setup(self, threads):
        info = super().setup(threads)
        import xentfast.torch as xft

        self.losses = xft
        info["threads"] += " (the adapter's kernels follow torch.get_num_threads())"
        return info


class SkLearn:
    """scikit-learn's Cython losses, with preallocated outputs.

    ``HalfMultinomialLoss.loss_gradient`` for cross-entropy and
    ``HalfBinomialLoss.loss_gradient`` on the flattened array for the binary
    loss. They return per-sample losses and per-sample gradients (of the sum,
    not the mean); they are timed as they are and rescaled for the check.
    """

    ops = {"cross_entropy": ("sklearn",), "bce_logits": ("sklearn",)}

    def setup(self, threads):
        import sklearn
        from sklearn._loss import loss

        self.loss, self.threads = loss, threads
        return {"version": _version(sklearn),
                "threads": f"OMP_NUM_THREADS={threads}; n_threads={threads}"}

    def prepare(self, op, variant, inp):
        n_threads, dtype = self.threads, inp.dtype
        if op == "cross_entropy":
            loss = self.loss.HalfMultinomialLoss(n_classes=inp.c)
            y_true, raw = inp.y.astype(dtype), inp.x
            scale = inp.n
        else:
            loss = self.loss.HalfBinomialLoss()
            y_true, raw = inp.t.reshape(-1), inp.x.reshape(-1)
            scale = inp.x.size
        loss_out = np.empty(y_true.shape, dtype)
        grad_out = np.empty_like(raw)

        def call():
            return loss.loss_gradient(y_true=y_true, raw_prediction=raw,
                                      loss_out=loss_out, gradient_out=grad_out,
                                      n_threads=n_threads)

        def normalise(r):
            per_sample, grad = r
            return per_sample.mean(dtype=np.float64), (grad / scale).reshape(inp.x.shape)

        return call, normalise


class SciPy:
    """``scipy.special.log_softmax``."""

    ops = {"log_softmax": ("scipy",)}

    def setup(self, threads):
        import scipy
        import scipy.special

        self.special = scipy.special
        return {"version": _version(scipy), "threads": "single-threaded"}

    def prepare(self, op, variant, inp):
        x, log_softmax = inp.x, self.special.log_softmax
        return (lambda: log_softmax(x, axis=-1)), (lambda r: (None, r))


class Jax:
    """JAX + optax, jitted ``value_and_grad`` of the mean loss.

    The inputs are device arrays made before timing; each call blocks until
    the loss and gradient are ready.
    """

    ops = {op: ("jax",) for op in OPS}

    def setup(self, threads):
        import os

        import jax

        jax.config.update("jax_enable_x64", True)  # else float64 is silently float32
        self.jax = jax
        info = {"version": _version(jax),
                "threads": f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"}
        try:
            import optax

            self.optax = optax
            info["optax"] = _version(optax)
        except ImportError as exc:
            self.optax = None
            info["optax"] = f"missing ({exc})"
        return info

    def prepare(self, op, variant, inp):
        jax = self.jax
        jnp = jax.numpy
        x = jnp.asarray(inp.x)
        if op == "log_softmax":
            f = jax.jit(lambda x: jax.nn.log_softmax(x, axis=-1))
            call = lambda: f(x).block_until_ready()
            return call, lambda r: (None, np.asarray(r))
        if self.optax is None:
            raise ImportError("optax is not installed")
        optax = self.optax
        if op == "cross_entropy":
            other = jnp.asarray(inp.y)
            loss = lambda x, y: optax.softmax_cross_entropy_with_integer_labels(x, y).mean()
        else:
            other = jnp.asarray(inp.t)
            loss = lambda x, t: optax.sigmoid_binary_cross_entropy(x, t).mean()
        f = jax.jit(jax.value_and_grad(loss))
        call = lambda: jax.block_until_ready(f(x, other))
        return call, lambda r: (float(r[0]), np.asarray(r[1]))


# Display order: xentfast first, then the peers.
LIBS = {
    "copy": Copy,
    "xentfast": XentFast,
    "xentfast.torch": XentFastTorch,
    "numpy": NumPy,
    "torch": Torch,
    "jax": Jax,
    "sklearn": SkLearn,
    "scipy": SciPy,
}
PEERS = tuple(name for name in LIBS if name != "copy" and not name.startswith("xentfast"))


def variants(lib, op):
    """Names of the rows ``lib`` reports for ``op`` (empty if it lacks it)."""
    return LIBS[lib].ops.get(op, ())
