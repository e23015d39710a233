"""Each study as a whole against the baseline: its throughput (all its images over all its training time), and
whether its accuracy shifted over all its cells (compare.judge_study_shift)."""

from __future__ import annotations

from typing import Any

import pytest

from ablation.compare import judge_study_shifts, judge_throughput, min_throughput, not_timed
from ablation.studies import STUDIES
from ablation.verdict import Tolerance, for_baseline
from bench.harness import variant_marks

PARAMS = [pytest.param(name, marks=variant_marks(name) + [pytest.mark.trains(name, *(c.id for c in study.cells))])
          for name, study in STUDIES.items()]


def against_baseline(study_name: str, bench: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The baseline's cells of the study, this run's records of the same cells, and this run as a results file's
    header (environment, profile, bench, the cells this session trains); skips without a baseline holding the
    study."""
    if bench.baseline is None or study_name not in bench.baseline["studies"]:
        pytest.skip("no --baseline with this study to compare against")
    base_cells = bench.baseline["studies"][study_name]["cells"]
    stored = {c: bench.cache.get(study_name, c) for c in base_cells}
    current = next(iter(stored.values()))
    if current["entry"]["data_checksum"] != bench.baseline["studies"][study_name]["data_checksum"]:
        pytest.skip("the baseline measured this study on other data (the cell tests fail on it)")
    config = bench.cache.config
    header = {"environment": current["environment"], "profile": config.profile, "bench": {"workers": config.workers},
              "studies": bench.trained}
    return base_cells, {c: s["record"] for c, s in stored.items()}, header


def near_baseline(bench: Any, header: dict[str, Any]) -> Tolerance:
    return for_baseline(bench.tolerance, header["environment"]["device_name"],
                        bench.baseline["environment"]["device_name"])


@pytest.mark.gpu
@pytest.mark.parametrize("study_name", PARAMS)
def test_throughput(study_name, bench):
    base_cells, current, header = against_baseline(study_name, bench)
    before, after = list(base_cells.values()), list(current.values())
    why_not = not_timed(bench.baseline, header, before, after)
    if why_not:
        pytest.skip(f"throughput not comparable with the baseline's: {why_not}")
    limit = bench.min_throughput if bench.min_throughput is not None else min_throughput(near_baseline(bench, header))
    throughput = judge_throughput(study_name, before, after, limit)
    assert throughput.ok, (
        f"{study_name}: {throughput.current:,.0f} img/s is x{throughput.ratio:.2f} of the baseline's "
        f"{throughput.baseline:,.0f} (minimum x{limit:.2f})")


@pytest.mark.gpu
@pytest.mark.parametrize("study_name", PARAMS)
def test_accuracy_shift(study_name, bench):
    """The study's accuracy, and on the same device its loss metrics, against the baseline's."""
    base_cells, current, header = against_baseline(study_name, bench)
    same_device = header["environment"]["device_name"] == bench.baseline["environment"]["device_name"]
    shifts = judge_study_shifts(study_name, base_cells, current, near_baseline(bench, header), same_device)
    if not shifts:
        pytest.skip("fewer than two comparable cells or replicates to judge a shift of the whole study by")
    failed = [s.describe() for s in shifts if not s.passed]
    assert not failed, "; ".join(failed) + ": beyond the alarm budget's share"
