"""Drift between two results files: per-cell accuracy change with its significance, and throughput.

Throughput is judged per study (all images over all training time of the
cells both files hold): single small cells take under a second and their
images/s moved by up to 2x between two unchanged bench runs sharing one GPU
under ``-n 2``, while whole studies moved by 0.87-1.14x.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ablation.results import ResultsError, render, used_cuda_graphs
from ablation.verdict import Tolerance, Verdict, check_cell, for_baseline

MIN_THROUGHPUT = 0.75  # a study below this fraction of the baseline's images/s is a regression


@dataclass(frozen=True)
class Drift:
    verdict: Verdict
    baseline: dict[str, Any]
    current: dict[str, Any]

    @property
    def throughput_ratio(self) -> float:
        return self.current["images_per_s"] / self.baseline["images_per_s"]


@dataclass(frozen=True)
class Throughput:
    study: str
    baseline: float  # images/s over the compared cells
    current: float
    ok: bool | None  # None: not comparable (see why_not_judged)
    why_not_judged: str = ""

    @property
    def ratio(self) -> float:
        return self.current / self.baseline


def study_throughput(cells: list[dict[str, Any]]) -> float:
    return sum(c["images_per_s"] * c["wall_s"] for c in cells) / sum(c["wall_s"] for c in cells)


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerance: Tolerance,
            min_throughput: float = MIN_THROUGHPUT) -> tuple[list[Drift], list[Throughput]]:
    """Judge every cell present in both files against the baseline's replicates, and each study's throughput."""
    common = [s for s in current["studies"] if s in baseline["studies"]]
    if not common:
        raise ResultsError(f"the files share no study (baseline: {', '.join(baseline['studies']) or 'none'}; "
                           f"current: {', '.join(current['studies']) or 'none'})")
    same_device = baseline["environment"]["device_name"] == current["environment"]["device_name"]
    tolerance = for_baseline(tolerance, same_device)
    drifts, throughputs = [], []
    for name in common:
        base, cur = baseline["studies"][name], current["studies"][name]
        if base["data_checksum"] != cur["data_checksum"]:
            raise ResultsError(f"{name} was measured on different data ({baseline['data']} vs {current['data']}, "
                               "checksums differ); compare runs on the same data")
        cells = [c for c in cur["cells"] if c in base["cells"]]
        for cell_id in cells:
            b, c = base["cells"][cell_id], cur["cells"][cell_id]
            verdict = check_cell(name, cell_id, c, b["accuracy"], tolerance, copy=False, classes=cur.get("classes", 10))
            drifts.append(Drift(verdict, b, c))
        if cells:
            before, after = ([files["cells"][c] for c in cells] for files in (base, cur))
            throughputs.append(judge_throughput(name, before, after, same_device, min_throughput))
    return drifts, throughputs


def judge_throughput(study: str, before: list[dict[str, Any]], after: list[dict[str, Any]], same_device: bool,
                     min_throughput: float = MIN_THROUGHPUT) -> Throughput:
    """A study's images/s over the same cells against the baseline's; not judged across devices, nor between
    training with CUDA graphs and without."""
    why_not = ("other device" if not same_device
               else "CUDA graphs in one file only" if used_cuda_graphs(before) != used_cuda_graphs(after) else "")
    baseline, current = study_throughput(before), study_throughput(after)
    return Throughput(study, baseline, current, None if why_not else current / baseline >= min_throughput, why_not)


def regressed(drifts: list[Drift], throughputs: list[Throughput]) -> bool:
    return any(not d.verdict.passed for d in drifts) or any(t.ok is False for t in throughputs)


def drift_table(drifts: list[Drift], markdown: bool) -> str:
    headers = ["study", "cell", "baseline", "current", "change", "z", "verdict", "img/s ratio"]
    rows = []
    for d in drifts:
        base, cur = statistics.fmean(d.baseline["accuracy"]), statistics.fmean(d.current["accuracy"])
        se = sum(statistics.variance(x) / len(x) for x in (d.baseline["accuracy"], d.current["accuracy"])
                 if len(x) > 1) ** 0.5
        rows.append([d.verdict.study, d.verdict.cell, f"{base:.2f}", f"{cur:.2f}", f"{cur - base:+.2f}",
                     f"{(cur - base) / se:+.1f}" if se > 0 else "-",
                     "ok" if d.verdict.passed else "REGRESSION", f"{d.throughput_ratio:.2f}"])
    return render(headers, rows, markdown)


def throughput_table(throughputs: list[Throughput], markdown: bool) -> str:
    rows = [[t.study, f"{t.baseline:,.0f}", f"{t.current:,.0f}", f"{t.ratio:.2f}",
             {True: "ok", False: "REGRESSION", None: f"{t.why_not_judged}: not judged"}[t.ok]] for t in throughputs]
    return render(["study", "baseline img/s", "current img/s", "ratio", "verdict"], rows, markdown)


def summary(drifts: list[Drift], throughputs: list[Throughput], tolerance: Tolerance, min_throughput: float) -> str:
    slow = [t for t in throughputs if t.ok is False]
    worse = [d for d in drifts if not d.verdict.passed]
    head = (f"{len(drifts)} cells compared: {len(worse)} accuracy regressions, {len(slow)} of {len(throughputs)} "
            f"studies slower than {min_throughput:.0%} of the baseline (band: z={tolerance.z}, sd floor "
            f"{tolerance.sd_floor}, hardware ±{tolerance.hardware} points on another device, 0 on the same)")
    lines = [f"- {d.verdict.study}[{d.verdict.cell}]: {d.verdict.reason}" for d in worse]
    lines += [f"- {t.study}: {t.current:,.0f} img/s is x{t.ratio:.2f} of the baseline's {t.baseline:,.0f}" for t in slow]
    return "\n".join([head] + lines)


def report(drifts: list[Drift], throughputs: list[Throughput], tolerance: Tolerance, min_throughput: float,
           markdown: bool) -> str:
    parts = [drift_table(drifts, markdown), throughput_table(throughputs, markdown),
             summary(drifts, throughputs, tolerance, min_throughput)]
    if markdown:
        parts.insert(0, "## Drift against the baseline")
    return "\n\n".join(parts)
