"""Bad input raises the documented error type, naming the argument, before
any output buffer is written."""

import re

import numpy as np
import pytest

import xentfast as xf

N, C = 6, 4
SENTINEL = 7.25


def good_inputs(dtype=np.float64):
    x = np.random.default_rng(0).standard_normal((N, C)).astype(dtype)
    y = np.array([0, 1, 2, 3, 0, 1])
    return x, y


def raises_untouched(func, x, target, exc, match, **kw):
    """Call ``func`` expecting ``exc``; check no input or buffer changed.

    Unless the test supplies its own ``grad_out``, a valid sentinel-filled
    buffer is passed so that a late check (after the kernel ran) shows up.
    """
    if "grad_out" not in kw:
        kw["return_grad"] = True
        kw["grad_out"] = np.full(np.shape(x), SENTINEL, np.float64)
    buf = kw["grad_out"]
    buf_before = np.array(buf, copy=True) if isinstance(buf, np.ndarray) \
        else None
    x_before = np.array(x, copy=True)
    t_before = np.array(target, copy=True)
    with pytest.raises(exc, match=match) as info:
        func(x, target, **kw)
    if buf_before is not None:
        np.testing.assert_array_equal(buf, buf_before)
    np.testing.assert_array_equal(np.asarray(x), x_before)
    np.testing.assert_array_equal(np.asarray(target), t_before)
    return str(info.value)


LOSSES = [pytest.param(xf.cross_entropy, id="cross_entropy"),
          pytest.param(xf.nll_loss, id="nll_loss")]


# ------------------------------------------------------------------ labels

@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("bad,ignore_index", [(C, -100), (1234, -100),
                                              (-1, -100), (-101, -100),
                                              (-100, -1), (2**40, -100)])
def test_label_out_of_range_names_value_and_position(func, bad, ignore_index):
    x, _ = good_inputs()
    x = np.repeat(x, 4, axis=0)                 # 24 rows
    y = np.zeros(24, dtype=np.int64)
    y[17] = bad
    msg = raises_untouched(func, x, y, ValueError, "target",
                           ignore_index=ignore_index)
    assert str(bad) in msg, msg
    assert re.search(r"\b17\b", msg), msg


@pytest.mark.parametrize("func", LOSSES)
def test_label_out_of_range_position_nd(func):
    x = np.zeros((3, 5, C))
    y = np.zeros((3, 5), dtype=np.int32)
    y[2, 3] = 77
    msg = raises_untouched(func, x, y, ValueError, "target")
    assert "77" in msg and re.search(r"2\D{1,4}3", msg), msg


@pytest.mark.parametrize("func", LOSSES)
def test_label_position_with_class_axis_1(func):
    # The position is in the target's own coordinates, whatever the axis.
    x = np.zeros((2, C, 3))
    y = np.zeros((2, 3), dtype=np.int64)
    y[1, 2] = 55
    msg = raises_untouched(func, x, y, ValueError, "target", axis=1)
    assert "55" in msg and re.search(r"1\D{1,4}2", msg), msg


@pytest.mark.parametrize("func", LOSSES)
def test_huge_unsigned_label_is_not_ignore_index(func):
    # 2**64 - 1 must not wrap to -1 and be taken for ignore_index=-1.
    x, _ = good_inputs()
    y = np.zeros(N, dtype=np.uint64)
    y[2] = np.iinfo(np.uint64).max
    msg = raises_untouched(func, x, y, ValueError, "target", ignore_index=-1)
    assert str(np.iinfo(np.uint64).max) in msg, msg


@pytest.mark.parametrize("func", LOSSES)
def test_bool_labels(func):
    x, y = good_inputs()
    raises_untouched(func, x, (y % 2).astype(bool), TypeError, "target")


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("fdtype", [np.float32, np.float64])
def test_float_labels(func, fdtype):
    x, y = good_inputs()
    raises_untouched(func, x, y.astype(fdtype), TypeError, "target")


def test_nll_loss_rejects_probability_targets():
    x, _ = good_inputs()
    t = np.full((N, C), 1.0 / C)
    raises_untouched(xf.nll_loss, x, t, TypeError, "target")


# ----------------------------------------------------------- logits dtype

BAD_LOGITS = [np.ones((N, C), dtype=complex),
              np.ones((N, C)).astype(object),
              np.full((N, C), "a")]


@pytest.mark.parametrize("bad", BAD_LOGITS, ids=["complex", "object", "str"])
@pytest.mark.parametrize("func,name", [(xf.cross_entropy, "logits"),
                                       (xf.nll_loss, "log_probs")])
def test_bad_logits_dtype(func, name, bad):
    _, y = good_inputs()
    with pytest.raises(TypeError, match=name):
        func(bad, y)


@pytest.mark.parametrize("bad", BAD_LOGITS, ids=["complex", "object", "str"])
@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_bad_softmax_input_dtype(name, bad):
    with pytest.raises(TypeError, match="x"):
        getattr(xf, name)(bad)


# ------------------------------------------------------------------ shapes

@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("shape", [(N + 1,), (N - 1,), (N, 1), (1, N), ()])
def test_label_shape_mismatch(func, shape):
    x, _ = good_inputs()
    raises_untouched(func, x, np.zeros(shape, dtype=np.int64), ValueError,
                     "target")


@pytest.mark.parametrize("shape", [(N, C + 1), (N + 1, C), (C, N)])
def test_prob_target_shape_mismatch(shape):
    # A float target of neither the logits' shape nor the row shape: either
    # error type is a fair reading of the contract, but it must name target.
    x, _ = good_inputs()
    raises_untouched(xf.cross_entropy, x, np.full(shape, 0.25),
                     (TypeError, ValueError), "target")


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("w", [np.ones(C + 1), np.ones(C - 1),
                               np.ones((1, C)), np.ones(())],
                         ids=["long", "short", "2d", "0d"])
def test_weight_wrong_shape(func, w):
    x, y = good_inputs()
    msg = raises_untouched(func, x, y, ValueError, "weight", weight=w)
    assert str(w.shape) in msg, msg


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("sw", [np.ones(N + 1), np.ones((N, 1)),
                                np.ones((N, C))], ids=["long", "2d", "full"])
def test_sample_weight_wrong_shape(func, sw):
    x, y = good_inputs()
    raises_untouched(func, x, y, ValueError, "sample_weight",
                     sample_weight=sw)


@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("axis", [2, -3])
def test_bad_axis(func, axis):
    x, y = good_inputs()
    raises_untouched(func, x, y, ValueError, "axis", axis=axis)


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_bad_axis_softmax(name):
    with pytest.raises(ValueError, match="axis"):
        getattr(xf, name)(np.ones((2, 3)), axis=2)


# ------------------------------------------------------------------ scalars

@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("reduction", ["avg", "MEAN", "elementwise_mean",
                                       None, ""])
def test_bad_reduction(func, reduction):
    x, y = good_inputs()
    msg = raises_untouched(func, x, y, ValueError, "reduction",
                           reduction=reduction)
    assert repr(reduction) in msg or str(reduction) in msg, msg   # echoed


@pytest.mark.parametrize("ls", [-0.1, 1.0001, 2.0, float("nan")])
def test_label_smoothing_out_of_range(ls):
    x, y = good_inputs()
    msg = raises_untouched(xf.cross_entropy, x, y, ValueError,
                           "label_smoothing", label_smoothing=ls)
    assert str(ls) in msg, msg


@pytest.mark.parametrize("cap", [0.0, -1.0, -np.inf])
def test_softcap_not_positive(cap):
    x, y = good_inputs()
    msg = raises_untouched(xf.cross_entropy, x, y, ValueError, "softcap",
                           softcap=cap)
    assert str(cap) in msg, msg


@pytest.mark.parametrize("ignore_index", [0, 2, 100])
def test_prob_targets_with_nonnegative_ignore_index(ignore_index):
    x, _ = good_inputs()
    t = np.full((N, C), 1.0 / C)
    raises_untouched(xf.cross_entropy, x, t, ValueError, "ignore_index",
                     ignore_index=ignore_index)


# ---------------------------------------------------------------- grad_out

@pytest.mark.parametrize("func", LOSSES)
def test_grad_out_without_return_grad(func):
    x, y = good_inputs()
    buf = np.full(x.shape, SENTINEL)
    raises_untouched(func, x, y, ValueError, "grad_out", grad_out=buf)
    raises_untouched(func, x, y, ValueError, "grad_out", grad_out=buf,
                     return_grad=False)


def bad_buffers(shape, dtype):
    """Buffers that are wrong for an output of ``shape`` and ``dtype``."""
    wrong_dtype = np.float32 if np.dtype(dtype) == np.float64 else np.float64
    ro = np.full(shape, SENTINEL, dtype)
    ro.flags.writeable = False
    big = np.full(shape[:-1] + (2 * shape[-1],), SENTINEL, dtype)
    return {
        "shape": np.full(shape[:-1] + (shape[-1] + 1,), SENTINEL, dtype),
        "transposed_shape": np.full(shape[::-1], SENTINEL, dtype),
        "flat": np.full(int(np.prod(shape)), SENTINEL, dtype),
        "dtype": np.full(shape, SENTINEL, wrong_dtype),
        "float16": np.full(shape, SENTINEL, np.float16),
        "int": np.full(shape, 7, np.int64),
        "fortran": np.asfortranarray(np.full(shape, SENTINEL, dtype)),
        "strided": big[..., ::2],
        "readonly": ro,
        "list": np.full(shape, SENTINEL, dtype).tolist(),
    }


BAD_BUFFER_KINDS = list(bad_buffers((N, C), np.float64))


@pytest.mark.parametrize("kind", BAD_BUFFER_KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("func", LOSSES)
def test_bad_grad_out(func, dtype, kind):
    x, y = good_inputs(dtype)
    cdt = np.float32 if dtype == np.float16 else dtype
    buf = bad_buffers(x.shape, cdt)[kind]
    raises_untouched(func, x, y, ValueError, "grad_out", grad_out=buf,
                     return_grad=True)


def test_grad_out_cannot_be_float16_logits():
    # float16 logits compute in float32, so they cannot hold the gradient.
    x, y = good_inputs(np.float16)
    raises_untouched(xf.cross_entropy, x, y, ValueError, "grad_out",
                     grad_out=x, return_grad=True)


@pytest.mark.parametrize("kind", BAD_BUFFER_KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_bad_out(name, dtype, kind):
    x, _ = good_inputs(dtype)
    cdt = np.float32 if dtype == np.float16 else dtype
    buf = bad_buffers(x.shape, cdt)[kind]
    before = np.array(buf, copy=True)
    with pytest.raises(ValueError, match="out"):
        getattr(xf, name)(x, out=buf)
    np.testing.assert_array_equal(np.asarray(buf), before)


# ------------------------------------------- errors leave outputs untouched

@pytest.mark.parametrize("func", LOSSES)
@pytest.mark.parametrize("bad", [
    dict(target=np.array([0, 1, 2, 9, 0, 1])),
    dict(weight=np.ones(C + 2)),
    dict(reduction="bogus"),
    dict(sample_weight=np.ones(N + 2)),
], ids=["label", "weight", "reduction", "sample_weight"])
def test_in_place_grad_out_untouched_on_error(func, bad):
    x, y = good_inputs()
    bad = dict(bad)                       # the parameter is shared: copy it
    y = bad.pop("target", y)
    before = x.copy()
    with pytest.raises(ValueError):
        func(x, y, return_grad=True, grad_out=x, **bad)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_in_place_out_untouched_on_error(name):
    x, _ = good_inputs()
    before = x.copy()
    with pytest.raises(ValueError):
        getattr(xf, name)(x, axis=5, out=x)
    np.testing.assert_array_equal(x, before)


def test_cross_entropy_extra_errors_leave_buffer_untouched():
    x, y = good_inputs()
    for kw in (dict(label_smoothing=3.0), dict(softcap=-2.0)):
        raises_untouched(xf.cross_entropy, x, y, ValueError, next(iter(kw)),
                         **kw)


# ----------------------------------------------------------- never a crash

@pytest.mark.parametrize("case", range(7))
def test_odd_inputs_never_crash(case):
    # Either a result or a clean ValueError/TypeError: never a segfault.
    x = [np.empty((0, 3)), np.empty((3, 0)), np.ones((2, 1)),
         np.ones((1, 1, 1, 1)), np.ones((2, 3))[:, ::-1],
         np.ones((2, 3))[::-1], np.ones((2, 3)).T][case]
    y = np.zeros(x.shape[:-1], dtype=np.int64)
    for call in (lambda: xf.cross_entropy(x, y, return_grad=True),
                 lambda: xf.cross_entropy(x, y, reduction="none"),
                 lambda: xf.nll_loss(x, y, return_grad=True),
                 lambda: xf.log_softmax(x), lambda: xf.logsumexp(x)):
        try:
            call()
        except (ValueError, TypeError):
            pass
