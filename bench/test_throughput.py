"""Each study's throughput (all its images over all its training time) against the baseline's."""

from __future__ import annotations

import pytest

from ablation.compare import study_throughput
from ablation.studies import STUDIES


@pytest.mark.gpu
@pytest.mark.parametrize("study_name", [
    pytest.param(name, marks=[pytest.mark.variant] if study.variant_of else []) for name, study in STUDIES.items()])
def test_throughput(study_name, bench):
    if bench.baseline is None or study_name not in bench.baseline["studies"]:
        pytest.skip("no --baseline with this study to compare throughput against")
    base_cells = bench.baseline["studies"][study_name]["cells"]
    stored = {c: bench.cache.get(study_name, c) for c in base_cells}
    if next(iter(stored.values()))["environment"]["device_name"] != bench.baseline["environment"]["device_name"]:
        pytest.skip("the baseline was measured on another device")
    before = study_throughput(list(base_cells.values()))
    after = study_throughput([s["record"] for s in stored.values()])
    assert after >= bench.min_throughput * before, (
        f"{study_name}: {after:,.0f} img/s is x{after / before:.2f} of the baseline's {before:,.0f} "
        f"(minimum x{bench.min_throughput})")
