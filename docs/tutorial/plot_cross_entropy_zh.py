"""
.. _tutorial_zh:

交叉熵：从理论到实践
====================

交叉熵几乎是所有分类器背后的损失函数，从逻辑回归到大语言模型都离不开它。本教程从它在信息论中的定义讲起，一直讲到实践中的问题：为什么它的梯度是 ``softmax(z) - y`` ，为什么在均方误差停滞不前的地方它仍能训练 sigmoid 输出，为什么数值稳定的写法如此重要，以及类别不平衡时该怎么办。每一个论断都会当场用 xentfast 验证；本页的所有数字和图都是在构建文档时计算出来的。

:doc:`English version <plot_cross_entropy>` （本教程的英文原版）。图中的坐标轴和图例与代码一致，使用英文。
"""


import matplotlib.pyplot as plt
import numpy as np

import xentfast as xf
from xentfast import info

np.set_printoptions(precision=4, suppress=False)

# %%
# 熵、交叉熵与 KL 散度
# --------------------
#
# 一个关于结果 :math:`k` 的分布 :math:`p` 的 **熵** 是
#
# .. math:: H(p) = -\sum_k p_k \log p_k ,
#
# 即用最优编码对从 :math:`p` 中抽出的结果进行编码时，平均每个结果需要的奈特数（若用
# :math:`\log_2` 则为比特数）。如果编码是按另一个分布 :math:`q` 设计的，那么每个结果的代价是
# :math:`-\log q_k` ，平均代价就是 **交叉熵**
#
# .. math:: H(p, q) = -\sum_k p_k \log q_k .
#
# 用错编码所多付出的代价就是 **KL 散度（Kullback-Leibler 散度）** 。它永远不为负，并且只有在
# :math:`q = p` 时才为零（吉布斯不等式）：
#
# .. math:: H(p, q) = H(p) + D_\mathrm{KL}(p \,\|\, q), \qquad
#           D_\mathrm{KL}(p \,\|\, q) = \sum_k p_k \log \frac{p_k}{q_k} \ge 0 .
#
# :mod:`xentfast.info` 按定义原样计算这三个量（不做重新归一化，且
# :math:`0 \log 0 = 0` ）。下面用为一枚灌铅骰子设计的编码去编码一枚均匀骰子：

p = np.full(6, 1 / 6)                                # 均匀骰子
q = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])         # 灌铅骰子
print(f"H(p)      = {info.entropy(p, base=2):.4f} bits  (log2 6 = {np.log2(6):.4f})")
print(f"H(p, q)   = {info.cross_entropy(p, q, base=2):.4f} bits")
print(f"KL(p||q)  = {info.kl_divergence(p, q, base=2):.4f} bits")
print("H(p) + KL =", info.entropy(p, base=2) + info.kl_divergence(p, q, base=2))

# %%
# 只有两个结果时（一枚正面概率为 :math:`P(\text{heads}) = p` 的硬币），一切都可以画出来。左图：均匀硬币的熵最大。右图：固定 :math:`p = 0.3` ，交叉熵 :math:`H(p, q)` 处处位于
# :math:`H(p)` 之上，只在 :math:`q = p` 处与之相切；两者之差就是 KL 散度。

ps = np.linspace(0, 1, 201)
coin = np.stack([ps, 1 - ps], axis=-1)               # 每行：(p, 1 - p)
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
# sigmoid 输出上的二元交叉熵
# --------------------------
#
# 二分类器输出一个 logit :math:`z` 和一个概率
# :math:`\hat p = \sigma(z) = 1 / (1 + e^{-z})` 。对于目标 :math:`t \in [0, 1]` ，二元交叉熵就是两个二元分布 :math:`(t, 1-t)` 与 :math:`(\hat p, 1 - \hat p)` 之间的交叉熵：
#
# .. math:: \mathrm{BCE}(\hat p, t) = -t \log \hat p - (1 - t) \log(1 - \hat p)
#           = \log(1 + e^{z}) - t z .
#
# 等号右边是 *logits 形式* 。xentfast 两种形式都提供，并且它们与在这些二元分布上调用
# :func:`xentfast.info.cross_entropy` 的结果一致：

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
# 作为 logit 的函数，正样本（ :math:`t = 1` ）的损失是 :math:`\log(1 + e^{-z})` ：当模型自信地判错（ :math:`z \ll 0` ）时几乎是线性的，当模型自信地判对时几乎为零。

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
# softmax 输出上的多分类交叉熵
# ----------------------------
#
# 有 :math:`C` 个类别时，模型输出 logits :math:`z \in \mathbb{R}^C` 和概率
# :math:`\hat p = \mathrm{softmax}(z)` ，其中 :math:`\hat p_k = e^{z_k} / \sum_j e^{z_j}` 。对于 one-hot 目标 :math:`y = e_c` （真实类别为 :math:`c` ）， :math:`H(y, \hat p)`
# 的求和中只有一项非零： **只有真实类别的对数概率起作用** ，
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
# 其他类别只通过归一化项参与：错误类别之间如何分配剩下的概率，并不影响损失。下面把第 0 行中非目标类别的 logits 重新排列，损失保持不变。

shuffled = logits.copy()
shuffled[0, 1:] = shuffled[0, [3, 1, 2]]
print(xf.cross_entropy(logits, labels, reduction="none"),
      xf.cross_entropy(shuffled, labels, reduction="none"))

# %%
# 目标也可以是每一行上的一个完整分布（软标签，或 ``label_smoothing`` ）：传入一个与 logits
# 形状相同的浮点数组，损失就是完整的求和 :math:`-\sum_k y_k \log \hat p_k` 。

soft = np.array([[0.7, 0.2, 0.1, 0.0], [0.0, 0.1, 0.9, 0.0]])
print(xf.cross_entropy(logits, soft, reduction="none"),
      info.cross_entropy(soft, xf.softmax(logits)))

# %%
# 梯度： :math:`\partial L / \partial z = \mathrm{softmax}(z) - y`
# ----------------------------------------------------------------------
#
# 利用 :math:`\sum_k y_k = 1` ，把损失写成 :math:`L = -\sum_k y_k z_k + \log \sum_j e^{z_j}` 。第一项是线性的，导数为 :math:`-y_k` 。log-sum-exp 的导数是
#
# .. math:: \frac{\partial}{\partial z_k} \log \sum_j e^{z_j}
#           = \frac{e^{z_k}}{\sum_j e^{z_j}} = \hat p_k ,
#
# 因此
#
# .. math:: \frac{\partial L}{\partial z_k} = \hat p_k - y_k .
#
# 梯度就是预测减去目标：它有界于 :math:`[-1, 1]` ，预测正确时为零，而且不再需要计算任何指数或除法。这正是各个库把 softmax 和交叉熵融合成一个运算的原因：xentfast 在对每一行的同一次遍历中同时算出损失和这个梯度（ ``return_grad=True`` ）。使用 ``reduction='mean'`` 时，梯度还要除以行数。
#
# 下面在 float64 中用中心有限差分来检验：

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
# 对软目标和标签平滑同样成立（此时梯度为 :math:`\hat p - y_\text{smoothed}` ），对 logits
# 形式的二元损失也成立，其梯度为 :math:`\sigma(z) - t` ：

_, g_ls = xf.cross_entropy(Z, Y, reduction="sum", label_smoothing=0.1, return_grad=True)
y_smooth = 0.9 * np.eye(7)[Y] + 0.1 / 7
print("label smoothing: ", np.abs(g_ls - (xf.softmax(Z) - y_smooth)).max())
_, g_b = xf.binary_cross_entropy_with_logits(z, t, reduction="sum", return_grad=True)
print("binary on logits:", np.abs(g_b - (1 / (1 + np.exp(-z)) - t)).max())

# %%
# 交叉熵就是最大似然
# ------------------
#
# 一个输出 :math:`\hat p(\cdot \mid x)` 的分类器赋予数据集标签的似然是
# :math:`\prod_i \hat p(y_i \mid x_i)` 。它的负对数是
#
# .. math:: -\log \prod_i \hat p(y_i \mid x_i) = \sum_i -\log \hat p(y_i \mid x_i)
#           = \sum_i L(z_i, y_i) ,
#
# 也就是交叉熵之和。最小化平均交叉熵 *就是* 最大似然估计。最简单的情形可以把这一点说得很具体：用 :math:`\mathrm{softmax}(\theta)` 这样一个不含任何特征的类别分布去拟合样本。它的最大似然估计就是各类别的经验频率，而在交叉熵上做梯度下降恰好找到了它：

samples = rng.choice(4, size=1000, p=[0.5, 0.25, 0.15, 0.1])
theta = np.zeros(4)
for step in range(500):
    rows = np.broadcast_to(theta, (len(samples), 4))       # 每个样本的 logits 都相同
    nll, g = xf.cross_entropy(rows, samples, return_grad=True)
    theta -= 2.0 * g.sum(axis=0)
print("softmax(theta):       ", xf.softmax(theta))
print("empirical frequencies:", np.bincount(samples, minlength=4) / len(samples))
print(f"mean NLL {nll:.5f} = entropy of the empirical distribution "
      f"{info.entropy(np.bincount(samples) / len(samples)):.5f}")

# %%
# 在最优点，平均负对数似然等于经验分布的熵：
# :math:`H(\hat p_\text{data}, q) = H(\hat p_\text{data}) + D_\mathrm{KL}(\hat p_\text{data} \,\|\, q)` ，而 KL 项已被压到零。
#
# 为什么在 sigmoid 输出上交叉熵胜过均方误差
# --------------------------------------------------
#
# 也可以用均方误差 :math:`\tfrac12(\sigma(z) - t)^2` 来拟合概率。但它对 logit 的梯度带着
# sigmoid 的导数 :math:`\sigma'(z) = \sigma(z)(1 - \sigma(z))` ：
#
# .. math:: \frac{\partial}{\partial z}\, \tfrac12 (\sigma(z) - t)^2
#           = (\sigma(z) - t)\, \sigma(z) (1 - \sigma(z)),
#           \qquad
#           \frac{\partial}{\partial z}\, \mathrm{BCE} = \sigma(z) - t .
#
# 当模型自信地 **判错** 时（比如 :math:`t = 1` ， :math:`z = -10` ），sigmoid 处于饱和区，
# :math:`\sigma'(z) \approx 4.5 \cdot 10^{-5}` ，均方误差的梯度几乎消失——而这恰恰是模型最需要被纠正的地方。交叉熵中的 :math:`\log` 抵消了饱和：它的梯度趋于 :math:`-1` 。

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
# 这对训练意味着什么：同一个逻辑回归模型、同一份数据、同一个学习率、同一个糟糕的起点（权重方向反了，大多数样本被自信地分错），分别用两种损失各训练一次。交叉熵几十步就恢复过来；均方误差几百步都几乎不动。

n = 400
X = rng.normal(size=(n, 2))
y_bin = (X @ np.array([2.0, -1.0]) + 0.3 * rng.normal(size=n) > 0).astype(float)
w_bad = np.array([-6.0, 3.0])          # 正确方向取反，并且很大


def train(loss_name, steps=300, lr=0.5):
    w, b = w_bad.copy(), 0.0
    history = []
    for step in range(steps):
        z_i = X @ w + b
        # 两种训练都监测同一个量：数据上的平均 BCE
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
# 数值稳定性
# ----------
#
# 按字面写出的 :math:`\mathrm{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}` 在 logits 很大时会上溢（ :math:`e^{1000} = \infty` ，而 :math:`\infty / \infty` 是 NaN），在 logits 很负时会下溢（ :math:`0 / 0` ）。标准的解决办法是先减去每行的最大值，这在数学上不改变任何东西。但如果 softmax
# 已经下溢成 0，再取 :math:`\log` 仍然得到 :math:`-\infty` ，所以损失必须按 **log-softmax**
# :math:`z_k - \max z - \log \sum_j e^{z_j - \max z}` 来计算，而绝不能写成 ``log(softmax(z))`` 。

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
# 二元损失也有同样的陷阱。在 float32 中， :math:`\sigma(-120)` 下溢为 0，而 :math:`\log 0 = -\infty` 。概率形式只能截断（PyTorch 把对数截断在 -100，:func:`xentfast.binary_cross_entropy` 也一样，因此损失虽然不对，但至少是有限的）；而 logits 形式
# :math:`\max(z, 0) - t z + \log(1 + e^{-|z|})` 是精确的：

z_neg = np.array([-120.0], np.float32)
with np.errstate(all="ignore"):
    p_neg = (1 / (1 + np.exp(-z_neg))).astype(np.float32)
    print("sigmoid(-120) in float32:", p_neg, "-> naive -log(p) =", -np.log(p_neg))
print("binary_cross_entropy(probs)     :", xf.binary_cross_entropy(p_neg, np.ones(1, np.float32)))
print("binary_cross_entropy_with_logits:", xf.binary_cross_entropy_with_logits(z_neg, np.ones(1, np.float32)))

# %%
# **占优类别。** 减去最大值并不是故事的全部。对于一个很有把握的行，真实类别的对数概率是
# :math:`-\log(1 + \sum_{j \ne c} e^{z_j - z_c})` ，一个非常小的负数。按 :math:`0 - \log(\text{sum})`
# 计算时， ``1 + 4e-18`` 被舍入为 1，结果恰好是 0；xentfast 则计算
# :math:`-\operatorname{log1p}(\sum_{j \ne c} e^{z_j - z_c})` ，把这个值保留了下来：

two = np.array([0.0, -40.0])
with np.errstate(all="ignore"):
    max_subtracted = two - two.max() - np.log(np.exp(two - two.max()).sum())
print("exact -log1p(exp(-40)):  ", -np.log1p(np.exp(-40.0)))
print("max-subtracted NumPy:    ", max_subtracted[0])
print("xf.log_softmax:          ", xf.log_softmax(two)[0])

# %%
# 于是，一个自信且正确的行的损失及其梯度 :math:`\hat p_c - 1` 也都是对的，而不是 0：在 float32 中，一旦间隔超过大约 17，朴素的 ``softmax - 1`` 就给出 0，而 xentfast 返回
# :math:`-\sum_{j\ne c} e^{z_j - z_c} / (1 + \sum_{j\ne c} e^{z_j - z_c})` 。在数以百万计的 token 上取平均时，一个训练良好的模型恰恰主要由这样的行组成。下图是标签为 0 的行
# ``[0, -margin]`` 的损失：

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
# 左图中，log-sum-exp 的曲线在其值恰好变为 0 的地方中断（对数坐标轴无法显示 0）：float32 中间隔约超过 17、float64 中约超过 37 之后就是如此。右图中，它们的相对误差早在此之前就开始增长，因为对舍入后的 ``1 + x`` 取 ``log(1 + x)`` ，只保留了 ``x`` 在舍入中幸存下来的那几位有效数字；而 xentfast 的误差始终停留在各自数据类型的舍入误差水平。PyTorch 和 SciPy 采用的是减去最大值的写法，同样会把这些行舍入为 0。
#
# 类别不平衡
# ----------
#
# 当某个类别很稀少时，平均交叉熵由常见类别主导：模型放弃稀有类别反而能降低损失。有三种办法，它们改的是损失而不是数据：
#
# * **类别权重** （ ``weight=`` ）：把类别 :math:`c` 的每一行的损失乘以 :math:`w_c` ，
#   通常与该类别的频率成反比（scikit-learn 的 ``'balanced'`` 为 :math:`n / (C\, n_c)` ）；
# * **样本权重** （ ``sample_weight=`` ）：每一行一个权重，用于不随类别而定的权重
#   （重要性、时间远近、重复样本）；取 ``sample_weight = w[y]`` 时，与类别权重完全等价；
# * **focal 损失** （ :func:`xentfast.softmax_focal_loss` ）：把每一行的损失乘以
#   :math:`(1 - \hat p_c)^\gamma` ，压低大量容易、已经分对的行，使困难的行（往往属于稀有类别）
#   占更大的比重；再加上 ``alpha=`` 就在此基础上叠加了类别权重。
#
# 下面是三个相互重叠的高斯类别，第三类只占 3% 的行；对每种损失各训练一个 softmax 回归：

counts = np.array([600, 600, 36])
centres = np.array([[0.0, 0.0], [2.5, 0.0], [1.2, 1.4]])
Xc = np.concatenate([rng.normal(c, 0.9, size=(k, 2)) for c, k in zip(centres, counts)])
yc = np.repeat(np.arange(3), counts)
Xc_test = np.concatenate([rng.normal(c, 0.9, size=(300, 2)) for c in centres])
yc_test = np.repeat(np.arange(3), 300)
balanced = len(yc) / (3 * counts)
print("class weights 'balanced':", balanced)

# sample_weight = w[y] 与 weight = w 是同一个目标函数：损失相同，梯度也相同
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
# 普通的交叉熵牺牲了稀有类别。类别权重把它找了回来，代价是常见类别略有下降（决策边界向它们移动）；在这里单独使用 focal 损失帮助不大，与 ``alpha`` 结合时则与类别权重的效果相当。
# :class:`xentfast.sklearn.CrossEntropyClassifier` 以 ``class_weight='balanced'`` 和
# ``loss='focal'`` 的形式提供了同样的选择（见 :doc:`../auto_examples/sklearn_digits` ）。
#
# 与 PyTorch 的对应关系
# ------------------------------
#
# xentfast 的函数在数值上与 PyTorch 的函数一一对应，名称和参数名都相同：
#
# .. list-table::
#    :header-rows: 1
#
#    * - PyTorch
#      - xentfast（NumPy）
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
# 约定上有两点不同：PyTorch 的类别维是第 1 维，而 xentfast 默认是最后一个轴（对 torch 的布局请传入
# ``axis=1`` ）；梯度来自 ``return_grad=True`` 而不是自动微分。安装了 PyTorch 时，两者的值和梯度一致：

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
# 接下来： :doc:`../user_guide/index` 列出了所有选项（ ``ignore_index`` 、 ``label_smoothing`` 、
# ``sample_weight`` 、 ``z_loss`` 、 ``softcap`` 、类别轴、原地梯度），
# :doc:`../gallery` 中有用这些损失训练 NumPy 神经网络和 scikit-learn 估计器的例子。
