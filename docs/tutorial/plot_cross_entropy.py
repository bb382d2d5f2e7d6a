"""
.. _tutorial:

Cross-entropy from theory to practice
=====================================

Cross-entropy is the loss behind almost every classifier, from logistic
regression to large language models. This tutorial starts from its
definition in information theory and ends with the practical questions:
why its gradient is ``softmax(z) - y``, why it trains sigmoid outputs where
mean squared error stalls, why the stable formulations matter, and what to
do about imbalanced classes. Every claim is checked with xentfast as we go,
and every number and figure on this page is computed when the documentation
is built.

:doc:`中文版 <plot_cross_entropy_zh>` (this tutorial in Simplified Chinese).
"""

import matplotlib.pyplot as plt
import numpy as np

import xentfast as xf
from xentfast import info

np.set_printoptions(precision=4, suppress=False)

# %%
# Entropy, cross-entropy and KL divergence
# ----------------------------------------
#
# A distribution :math:`p` over outcomes :math:`k` has **entropy**
#
# .. math:: H(p) = -\sum_k p_k \log p_k ,
#
# the average number of nats (bits with :math:`\log_2`) an optimal code needs
# per outcome drawn from :math:`p`. If the code is built for another
# distribution :math:`q` instead, each outcome costs :math:`-\log q_k` and the
# average cost is the **cross-entropy**
#
# .. math:: H(p, q) = -\sum_k p_k \log q_k .
#
# The extra cost of using the wrong code is the **Kullback-Leibler
# divergence**, never negative and zero only when :math:`q = p` (Gibbs'
# inequality):
#
# .. math:: H(p, q) = H(p) + D_\mathrm{KL}(p \,\|\, q), \qquad
#           D_\mathrm{KL}(p \,\|\, q) = \sum_k p_k \log \frac{p_k}{q_k} \ge 0 .
#
# :mod:`xentfast.info` computes the three quantities as written (no
# renormalisation, :math:`0 \log 0 = 0`). A fair die coded for a loaded one:

p = np.full(6, 1 / 6)                                # fair die
q = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])         # loaded die
print(f"H(p)      = {info.entropy(p, base=2):.4f} bits  (log2 6 = {np.log2(6):.4f})")
print(f"H(p, q)   = {info.cross_entropy(p, q, base=2):.4f} bits")
print(f"KL(p||q)  = {info.kl_divergence(p, q, base=2):.4f} bits")
print("H(p) + KL =", info.entropy(p, base=2) + info.kl_divergence(p, q, base=2))

# %%
# For two outcomes (a coin with :math:`P(\text{heads}) = p`) everything can
# be drawn. On the left, the entropy is largest for the fair coin; on the
# right, the cross-entropy :math:`H(p, q)` for a fixed :math:`p = 0.3` lies
# above :math:`H(p)` everywhere and touches it only at :math:`q = p`. The gap
# is the KL divergence.

ps = np.linspace(0, 1, 201)
coin = np.stack([ps, 1 - ps], axis=-1)               # rows: (p, 1 - p)
p0 = np.array([0.3, 0.7])
qs = np.linspace(0.01, 0.99, 197)
coin_q = np.stack([qs, 1 - qs], axis=-1)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
ax1.plot(ps, info.entropy(coin, base=2))
ax1.set(xlabel="p = P(heads)", ylabel="bits", title="entropy H(p) of a coin")
ax2.plot(qs, info.cross_entropy(p0, coin_q, base=2), label="cross-entropy H(p, q)")
ax2.axhline(info.entropy(p0, base=2), color="grey", ls="--", label="entropy H(p)")
ax2.plot(qs, info.kl_divergence(p0, coin_q, base=2), label="KL(p || q)")
ax2.axvline(0.3, color="grey", lw=0.6)
ax2.set(xlabel="q = model's P(heads)", ylabel="bits", ylim=(0, 3),
        title="true p = 0.3")
ax2.legend()
fig.tight_layout()

# %%
# Binary cross-entropy on sigmoid outputs
# ---------------------------------------
#
# A binary classifier outputs a logit :math:`z` and a probability
# :math:`\hat p = \sigma(z) = 1 / (1 + e^{-z})`. With target
# :math:`t \in [0, 1]`, the binary cross-entropy is the cross-entropy between
# the two-outcome distributions :math:`(t, 1-t)` and
# :math:`(\hat p, 1 - \hat p)`:
#
# .. math:: \mathrm{BCE}(\hat p, t) = -t \log \hat p - (1 - t) \log(1 - \hat p)
#           = \log(1 + e^{z}) - t z .
#
# The right-hand side is the *logits form*. xentfast has both, and they
# agree with :func:`xentfast.info.cross_entropy` on the pairs:

z = np.array([-3.0, -0.5, 0.0, 2.0, 4.0])
t = np.array([0.0, 1.0, 1.0, 1.0, 0.0])
p_hat = 1 / (1 + np.exp(-z))
bce_probs = xf.binary_cross_entropy(p_hat, t, reduction="none")
bce_logits = xf.binary_cross_entropy_with_logits(z, t, reduction="none")
as_pairs = info.cross_entropy(np.stack([t, 1 - t], -1), np.stack([p_hat, 1 - p_hat], -1))
print("BCE on probabilities:", bce_probs)
print("BCE on logits:       ", bce_logits)
print("H((t,1-t), (p,1-p)): ", as_pairs)

# %%
# As a function of the logit, the loss of a positive example (:math:`t = 1`)
# is :math:`\log(1 + e^{-z})`: almost linear when the model is confidently
# wrong (:math:`z \ll 0`) and almost zero when it is confidently right.

zs = np.linspace(-8, 8, 401)
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for target in (1.0, 0.0):
    ax.plot(zs, xf.binary_cross_entropy_with_logits(zs, np.full_like(zs, target),
                                                   reduction="none"),
            label=f"target t = {target:g}")
ax.set(xlabel="logit z", ylabel="BCE", title="binary cross-entropy against the logit")
ax.legend()
fig.tight_layout()

# %%
# Multiclass cross-entropy on softmax outputs
# -------------------------------------------
#
# With :math:`C` classes the model outputs logits :math:`z \in \mathbb{R}^C`
# and probabilities :math:`\hat p = \mathrm{softmax}(z)`,
# :math:`\hat p_k = e^{z_k} / \sum_j e^{z_j}`. For a one-hot target
# :math:`y = e_c` (true class :math:`c`) the sum in :math:`H(y, \hat p)` has
# one non-zero term: **only the log-probability of the true class counts**,
#
# .. math:: L(z, c) = -\log \hat p_c = -z_c + \log \sum_j e^{z_j} .

logits = np.array([[2.0, 1.0, 0.1, -1.0],
                   [0.5, 2.5, 0.3, 0.0]])
labels = np.array([0, 2])
one_hot = np.eye(4)[labels]
print("xf.cross_entropy, per row:  ", xf.cross_entropy(logits, labels, reduction="none"))
print("-log_softmax at the label:  ", -xf.log_softmax(logits)[[0, 1], labels])
print("H(one_hot, softmax(z)):     ", info.cross_entropy(one_hot, xf.softmax(logits)))

# %%
# The other classes enter only through the normaliser: changing how the
# wrong classes share the remaining probability does not change the loss.
# Below, row 0's non-target logits are permuted and the loss stays the same.

shuffled = logits.copy()
shuffled[0, 1:] = shuffled[0, [3, 1, 2]]
print(xf.cross_entropy(logits, labels, reduction="none"),
      xf.cross_entropy(shuffled, labels, reduction="none"))

# %%
# A target may also be a full distribution per row (soft labels, or
# ``label_smoothing``): pass a float array of the logits' shape, and the loss
# is the whole sum :math:`-\sum_k y_k \log \hat p_k`.

soft = np.array([[0.7, 0.2, 0.1, 0.0], [0.0, 0.1, 0.9, 0.0]])
print(xf.cross_entropy(logits, soft, reduction="none"),
      info.cross_entropy(soft, xf.softmax(logits)))

# %%
# The gradient: :math:`\partial L / \partial z = \mathrm{softmax}(z) - y`
# ---------------------------------------------------------------------------
#
# Write the loss as :math:`L = -\sum_k y_k z_k + \log \sum_j e^{z_j}`, using
# :math:`\sum_k y_k = 1`. The first term is linear, with derivative
# :math:`-y_k`. The derivative of the log-sum-exp is
#
# .. math:: \frac{\partial}{\partial z_k} \log \sum_j e^{z_j}
#           = \frac{e^{z_k}}{\sum_j e^{z_j}} = \hat p_k ,
#
# so
#
# .. math:: \frac{\partial L}{\partial z_k} = \hat p_k - y_k .
#
# The gradient is the prediction minus the target: bounded in
# :math:`[-1, 1]`, zero when the prediction is right, and no exponential or
# division left to evaluate. This is why libraries fuse softmax and
# cross-entropy into one operation: xentfast computes the loss and this
# gradient in the same pass over each row (``return_grad=True``). With
# ``reduction='mean'`` it is divided by the number of rows.
#
# Check it against central finite differences in float64:

rng = np.random.default_rng(0)
Z = rng.normal(size=(5, 7)) * 2
Y = rng.integers(0, 7, size=5)
loss, grad = xf.cross_entropy(Z, Y, reduction="sum", return_grad=True)

h = 1e-6
fd = np.zeros_like(Z)
for i in range(Z.shape[0]):
    for k in range(Z.shape[1]):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[i, k] += h
        Zm[i, k] -= h
        fd[i, k] = (xf.cross_entropy(Zp, Y, reduction="sum")
                    - xf.cross_entropy(Zm, Y, reduction="sum")) / (2 * h)

print("max |grad - (softmax(Z) - onehot)| =",
      np.abs(grad - (xf.softmax(Z) - np.eye(7)[Y])).max())
print("max |grad - finite differences|    =", np.abs(grad - fd).max())

# %%
# The same holds for soft targets and label smoothing (the gradient is then
# :math:`\hat p - y_\text{smoothed}`), and for the binary loss on logits,
# whose gradient is :math:`\sigma(z) - t`:

_, g_ls = xf.cross_entropy(Z, Y, reduction="sum", label_smoothing=0.1, return_grad=True)
y_smooth = 0.9 * np.eye(7)[Y] + 0.1 / 7
print("label smoothing: ", np.abs(g_ls - (xf.softmax(Z) - y_smooth)).max())
_, g_b = xf.binary_cross_entropy_with_logits(z, t, reduction="sum", return_grad=True)
print("binary on logits:", np.abs(g_b - (1 / (1 + np.exp(-z)) - t)).max())

# %%
# Cross-entropy is maximum likelihood
# -----------------------------------
#
# A classifier that outputs :math:`\hat p(\cdot \mid x)` assigns the labels
# of a data set the likelihood :math:`\prod_i \hat p(y_i \mid x_i)`. Its
# negative logarithm is
#
# .. math:: -\log \prod_i \hat p(y_i \mid x_i) = \sum_i -\log \hat p(y_i \mid x_i)
#           = \sum_i L(z_i, y_i) ,
#
# the summed cross-entropy. Minimising the mean cross-entropy *is* maximum
# likelihood estimation. The simplest case makes it concrete: a categorical
# distribution :math:`\mathrm{softmax}(\theta)` fitted to samples, with no
# features at all. Its maximum-likelihood estimate is the empirical
# frequency of each class, and gradient descent on the cross-entropy finds
# exactly that:

samples = rng.choice(4, size=1000, p=[0.5, 0.25, 0.15, 0.1])
theta = np.zeros(4)
for step in range(500):
    rows = np.broadcast_to(theta, (len(samples), 4))       # the same logits for every sample
    nll, g = xf.cross_entropy(rows, samples, return_grad=True)
    theta -= 2.0 * g.sum(axis=0)
print("softmax(theta):       ", xf.softmax(theta))
print("empirical frequencies:", np.bincount(samples, minlength=4) / len(samples))
print(f"mean NLL {nll:.5f} = entropy of the empirical distribution "
      f"{info.entropy(np.bincount(samples) / len(samples)):.5f}")

# %%
# At the optimum the mean negative log-likelihood equals the entropy of the
# empirical distribution: :math:`H(\hat p_\text{data}, q) = H(\hat
# p_\text{data}) + D_\mathrm{KL}(\hat p_\text{data} \,\|\, q)` and the KL term
# has been driven to zero.
#
# Why cross-entropy beats MSE on sigmoid outputs
# ----------------------------------------------
#
# One could also fit probabilities with the mean squared error
# :math:`\tfrac12(\sigma(z) - t)^2`. Its gradient with respect to the logit
# carries the sigmoid's derivative :math:`\sigma'(z) = \sigma(z)(1 -
# \sigma(z))`:
#
# .. math:: \frac{\partial}{\partial z}\, \tfrac12 (\sigma(z) - t)^2
#           = (\sigma(z) - t)\, \sigma(z) (1 - \sigma(z)),
#           \qquad
#           \frac{\partial}{\partial z}\, \mathrm{BCE} = \sigma(z) - t .
#
# When the model is confidently **wrong** (say :math:`t = 1`,
# :math:`z = -10`) the sigmoid is saturated, :math:`\sigma'(z) \approx
# 4.5 \cdot 10^{-5}`, and the MSE gradient all but vanishes exactly where
# the model most needs correcting. The cross-entropy's :math:`\log`
# cancels the saturation: its gradient tends to :math:`-1`.

zs = np.linspace(-12, 12, 481)
ones = np.ones_like(zs)
_, g_ce = xf.binary_cross_entropy_with_logits(zs, ones, reduction="sum", return_grad=True)
s = xf.softmax(np.stack([zs, np.zeros_like(zs)], -1))[:, 0]     # sigmoid(z) = softmax([z, 0])[0]
g_mse = (s - 1) * s * (1 - s)

fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.semilogy(zs, np.abs(g_ce), label="cross-entropy: |σ(z) - 1|")
ax.semilogy(zs, np.abs(g_mse), label="MSE: |(σ(z) - 1) σ'(z)|")
ax.axvspan(-12, -4, color="C3", alpha=0.08)
ax.text(-11.5, 1e-7, "confidently wrong", color="C3")
ax.set(xlabel="logit z (true label t = 1)", ylabel="|dL/dz|",
       title="gradient reaching the logit")
ax.legend(loc="lower left")
fig.tight_layout()
print(f"at z = -10: cross-entropy gradient {np.interp(-10, zs, g_ce):.4f}, "
      f"MSE gradient {np.interp(-10, zs, g_mse):.2e}")

# %%
# The consequence in training: the same logistic model, the same data, the
# same learning rate and the same bad start (weights pointing the wrong way,
# so most examples are confidently misclassified), trained once with each
# loss. Cross-entropy recovers in a few dozen steps; MSE barely moves for
# hundreds.

n = 400
X = rng.normal(size=(n, 2))
y_bin = (X @ np.array([2.0, -1.0]) + 0.3 * rng.normal(size=n) > 0).astype(float)
w_bad = np.array([-6.0, 3.0])          # the right direction, negated and large


def train(loss_name, steps=300, lr=0.5):
    w, b = w_bad.copy(), 0.0
    history = []
    for step in range(steps):
        z_i = X @ w + b
        # monitor the same quantity for both: the mean BCE on the data
        bce, g_z = xf.binary_cross_entropy_with_logits(z_i, y_bin, return_grad=True)
        if loss_name == "MSE":
            s_i = 1 / (1 + np.exp(-z_i))
            g_z = (s_i - y_bin) * s_i * (1 - s_i) / n      # d mean(0.5 (σ - t)²) / dz
        history.append((bce, np.mean((z_i > 0) == y_bin)))
        w -= lr * (X.T @ g_z)
        b -= lr * g_z.sum()
    return np.array(history)


runs = {name: train(name) for name in ("cross-entropy", "MSE")}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
for name, hist in runs.items():
    ax1.plot(hist[:, 0], label=name)
    ax2.plot(hist[:, 1], label=name)
ax1.set(xlabel="gradient step", ylabel="mean BCE on the training set", yscale="log",
        title="loss, same start and learning rate")
ax2.set(xlabel="gradient step", ylabel="training accuracy", ylim=(0, 1.02),
        title="accuracy")
ax2.legend()
fig.tight_layout()
for name, hist in runs.items():
    print(f"{name:>13}: accuracy {hist[0, 1]:.2f} at the start, "
          f"{hist[50, 1]:.2f} after 50 steps, {hist[-1, 1]:.2f} after {len(hist)}")

# %%
# Numerical stability
# -------------------
#
# Written literally, :math:`\mathrm{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}`
# overflows for large logits (:math:`e^{1000} = \infty`, and
# :math:`\infty / \infty` is NaN) and underflows for very negative ones
# (:math:`0 / 0`). The standard cure subtracts the row maximum first, which
# changes nothing mathematically. Taking :math:`\log` of a softmax that has
# underflowed to 0 still gives :math:`-\infty`, so the loss must be computed
# as a **log-softmax**, :math:`z_k - \max z - \log \sum_j e^{z_j - \max z}`,
# never as ``log(softmax(z))``.

def naive_softmax(v):
    e = np.exp(v)
    return e / e.sum(axis=-1, keepdims=True)


with np.errstate(all="ignore"):
    for row in ([1000.0, 0.0], [-1000.0, -1001.0]):
        row = np.array(row)
        print(f"z = {row}: naive softmax {naive_softmax(row)}, xf.softmax {xf.softmax(row)}")
    row = np.array([0.0, -200.0], np.float32)
    print(f"z = {row} (float32): log(naive softmax) {np.log(naive_softmax(row))}, "
          f"xf.log_softmax {xf.log_softmax(row)}")

# %%
# The binary loss has the same trap. In float32, :math:`\sigma(-120)`
# underflows to 0 and :math:`\log 0 = -\infty`. The probability form must
# clamp (PyTorch clamps the log at -100, and
# :func:`xentfast.binary_cross_entropy` does the same, so the loss is wrong
# but finite); the logits form
# :math:`\max(z, 0) - t z + \log(1 + e^{-|z|})` is exact:

z_neg = np.array([-120.0], np.float32)
with np.errstate(all="ignore"):
    p_neg = (1 / (1 + np.exp(-z_neg))).astype(np.float32)
    print("sigmoid(-120) in float32:", p_neg, "-> naive -log(p) =", -np.log(p_neg))
print("binary_cross_entropy(probs)     :", xf.binary_cross_entropy(p_neg, np.ones(1, np.float32)))
print("binary_cross_entropy_with_logits:", xf.binary_cross_entropy_with_logits(z_neg, np.ones(1, np.float32)))

# %%
# **The dominant class.** Subtracting the maximum is not the end of the
# story. For a confident row, the true class's log-probability is
# :math:`-\log(1 + \sum_{j \ne c} e^{z_j - z_c})`, a tiny negative number.
# Computing it as :math:`0 - \log(\text{sum})` rounds ``1 + 4e-18`` to 1 and
# returns exactly 0; xentfast computes :math:`-\operatorname{log1p}(\sum_{j
# \ne c} e^{z_j - z_c})` and keeps it:

two = np.array([0.0, -40.0])
with np.errstate(all="ignore"):
    max_subtracted = two - two.max() - np.log(np.exp(two - two.max()).sum())
print("exact -log1p(exp(-40)):  ", -np.log1p(np.exp(-40.0)))
print("max-subtracted NumPy:    ", max_subtracted[0])
print("xf.log_softmax:          ", xf.log_softmax(two)[0])

# %%
# The loss of a confidently right row, and its gradient :math:`\hat p_c - 1`,
# are then right too instead of 0: in float32 the naive ``softmax - 1``
# gives 0 once the margin exceeds about 17, while xentfast returns
# :math:`-\sum_{j\ne c} e^{z_j - z_c} / (1 + \sum_{j\ne c} e^{z_j - z_c})`.
# Averaged over millions of tokens these are the rows a well-trained model is
# made of. The plot shows the loss of the row ``[0, -margin]`` for label 0:

margins = np.linspace(1, 60, 236)
rows = np.stack([np.zeros_like(margins), -margins], -1)
exact = np.log1p(np.exp(-margins))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
for dtype, style in ((np.float64, "-"), (np.float32, "--")):
    r = rows.astype(dtype)
    with np.errstate(all="ignore"):
        naive = -(r - np.log(np.exp(r).sum(-1, keepdims=True)))[:, 0]
    fast = xf.cross_entropy(r, np.zeros(len(r), int), reduction="none")
    name = np.dtype(dtype).name
    ax1.semilogy(margins, fast, style, color="C0", label=f"xentfast, {name}")
    ax1.semilogy(margins, np.where(naive > 0, naive, np.nan), style, color="C3",
                 label=f"log-sum-exp, {name}")
    ax2.semilogy(margins, np.abs(fast - exact) / exact + 1e-20, style, color="C0",
                 label=f"xentfast, {name}")
    ax2.semilogy(margins, np.abs(naive - exact) / exact + 1e-20, style, color="C3",
                 label=f"log-sum-exp, {name}")
ax1.semilogy(margins, exact, ":", color="k", lw=1, label="exact log1p(exp(-margin))")
ax1.set(xlabel="margin of the true class", ylabel="loss", title="loss of a confidently right row")
ax2.set(xlabel="margin of the true class", ylabel="relative error", ylim=(1e-18, 10),
        title="relative error (1 = the row's loss is lost)")
ax1.legend(fontsize=7)
ax2.legend(fontsize=7)
fig.tight_layout()

# %%
# On the left, the log-sum-exp curves stop where their value becomes exactly
# 0 (which a log axis cannot show): beyond a margin of about 17 in float32
# and 37 in float64. On the right, their relative error grows long before
# that, because ``log(1 + x)`` of a rounded ``1 + x`` keeps only the digits of
# ``x`` that survived the rounding; xentfast's error stays at the rounding
# level of each dtype. PyTorch and SciPy compute the max-subtracted form and
# round these rows to 0 as well.
#
# Class imbalance
# ---------------
#
# When one class is rare, the mean cross-entropy is dominated by the common
# classes: a model can lower it by giving up on the rare class. Three remedies
# change the loss rather than the data:
#
# * **class weights** (``weight=``): multiply the loss of every row of class
#   :math:`c` by :math:`w_c`, typically inversely proportional to the
#   class's frequency (scikit-learn's ``'balanced'``:
#   :math:`n / (C\, n_c)`);
# * **sample weights** (``sample_weight=``): a weight per row, for weights
#   that do not follow the class (importance, recency, duplicates); with
#   ``sample_weight = w[y]`` they reproduce the class weights exactly;
# * **focal loss** (:func:`xentfast.softmax_focal_loss`): multiply each row's
#   loss by :math:`(1 - \hat p_c)^\gamma`, which shrinks the many easy,
#   well-classified rows so that the hard ones (often the rare class) weigh
#   more; ``alpha=`` adds class weights on top.
#
# Three overlapping Gaussian classes, the third with 3% of the rows, and a
# softmax regression trained with each:

counts = np.array([600, 600, 36])
centres = np.array([[0.0, 0.0], [2.5, 0.0], [1.2, 1.4]])
Xc = np.concatenate([rng.normal(c, 0.9, size=(k, 2)) for c, k in zip(centres, counts)])
yc = np.repeat(np.arange(3), counts)
Xc_test = np.concatenate([rng.normal(c, 0.9, size=(300, 2)) for c in centres])
yc_test = np.repeat(np.arange(3), 300)
balanced = len(yc) / (3 * counts)
print("class weights 'balanced':", balanced)

# sample_weight = w[y] is the same objective as weight = w: same loss, same gradient
Z0 = rng.normal(size=(len(yc), 3))
l_w, g_w = xf.cross_entropy(Z0, yc, weight=balanced, return_grad=True)
l_s, g_s = xf.cross_entropy(Z0, yc, sample_weight=balanced[yc], return_grad=True)
print("weight= vs sample_weight=:", l_w, l_s, np.abs(g_w - g_s).max())


def fit_softmax_regression(loss, steps=600, lr=1.0):
    W, b = np.zeros((2, 3)), np.zeros(3)
    for step in range(steps):
        logits_c = Xc @ W + b
        _, g = loss(logits_c)
        W -= lr * (Xc.T @ g)
        b -= lr * g.sum(axis=0)
    pred = (Xc_test @ W + b).argmax(axis=1)
    return np.array([np.mean(pred[yc_test == k] == k) for k in range(3)])


remedies = {
    "cross-entropy": lambda L: xf.cross_entropy(L, yc, return_grad=True),
    "class weights": lambda L: xf.cross_entropy(L, yc, weight=balanced, return_grad=True),
    "focal (γ=2)": lambda L: xf.softmax_focal_loss(L, yc, gamma=2.0, return_grad=True),
    "focal + alpha": lambda L: xf.softmax_focal_loss(L, yc, gamma=2.0, alpha=balanced,
                                                     return_grad=True),
}
recalls = {name: fit_softmax_regression(loss) for name, loss in remedies.items()}

fig, ax = plt.subplots(figsize=(6.5, 3.4))
width = 0.2
for j, (name, rec) in enumerate(recalls.items()):
    ax.bar(np.arange(3) + (j - 1.5) * width, rec, width, label=name)
ax.set_xticks(range(3), ["class 0 (600)", "class 1 (600)", "class 2 (36, rare)"])
ax.set(ylabel="recall on a balanced test set", ylim=(0, 1),
       title="per-class recall by training loss")
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()
for name, rec in recalls.items():
    print(f"{name:>14}: recall {rec}, balanced accuracy {rec.mean():.3f}")

# %%
# Plain cross-entropy sacrifices the rare class. Class weights recover it at
# a small cost on the common ones (the decision boundary moves towards
# them); the focal loss alone helps less here, and combined with ``alpha``
# behaves like the class weights. The
# :class:`xentfast.sklearn.CrossEntropyClassifier` offers the same choices
# as ``class_weight='balanced'`` and ``loss='focal'``
# (see :doc:`../auto_examples/sklearn_digits`).
#
# The PyTorch correspondence
# --------------------------
#
# xentfast's functions are numerical twins of PyTorch's, under the same
# names and argument names:
#
# .. list-table::
#    :header-rows: 1
#
#    * - PyTorch
#      - xentfast (NumPy)
#    * - ``nn.BCELoss``, ``F.binary_cross_entropy``
#      - :func:`xentfast.binary_cross_entropy`
#    * - ``nn.BCEWithLogitsLoss``, ``F.binary_cross_entropy_with_logits``
#      - :func:`xentfast.binary_cross_entropy_with_logits`
#    * - ``nn.CrossEntropyLoss``, ``F.cross_entropy``
#      - :func:`xentfast.cross_entropy`
#    * - ``nn.NLLLoss``, ``F.nll_loss``
#      - :func:`xentfast.nll_loss`
#    * - ``F.log_softmax``, ``F.softmax``, ``torch.logsumexp``
#      - :func:`xentfast.log_softmax`, :func:`xentfast.softmax`,
#        :func:`xentfast.logsumexp`
#    * - ``torchvision.ops.sigmoid_focal_loss``
#      - :func:`xentfast.sigmoid_focal_loss`
#
# Two differences in convention: PyTorch's class dimension is 1, xentfast's
# is the last axis by default (pass ``axis=1`` for torch's layout), and the
# gradient comes from ``return_grad=True`` instead of autograd. When PyTorch
# is installed, the values and gradients agree:

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
    print("PyTorch is not installed: comparison skipped")

if torch is not None:
    def compare(name, torch_loss, xf_loss, x, target):
        x_t = torch.tensor(x, requires_grad=True)
        loss_t = torch_loss(x_t, torch.tensor(target))
        loss_t.backward()
        loss_x, grad_x = xf_loss(x, target, return_grad=True)
        print(f"{name:>17}: torch {loss_t.item():.12f}  xentfast {loss_x:.12f}  "
              f"max grad diff {np.abs(x_t.grad.numpy() - grad_x).max():.1e}")

    compare("CrossEntropyLoss", lambda a, b: F.cross_entropy(a, b, label_smoothing=0.1),
            lambda a, b, **kw: xf.cross_entropy(a, b, label_smoothing=0.1, **kw), Z, Y)
    compare("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits,
            xf.binary_cross_entropy_with_logits, z, t)
    compare("BCELoss", F.binary_cross_entropy, xf.binary_cross_entropy, p_hat, t)

# %%
# Where next: the :doc:`../user_guide/index` lists every option
# (``ignore_index``, ``label_smoothing``, ``sample_weight``, ``z_loss``,
# ``softcap``, the class axis, in-place gradients), and the
# :doc:`../gallery` trains a NumPy network and a scikit-learn estimator with
# these losses.
