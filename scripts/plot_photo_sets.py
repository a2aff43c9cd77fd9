"""One model on several photo sets: top-1 and exact-item R@10 for each box mode, against the goals.

Usage: python scripts/plot_photo_sets.py --out docs/results/photo-sets.png --metric l2 \
    --set "clutter, test items=dev.json" --set "scene, test items=scene-dev.json" ... [--clean 93.87]

Each ``--set`` is ``LABEL=FILE``, FILE the ``--json`` output of ``lookalike evaluate --query-photos``; the
first model in it is drawn. ``--clean`` adds the clean table's top-1 as a bar of its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BARS = [("given", "top1", "box given: top-1", 85.0), ("given", "item_recall@10", "box given: item R@10", 70.0),
        ("auto", "top1", "box found: top-1", 80.0), ("none", "top1", "whole photo: top-1", None)]


def rows_of(path: Path, metric: str) -> tuple[str, dict[tuple[str, str], float]]:
    """The first model's cells ``(box, column) -> percent`` under ``metric``."""
    rows = json.loads(path.read_text())["rows"]
    model = rows[0]["model"]
    cells = {}
    for row in rows:
        if row["model"] == model and row["metric"] == metric:
            for _, column, _, _ in BARS:
                if row.get(column) is not None:
                    cells[(row["box"], column)] = 100 * row[column]
    return model, cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="LABEL=FILE (repeat)")
    parser.add_argument("--metric", default="l2")
    parser.add_argument("--clean", type=float, help="the clean table's top-1 (%%), drawn with its 93%% goal")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sets = []
    for spec in args.set:
        label, _, file = spec.partition("=")
        if not file:
            parser.error(f"--set wants LABEL=FILE, got {spec!r}")
        sets.append((label, *rows_of(Path(file), args.metric)))
    model = sets[0][1]
    width = 0.8 / len(sets)
    fig, ax = plt.subplots(figsize=(11, 4.6))
    groups = [label for _, _, label, _ in BARS]
    for s, (label, _, cells) in enumerate(sets):
        xs = [g + (s - (len(sets) - 1) / 2) * width for g in range(len(BARS))]
        values = [cells.get((box, column), float("nan")) for box, column, _, _ in BARS]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    for g, (_, _, _, goal) in enumerate(BARS):
        if goal is not None:
            ax.hlines(goal, g - 0.45, g + 0.45, colors="black", linestyles="dashed")
            ax.text(g + 0.46, goal, f"goal {goal:.0f}%", va="center", fontsize=8)
    if args.clean is not None:
        g = len(BARS)
        groups.append("clean items: all 10,000 test\nvs 60,000 training")
        bars = ax.bar([g], [args.clean], 0.3, color="grey")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.hlines(93.0, g - 0.3, g + 0.3, colors="black", linestyles="dashed")
        ax.text(g + 0.31, 93.0, "goal 93%", va="center", fontsize=8)
    ax.set_xticks(range(len(groups)), groups, fontsize=9)
    ax.set_ylim(0, 105)
    ax.set_xlim(-0.5, len(groups) - 0.2)
    ax.set_ylabel(f"% ({args.metric.upper()})")
    ax.set_title(f"{model} on every photo set (400 photos each), {args.metric.upper()}")
    ax.legend(fontsize=8, loc="lower left", ncol=2)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
