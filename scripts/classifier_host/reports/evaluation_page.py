"""evaluation.html from evaluation.json (classifier/model/evaluation.py): one self-contained page.

Summary numbers, per-class precision/recall/F1 (worst first), the most confused pairs, a confusion-matrix
heatmap readable at 133 classes (row-normalised, one labelled row per class), a reliability diagram
with the expected calibration error, and the most confident mistakes as a gallery (thumbnails when
the images are at hand). Used by the evaluate command and the training report (reports/training.py).
"""

from __future__ import annotations

import html
from pathlib import Path

from .figures import data_uri, png, pyplot
from .overlays import overlay

THUMBNAIL = 160  # px, the longer side of a gallery image


def _e(value) -> str:
    return html.escape(str(value))


def confusion_heatmap(result: dict) -> str:
    return png(
        confusion_figure(
            list(result["per_class"]), result["confusion_matrix"], "Confusion matrix (share of each true class)"
        )
    )


def confusion_figure(classes: list[str], counts: list[list[int]], title: str):
    """Row-normalised (each true class sums to 1), so small classes read like large ones; a label per class."""
    import numpy as np

    plt = pyplot()
    matrix = np.asarray(counts, dtype=float)
    rows = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = max(5.0, 0.11 * len(classes) + 2)
    font = max(3.5, min(9.0, 500 / max(len(classes), 1) / 4))
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(share, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(classes)), labels=classes, rotation=90, fontsize=font)
    ax.set_yticks(range(len(classes)), labels=classes, fontsize=font)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.03)
    return fig


def reliability_diagram(result: dict) -> str:
    plt = pyplot()
    bins = result["calibration"]["bins"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    filled = [b for b in bins if b["count"]]
    width = bins[0]["upper"] - bins[0]["lower"]
    ax.bar(
        [b["lower"] for b in filled],
        [b["accuracy"] for b in filled],
        width=width,
        align="edge",
        edgecolor="black",
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.scatter(
        [b["confidence"] for b in filled],
        [b["accuracy"] for b in filled],
        color="red",
        s=12,
        zorder=3,
        label="mean confidence",
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (top-1 probability)",
        ylabel="accuracy",
        title=f"Reliability (ECE {result['calibration']['ece']:.3f}, {len(bins)} bins)",
    )
    ax.legend(fontsize=8, loc="upper left")
    return png(fig)


def thumbnail(path: Path) -> str | None:
    """A small JPEG of the image, upright, as a data URI; None when it cannot be read."""
    from classifier.model import decoding

    try:
        image = decoding.open_rgb(path)
    except (decoding.BadImage, OSError):
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return data_uri(lambda out: image.save(out, "JPEG", quality=85), "image/jpeg")


def gradcam_overlay(mistake: dict, explanation: dict) -> str | None:
    """The crop the model saw with the Grad-CAM of the class it answered drawn over it, as a data URI."""
    import numpy as np

    from classifier.model import explanations

    if "gradcam" not in mistake or "crop_jpeg" not in mistake:
        return None
    heat = explanations.heatmap(np.asarray(mistake["gradcam"], dtype=np.float32), explanation["preprocessing"]["crop"])
    picture = overlay(explanations.decode_image(mistake["crop_jpeg"]), heat)
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    return data_uri(lambda out: picture.save(out, "PNG"), "image/png")


def render(result: dict, title: str, image_root: Path | None = None) -> str:
    macro = result["macro"]
    summary = [
        ("runtime (the endpoint's forward pass)", result["runtime"]),
        ("images", result["images"]),
        ("top-1 accuracy", f"{result['top1']:.4f}"),
        ("top-5 accuracy", f"{result['top5']:.4f}"),
        ("macro precision / recall / F1", f"{macro['precision']:.4f} / {macro['recall']:.4f} / {macro['f1']:.4f}"),
        ("expected calibration error", f"{result['calibration']['ece']:.4f}"),
    ]
    if result.get("skipped"):
        summary.append(("files skipped (not readable images)", len(result["skipped"])))
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left} .n{text-align:right}"
        ".gallery{display:flex;flex-wrap:wrap;gap:12px} .card{width:370px;font-size:12px}"
        "</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        "<table>",
    ]
    parts += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary]
    parts.append("</table>")

    parts.append("<h2>Most confused classes</h2>")
    if result["most_confused"]:
        parts.append(
            "<table><tr><th>true class</th><th>taken for</th><th class=n>images</th>"
            "<th class=n>share of the true class</th></tr>"
        )
        parts += [
            f"<tr><td>{_e(p['true'])}</td><td>{_e(p['predicted'])}</td><td class=n>{p['count']}</td>"
            f"<td class=n>{p['share_of_true']:.1%}</td></tr>"
            for p in result["most_confused"]
        ]
        parts.append("</table>")
    else:
        parts.append("<p>No confusions: every image was classified correctly.</p>")
    parts.append(f"<img alt='reliability diagram' src='{reliability_diagram(result)}'>")
    parts.append(f"<h2>Confusion matrix</h2><img alt='confusion matrix' src='{confusion_heatmap(result)}'>")

    parts.append("<h2>Most confident mistakes</h2>")
    explanation = result.get("explanation") or {}
    if "layer" in explanation:
        parts.append(
            f"<p>Beside each image, the Grad-CAM of the class it was taken for (at {_e(explanation['layer'])}, "
            f"{_e(explanation['runtime'])}): red is where the model found that class.</p>"
        )
    elif "unavailable" in explanation:
        parts.append(f"<p>No Grad-CAM: {_e(explanation['unavailable'])}</p>")
    parts.append("<div class=gallery>")
    for mistake in result["worst_mistakes"]:
        source = image_root / mistake["source"] if image_root else None
        picture = (
            thumbnail(source)
            if source and source.is_file()
            else ("data:image/jpeg;base64," + mistake["crop_jpeg"] if "crop_jpeg" in mistake else None)
        )
        image = f"<img width={THUMBNAIL} alt='{_e(mistake['source'])}' src='{picture}'>" if picture else ""
        cam = gradcam_overlay(mistake, explanation)
        image += f" <img width={THUMBNAIL} alt='Grad-CAM of {_e(mistake['source'])}' src='{cam}'>" if cam else ""
        image += "<br>" if image else ""
        parts.append(
            f"<div class=card>{image}<b>{_e(mistake['source'])}</b><br>true: {_e(mistake['true'])} "
            f"({mistake['true_probability']:.1%})<br>predicted: {_e(mistake['predicted'])} "
            f"({mistake['probability']:.1%})</div>"
        )
    parts.append("</div>" + ("" if result["worst_mistakes"] else "<p>No mistakes.</p>"))

    parts.append(
        "<h2>Per class (worst F1 first)</h2><table><tr><th>class</th><th class=n>precision</th>"
        "<th class=n>recall</th><th class=n>F1</th><th class=n>images</th></tr>"
    )
    for name, row in sorted(result["per_class"].items(), key=lambda item: (item[1]["f1"], item[0])):
        parts.append(
            f"<tr><td>{_e(name)}</td><td class=n>{row['precision']:.3f}</td>"
            f"<td class=n>{row['recall']:.3f}</td><td class=n>{row['f1']:.3f}</td>"
            f"<td class=n>{row['support']}</td></tr>"
        )
    parts.append("</table>")
    if result.get("skipped"):
        parts.append("<h2>Skipped files</h2><ul>")
        parts += [f"<li>{_e(s['path'])}: {_e(s['reason'])}</li>" for s in result["skipped"]]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)
