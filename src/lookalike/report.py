"""``lookalike evaluate --report DIR``: the table as Markdown and JSON, plus the pictures.

::

    DIR/report.md        the post's table (models x metrics, top-1), baseline, protocol, more metrics
    DIR/report.json      everything EvalReport holds
    DIR/top1.png         bar chart: top-1 accuracy of every model x metric against the random baseline
    DIR/matches.png      random queries with their nearest matches per model (box drawn; green = same category)
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from .evaluation import EvalReport
from .images import load_image
from .metrics import Metric
from .workspace import Workspace

THUMB = 96
GREEN, RED, GREY = (46, 160, 67), (207, 34, 46), (110, 110, 110)


def write_report(report: EvalReport, workspace: Workspace, out: str | Path, *, command: str = "") -> list[Path]:
    """Write report.md, report.json, top1.png and matches.png into ``out``; returns the files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.json", out / "report.md", out / "top1.png", out / "matches.png"]
    files[0].write_text(json.dumps(report.to_dict(), indent=2))
    if report.photos is not None:  # one row per model and box mode: "model (box)"
        from dataclasses import replace

        report = replace(report, rows=[replace(r, model=f"{r.model} ({r.box})") for r in report.rows])
    files[1].write_text(markdown(report, command=command))
    bar_chart(report, files[2])
    match_grid(report, workspace, files[3])
    return files


def _metrics(report: EvalReport) -> list[str]:
    order = [m.value for m in Metric]
    return sorted({r.metric for r in report.rows}, key=order.index)


def _models(report: EvalReport) -> list[str]:
    return list(dict.fromkeys(r.model for r in report.rows))


def markdown(report: EvalReport, *, command: str = "") -> str:
    metrics, models = _metrics(report), _models(report)
    rows = {(r.model, r.metric): r for r in report.rows}
    if report.photos is not None:
        where = (f"query photos `{report.photos.get('csv')}`, boxes: {', '.join(report.photos.get('boxes', []))}; "
                 f"gallery from every split but `{report.split}` plus the photos' items" if report.split else
                 f"query photos `{report.photos.get('csv')}`")
    elif report.protocol == "held-out":
        where = (f"queries from split `{report.split}`, gallery from "
                 + (f"split `{report.gallery_split}`" if report.gallery_split else f"every split but `{report.split}`"))
    else:
        where = "queries drawn from the gallery, each excluded from its own results (the post's protocol)"
    lines = ["# Nearest-match evaluation", "",
             f"Protocol: **{report.protocol}** ({where}); {report.gallery:,} gallery items, {report.queries:,} "
             f"queries, seed {report.seed}.", ""]
    if command:
        lines += ["```", command, "```", ""]
    iou = (report.photos or {}).get("localiser_iou")
    if iou:
        lines += [f"Localiser ({report.photos.get('localiser')}): mean IoU {iou['mean_iou']:.3f} with the given "
                  f"boxes; IoU >= 0.5 on {iou['iou>=0.5']:.1%} of {iou['photos']} photos; an item found in "
                  f"{iou['found']:.1%}.", ""]
    lines += ["## Top-1 same-category accuracy", "",
              "| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics),
              "| random pairs | " + " | ".join(f"{report.baseline_top1:.1%}" for _ in metrics) + " |"]
    for model in models:
        best = max(rows[(model, m)].top1 for m in metrics if (model, m) in rows)
        cells = []
        for m in metrics:
            r = rows.get((model, m))
            cells.append("-" if r is None else (f"**{r.top1:.1%}**" if r.top1 == best else f"{r.top1:.1%}"))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", f"Random pairs: sampled {report.baseline_top1:.1%}, expected {report.baseline_expected:.1%}. "
              "Bold: the model's best metric.", "", "![top-1 accuracy](top1.png)", "",
              "## More metrics", "", "| model | metric | top-1 | P@5 | P@10 | R@10 | mAP@R |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in report.rows:
        lines.append(f"| {r.model} | {r.metric} | {r.top1:.1%} | {r.precision_at.get(5, float('nan')):.1%} | "
                     f"{r.precision_at.get(10, float('nan')):.1%} | {r.recall_at.get(10, float('nan')):.2%} | "
                     f"{r.map_at_r:.3f} |")
    if report.item_queries:
        ks = sorted(next(r.item_recall_at for r in report.rows if r.item_recall_at))
        lines += ["", f"## Exact-item Recall@k ({report.item_queries:,} queries whose product has another photo "
                  "in the gallery)", "", "| model | metric | " + " | ".join(f"R@{k}" for k in ks) + " |",
                  "|---|---|" + "---:|" * len(ks)]
        for r in report.rows:
            lines.append(f"| {r.model} | {r.metric} | " + " | ".join(
                f"{(r.item_recall_at or {}).get(k, 0):.1%}" for k in ks) + " |")
    cats = sorted({c for r in report.rows for c in r.per_category_top1})
    if cats:
        lines += ["", "## Per-category top-1 (each model under its best metric)", "",
                  "| category | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
        best = {m: rows[(m, report.best_metric(m))] for m in models}
        for c in cats:
            lines.append(f"| {c} | " + " | ".join(f"{best[m].per_category_top1.get(c, float('nan')):.1%}"
                                                  for m in models) + " |")
    if report.examples.get("queries"):
        lines += ["", "## Example matches", "",
                  "Random queries (left) and their nearest matches for each model under its best metric; "
                  "green frame: same category, red: another category.", "", "![matches](matches.png)"]
    return "\n".join(lines) + "\n"


def bar_chart(report: EvalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics, models = _metrics(report), _models(report)
    rows = {(r.model, r.metric): r.top1 for r in report.rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(models) * len(metrics) / 2 + 2), 4.2), dpi=110)
    x = np.arange(len(models))
    width = 0.8 / len(metrics)
    for n, metric in enumerate(metrics):
        values = [100 * rows.get((m, metric), float("nan")) for m in models]
        bars = ax.bar(x + (n - (len(metrics) - 1) / 2) * width, values, width, label=metric)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.axhline(100 * report.baseline_top1, color="black", linestyle="--", linewidth=1,
               label=f"random pairs ({report.baseline_top1:.1%})")
    ax.set_xticks(x, models, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("top-1 same-category accuracy (%)")
    ax.set_ylim(0, 118)
    ax.set_title(f"{report.protocol} protocol: {report.gallery:,} gallery items, {report.queries:,} queries",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=len(metrics) + 1, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def thumbnail(workspace: Workspace, item_id: str, frame: tuple[int, int, int] | None = None,
              size: int = THUMB) -> Image.Image:
    """A square thumbnail of the whole image with the item's box drawn (the crop the models saw)."""
    item = workspace.catalogue.get(item_id)
    img = load_image(workspace.catalogue.resolve(item.path))
    scale = size / max(img.size)
    shown = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    canvas = Image.new("RGB", (size, size), "white")
    offset = ((size - shown.width) // 2, (size - shown.height) // 2)
    canvas.paste(shown, offset)
    draw = ImageDraw.Draw(canvas)
    if item.box is not None:
        x1, y1, x2, y2 = (v * scale for v in item.box)
        draw.rectangle([x1 + offset[0], y1 + offset[1], x2 + offset[0], y2 + offset[1]], outline=(255, 196, 0),
                       width=2)
    if frame is not None:
        canvas = ImageOps.expand(canvas.resize((size - 8, size - 8)), border=4, fill=frame)
    return canvas


def match_grid(report: EvalReport, workspace: Workspace, path: Path) -> None:
    """One row per (query, model): the query, then its nearest matches under the model's best metric."""
    queries = report.examples.get("queries", [])
    matches = report.examples.get("matches", {})
    models = _models(report)
    if not queries:
        Image.new("RGB", (THUMB, THUMB), "white").save(path)
        return
    k = max((len(m) for rows in matches.values() for m in rows), default=0)
    label_w, pad = 170, 4
    row_h = THUMB + pad
    width = label_w + (k + 1) * (THUMB + pad) + pad
    height = len(queries) * len(models) * row_h + pad
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    y = pad
    for qn, query in enumerate(queries):
        category = workspace.catalogue.get(query).category
        for model in models:
            system = f"{model}/{report.best_metric(model)}"
            draw.text((pad, y + 4), f"{system}", fill=(0, 0, 0))
            draw.text((pad, y + 20), f"query: {category}"[:28], fill=GREY)
            grid.paste(thumbnail(workspace, query, (0, 0, 0)), (label_w, y))
            for n, (item_id, _distance) in enumerate(matches.get(system, [[]] * len(queries))[qn]):
                same = workspace.catalogue.get(item_id).category == category
                grid.paste(thumbnail(workspace, item_id, GREEN if same else RED),
                           (label_w + (n + 1) * (THUMB + pad), y))
            y += row_h
        draw.line([(0, y - pad // 2), (width, y - pad // 2)], fill=(200, 200, 200))
    grid.save(path)
