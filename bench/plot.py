"""Plot a bench result: our throughput vs chunk size, one line per window, against the limit and the peers.

    bench/out/venv/bin/python bench/plot.py bench/out/results.json docs/bench-throughput.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PEER_GROUPS = {"gunicorn", "twisted-wsgi", "tus", "djust"}


def main(src, dst):
    res = json.load(open(src))
    rows = [r for r in res["rows"] if r.get("mib_s") and r.get("verified") is not False]
    ours = [r for r in rows if r["group"] == "ours" and r.get("matrix")]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    windows = sorted({r["window"] for r in ours})
    cmap = plt.get_cmap("viridis")
    for i, w in enumerate(windows):
        pts = sorted((r["chunk"], r["mib_s"]) for r in ours if r["window"] == w)
        ax.plot([p[0] / 1024 for p in pts], [p[1] for p in pts], marker="o",
                color=cmap(i / max(1, len(windows) - 1)), label=f"ours, window {w} chunks")
    ax.set_xscale("log", base=2)
    chunks = sorted({r["chunk"] for r in ours})
    ax.set_xticks([c / 1024 for c in chunks])
    ax.set_xticklabels([f"{c // 1024} KiB" if c < 1 << 20 else f"{c >> 20} MiB" for c in chunks])
    lines = []
    if res.get("limit_mib_s"):
        lines.append(("raw TCP -> disk (limit)", res["limit_mib_s"], "black", "-"))
    styles = ["--", "-.", ":", (0, (5, 2, 1, 2)), (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1))]
    peers = sorted((r for r in rows if r["group"] in PEER_GROUPS), key=lambda r: -r["mib_s"])
    for i, r in enumerate(peers):
        lines.append((r["row"], r["mib_s"], "tab:red" if i == 0 else "tab:gray", styles[i % len(styles)]))
    top = 1.25 * max([r["mib_s"] for r in ours] + [y for _, y, _, _ in lines[1:]] or [1])
    for label, y, color, ls in lines:
        if y > top:  # the limit far above everything else: say so instead of squashing the plot
            ax.annotate(f"{label}: {y:.0f} MiB/s (off scale, above)", xy=(0.5, 0.985), xycoords="axes fraction",
                        ha="center", va="top", fontsize=8.5,
                        bbox={"boxstyle": "round", "fc": "white", "ec": "black", "lw": 0.8})
            continue
        ax.axhline(y, color=color, linestyle=ls, linewidth=1.2, label=f"{label}: {y:.0f} MiB/s")
    ax.set_xlabel("chunk size (payload per WebSocket frame)")
    ax.set_ylabel("MiB/s (one upload, loopback)")
    meta = res.get("meta", {})
    mib = meta.get("file_bytes", 0) / (1 << 20)
    ax.set_title(f"twisted-uploads: {mib:.0f} MiB upload, Python client -> twistd uploads "
                 f"({meta.get('nproc', '?')} cores, {meta.get('cpu', '')})", fontsize=10)
    ax.set_ylim(0, top)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(dst)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
