"""The trade-off a report and a study look at: which accuracy and latency figures are compared, and
the models that no other beats on both (the Pareto front).

Plain data only, no plotting: :mod:`slimkit.plots` draws these, :mod:`slimkit.study.search` chooses by them.
"""

from __future__ import annotations

from collections.abc import Collection

# The accuracy figure compared: the first of these that the run measured.
ACCURACY_PREFERENCE = ("micro_f1", "accuracy", "macro_f1", "jaccard")


def primary_accuracy(accuracy_names: Collection[str]) -> str | None:
    """The accuracy figure to plot and compare: the first of ``ACCURACY_PREFERENCE`` among the names
    of the accuracy metrics measured."""
    return next((n for n in ACCURACY_PREFERENCE if n in accuracy_names), None)


def primary_latency(metric_names: Collection[str]) -> str | None:
    """The latency figure to plot and optimise: the smallest batch at the longest padded length (``b1.s128``).

    Padded lengths come first because they are the figures users compare across runs and papers;
    the real-length figure (``b1.dyn``) depends on the eval texts.
    """
    names = {n for n in metric_names if n.startswith("latency_ms.")}

    def rank(name: str) -> tuple[int, int, int, str]:
        shape = [*name.removeprefix("latency_ms.").split("."), ""]
        batch = int(shape[0][1:]) if shape[0][1:].isdigit() else 1 << 30
        padded = shape[1].startswith("s") and shape[1][1:].isdigit()
        return (-batch, int(padded), int(shape[1][1:]) if padded else 0, name)

    return max(names, key=rank, default=None)


def pareto_front(pts: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Points that no other point beats on both axes (x lower is better, y higher is better)."""
    front = []
    for label, x, y in pts:
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for _, x2, y2 in pts)
        if not dominated:
            front.append((label, x, y))
    return sorted(front, key=lambda p: p[1])
