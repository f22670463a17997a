"""Text and PNG reports of a video-grouped evaluation (matplotlib imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .train import EvalReport


def confusion_text(classes: list[str], cm: np.ndarray) -> str:
    """Confusion matrix as an aligned table: rows true class, columns predicted, plus recall."""
    w = max(6, max(len(c) for c in classes) + 1)
    head = "true \\ pred".ljust(w + 6) + "".join(c[:w].rjust(w) for c in classes) + "  recall".rjust(w + 2)
    lines = [head]
    for i, c in enumerate(classes):
        n = cm[i].sum()
        rec = f"{cm[i, i] / n:.1%}" if n else "n/a"
        lines.append(c.ljust(w + 6) + "".join(str(int(v)).rjust(w) for v in cm[i]) + rec.rjust(w + 2))
    return "\n".join(lines)


def summary_text(report: EvalReport) -> str:
    acc = report.accuracies
    lines = [f"per-window accuracy on {len(acc)} video-grouped folds: mean {acc.mean():.1%}, std {acc.std():.1%}"]
    for f in report.folds:
        lines.append(
            f"  fold {f.fold + 1}: {f.accuracy:.1%} on {f.n_windows} windows; test videos: {', '.join(f.test_groups)}"
        )
    lines.append("per-class recall (all folds pooled):")
    for c, r in zip(report.classes, report.recalls()):
        lines.append(f"  {c:10s} {r:.1%}" if np.isfinite(r) else f"  {c:10s} n/a")
    lines.append("confusion matrix (all folds pooled):")
    lines.append(confusion_text(report.classes, report.confusion()))
    return "\n".join(lines)


def confusion_png(classes: list[str], cm: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k), dpi=100)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.0%}\n{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
