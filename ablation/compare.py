"""Drift between two results files: per-cell accuracy change with its significance, and throughput."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ablation.results import ResultsError, render
from ablation.verdict import Tolerance, Verdict, check_cell


@dataclass(frozen=True)
class Drift:
    verdict: Verdict
    baseline: dict[str, Any]
    current: dict[str, Any]
    throughput_ratio: float
    throughput_ok: bool | None  # None: different devices, not compared

    @property
    def regression(self) -> bool:
        return not self.verdict.passed or self.throughput_ok is False


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerance: Tolerance,
            min_throughput: float) -> list[Drift]:
    """Judge every cell present in both files against the baseline's replicates."""
    common = [s for s in current["studies"] if s in baseline["studies"]]
    if not common:
        raise ResultsError(f"the files share no study (baseline: {', '.join(baseline['studies']) or 'none'}; "
                           f"current: {', '.join(current['studies']) or 'none'})")
    same_device = baseline["environment"]["device_name"] == current["environment"]["device_name"]
    drifts = []
    for name in common:
        base, cur = baseline["studies"][name], current["studies"][name]
        if base["data_checksum"] != cur["data_checksum"]:
            raise ResultsError(f"{name} was measured on different data ({baseline['data']} vs {current['data']}, "
                               "checksums differ); compare runs on the same data")
        for cell_id in (c for c in cur["cells"] if c in base["cells"]):
            b, c = base["cells"][cell_id], cur["cells"][cell_id]
            verdict = check_cell(name, cell_id, c, b["accuracy"], tolerance, copy=False, classes=cur.get("classes", 10))
            ratio = c["images_per_s"] / b["images_per_s"]
            drifts.append(Drift(verdict, b, c, ratio, ratio >= min_throughput if same_device else None))
    return drifts


def drift_table(drifts: list[Drift], markdown: bool) -> str:
    headers = ["study", "cell", "baseline", "current", "change", "z", "accuracy", "img/s ratio", "throughput"]
    rows = []
    for d in drifts:
        base, cur = statistics.fmean(d.baseline["accuracy"]), statistics.fmean(d.current["accuracy"])
        se = _se(d.baseline["accuracy"], d.current["accuracy"])
        z = f"{(cur - base) / se:+.1f}" if se > 0 else "-"
        throughput = {True: "ok", False: "REGRESSION", None: "other device"}[d.throughput_ok]
        rows.append([d.verdict.study, d.verdict.cell, f"{base:.2f}", f"{cur:.2f}", f"{cur - base:+.2f}", z,
                     "ok" if d.verdict.passed else "REGRESSION", f"{d.throughput_ratio:.2f}", throughput])
    return render(headers, rows, markdown)


def _se(a: list[float], b: list[float]) -> float:
    var = sum(statistics.variance(x) / len(x) for x in (a, b) if len(x) > 1)
    return var ** 0.5


def summary(drifts: list[Drift], tolerance: Tolerance, min_throughput: float) -> str:
    regressions = [d for d in drifts if d.regression]
    head = (f"{len(drifts)} cells compared, {len(regressions)} regressions "
            f"(accuracy band: z={tolerance.z}, sd floor {tolerance.sd_floor}, hardware ±{tolerance.hardware} points; "
            f"throughput below {min_throughput:.0%} of the baseline on the same device)")
    return "\n".join([head] + [f"- {d.verdict.study}[{d.verdict.cell}]: {d.verdict.reason}"
                               + ("" if d.throughput_ok is not False else f"; throughput x{d.throughput_ratio:.2f}")
                               for d in regressions])
