"""Derived columns, the printed tables, and the plot."""

import math
import os

from _libs import LIBS, PEERS
from _worker import DISTURBED

XF = "xentfast"


def _groups(rows):
    """The timed rows (copies aside) by (op, dtype, shape, threads)."""
    groups = {}
    for r in rows:
        if r["op"] != "copy":
            key = (r["op"], r["dtype"], tuple(r["shape"]), r["threads"])
            groups.setdefault(key, []).append(r)
    return groups


def _ok(row):
    return row.get("status") == "ok"


def derive(rows):
    """Add GB/s, ratio to copy and speed-ups to the timed rows, in place.

    ``gbps`` = 2 * N * C * itemsize / median (read logits, write result);
    ``ratio_to_copy`` = median / median of ``np.copyto`` of the same logits;
    ``ratio_to_floor`` = median / ``floor_ms``, the floor being
    max(copy, N * C / (xentfast's exp throughput per core at its SIMD level,
    measured in the same run, * threads));
    on peer rows ``xf_speedup`` maps each xentfast variant to
    peer median / variant median, and on xentfast rows ``speedup_over`` maps
    each peer to the same ratio, within one (op, dtype, shape, threads).
    """
    copy = {(r["dtype"], tuple(r["shape"])): r["median_ms"]
            for r in rows if r["op"] == "copy" and _ok(r)}
    for r in rows:
        if not _ok(r):
            continue
        n, c = r["shape"]
        nbytes = 2 * n * c * (4 if r["dtype"] == "float32" else 8)
        r["gbps"] = nbytes / (r["median_ms"] * 1e-3) / 1e9
        ref = copy.get((r["dtype"], tuple(r["shape"])))
        r["ratio_to_copy"] = r["median_ms"] / ref if ref else None
    for (op, dtype, shape, threads), group in _groups(rows).items():
        rate = next((r["exp_rate"] for r in group if r.get("exp_rate")), None)
        ref = copy.get((dtype, shape))
        if rate and ref:
            floor = max(ref, shape[0] * shape[1] / (rate * threads) * 1e3)
            for r in group:
                r["floor_ms"] = floor
                if _ok(r):
                    r["ratio_to_floor"] = r["median_ms"] / floor
        xfs = [r for r in group if r["lib"].startswith(XF) and _ok(r)]
        peers = [r for r in group if not r["lib"].startswith(XF) and _ok(r)]
        for p in peers:
            p["xf_speedup"] = {x["lib"]: p["median_ms"] / x["median_ms"] for x in xfs}
        for x in xfs:
            x["speedup_over"] = {p["lib"]: p["median_ms"] / x["median_ms"] for p in peers}


def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _disturbed(row):
    return _ok(row) and bool(row.get("disturbed"))


def _times(v, width):
    return f"{_fmt(v, '.2f')}{'' if v is None else 'x'}".rjust(width)


def _order(row):
    names = list(LIBS)
    base = row["lib"].split("[")[0]
    return (names.index(base) if base in names else len(names), row["lib"])


def _sorted_groups(rows):
    ops = [r["op"] for r in rows]
    return sorted(_groups(rows).items(), key=lambda kv: (ops.index(kv[0][0]), kv[0][1],
                                                 kv[0][2][1], kv[0][2][0], kv[0][3]))


def table(rows):
    """The full table as text: one block per (op, dtype, shape, threads)."""
    copy = {(r["dtype"], tuple(r["shape"])): r for r in rows if r["op"] == "copy"}
    head = (f"  {'lib':<20}{'median ms':>11}{'best ms':>10}{'GB/s':>8}{'x copy':>8}"
            f"{'x floor':>8}"
            f"{'cores':>7}{'other':>7}  {'check':<6}{'speedup':>9}{'speedup/out':>13}")
    lines = []
    for (op, dtype, shape, threads), group in _sorted_groups(rows):
        cp = copy.get((dtype, shape))
        cp_txt = (f"copy {cp['median_ms']:.4g} ms = {cp['gbps']:.1f} GB/s"
                  + (" !" if _disturbed(cp) else "")
                  if cp and _ok(cp) else "copy: not measured")
        floor = group[0].get("floor_ms")
        cp_txt += f"; floor {floor:.4g} ms" if floor else ""
        lines += ["", f"{op}  {dtype}  {shape[0]}x{shape[1]}  threads={threads}"
                      f"   ({cp_txt})", head]
        for r in sorted(group, key=_order):
            if not _ok(r):
                why = r.get("error") or r.get("reason") or ""
                lines.append(f"  {r['lib']:<20}{r['status']}: {why}"[:160])
                continue
            sp = r.get("xf_speedup", {})
            plain = sp.get(XF)
            out = next((v for k, v in sp.items() if k.startswith(XF + "[")), None)
            check = r.get("check", "-")
            flag = "ok" if check == "ok" else ("-" if check == "-" else "FAIL")
            lines.append(
                f"  {r['lib']:<20}{r['median_ms']:>11.4g}{r['best_ms']:>10.4g}"
                f"{r['gbps']:>8.1f}{_fmt(r['ratio_to_copy'], '>8.2f')}"
                f"{_fmt(r.get('ratio_to_floor'), '>8.2f')}"
                f"{r['cpu_util']:>7.2f}{_fmt(r.get('others'), '>6.2f')}"
                f"{'!' if _disturbed(r) else ' '} {flag:<6}{_times(plain, 9)}"
                f"{_times(out, 13)}")
    if any(_disturbed(r) for r in rows):
        lines += ["", "! other processes took cores this row needed (more than "
                      f"{DISTURBED} beyond the CPUs the run left free) while it was "
                      "timed, even after retries: treat it with care"]
    failures = [r for r in rows if str(r.get("check", "")).startswith("FAIL")]
    if failures:
        lines += ["", "CHECK FAILURES (results differ from the float64 NumPy reference):"]
        lines += [f"  {r['lib']} {r['op']} {r['dtype']} {r['shape'][0]}x{r['shape'][1]}:"
                  f" {r['check']}" for r in failures]
    return "\n".join(lines)


def summary(rows):
    """Speed-up of xentfast over each peer, one column per shape."""
    ok = [r for r in rows if _ok(r) and r["op"] != "copy"]
    shapes = sorted({tuple(r["shape"]) for r in ok}, key=lambda s: (s[1], s[0]))
    if not shapes:
        return ""
    cols = "".join(f"{f'{n}x{c}':>14}" for n, c in shapes)
    lines = ["", "Speed-up of xentfast over each peer (peer median / xentfast median);"
                 " 'x copy' / 'x floor' rows: xentfast median / copy median or floor", ""]
    blocks = sorted({(r["op"], r["dtype"], r["threads"]) for r in ok},
                    key=lambda b: ([r["op"] for r in rows].index(b[0]), b[1], b[2]))
    for op, dtype, threads in blocks:
        sel = [r for r in ok if (r["op"], r["dtype"], r["threads"]) == (op, dtype, threads)]
        cells = {}
        for r in sel:
            if r["lib"].startswith(XF):
                cells.setdefault(f"{r['lib']} x copy", {})[tuple(r["shape"])] = \
                    r.get("ratio_to_copy")
                cells.setdefault(f"{r['lib']} x floor", {})[tuple(r["shape"])] = \
                    r.get("ratio_to_floor")
            for xf, v in r.get("xf_speedup", {}).items():
                name = f"vs {r['lib']}" + ("" if xf == XF else f" ({xf[len(XF):]})")
                cells.setdefault(name, {})[tuple(r["shape"])] = v
        if not cells:
            continue
        lines.append(f"{op} {dtype} threads={threads}")
        lines.append(f"  {'':<28}{cols}")
        for name in sorted(cells, key=lambda k: (not k.endswith(("copy", "floor")),
                                                  _peer_rank(k), k)):
            vals = "".join(_fmt(cells[name].get(s), ">14.2f") for s in shapes)
            lines.append(f"  {name:<28}{vals}")
        lines.append("")
    return "\n".join(lines)


def _peer_rank(name):
    for i, p in enumerate(PEERS):
        if name.startswith(f"vs {p}"):
            return i
    return -1


def plot(rows, path):
    """Speed-up of xentfast over each peer vs C: one panel per (op, dtype).

    A hollow marker is a ratio with a disturbed row on either side.

    Returns a message saying what was written or why nothing was.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    peers = [r for r in rows if _ok(r) and XF in r.get("xf_speedup", {})]
    if not peers:
        return "no xentfast timings to plot"
    xf_disturbed = {(r["op"], r["dtype"], tuple(r["shape"]), r["threads"])
                    for r in rows if r["lib"] == XF and _disturbed(r)}

    def shaky(r):
        key = (r["op"], r["dtype"], tuple(r["shape"]), r["threads"])
        return _disturbed(r) or key in xf_disturbed

    ops = sorted({r["op"] for r in peers}, key=[r["op"] for r in rows].index)
    dtypes = sorted({r["dtype"] for r in peers})
    threads = sorted({r["threads"] for r in peers})
    styles = ["--", "-", ":", "-."]
    fig, axes = plt.subplots(len(ops), len(dtypes), squeeze=False, sharex=True,
                             figsize=(5.5 * len(dtypes), 3.6 * len(ops)))
    colors = {p: f"C{i}" for i, p in enumerate(PEERS)}
    for i, op in enumerate(ops):
        for j, dtype in enumerate(dtypes):
            ax = axes[i][j]
            for peer in PEERS:
                for k, th in enumerate(threads):
                    sel = sorted((r["shape"][1], r["xf_speedup"][XF], shaky(r))
                                 for r in peers
                                 if (r["op"], r["dtype"], r["lib"], r["threads"])
                                 == (op, dtype, peer, th))
                    if not sel:
                        continue
                    c, v, bad = zip(*sel)
                    ax.plot(c, v, styles[k % len(styles)], marker="o",
                            color=colors[peer], label=f"{peer}, {th} thr")
                    # hollow marker: either side of the ratio was disturbed
                    bad_pts = [(ci, vi) for ci, vi, b in sel if b]
                    if bad_pts:
                        ax.plot(*zip(*bad_pts), "o", color=colors[peer],
                                markerfacecolor="white")
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.set_title(f"{op}  {dtype}")
            ax.set_xlabel("classes C")
            ax.set_ylabel("xentfast speed-up (x)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("peer median / xentfast median; hollow: disturbed timing", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot written to {path}"
