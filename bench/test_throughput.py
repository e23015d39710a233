"""Each study's throughput (all its images over all its training time) against the baseline's."""

from __future__ import annotations

import pytest

from ablation.compare import study_throughput, why_not_comparable
from ablation.studies import STUDIES
from bench.harness import variant_marks


@pytest.mark.gpu
@pytest.mark.parametrize("study_name", [pytest.param(name, marks=variant_marks(name)) for name in STUDIES])
def test_throughput(study_name, bench):
    if bench.baseline is None or study_name not in bench.baseline["studies"]:
        pytest.skip("no --baseline with this study to compare throughput against")
    base_cells = bench.baseline["studies"][study_name]["cells"]
    stored = {c: bench.cache.get(study_name, c) for c in base_cells}
    same_device = next(iter(stored.values()))["environment"]["device_name"] == bench.baseline["environment"]["device_name"]
    cells = [s["record"] for s in stored.values()]
    why_not = why_not_comparable(same_device, list(base_cells.values()), cells)
    if why_not:
        pytest.skip(f"throughput not comparable with the baseline's: {why_not}")
    before = study_throughput(list(base_cells.values()))
    after = study_throughput(cells)
    assert after >= bench.min_throughput * before, (
        f"{study_name}: {after:,.0f} img/s is x{after / before:.2f} of the baseline's {before:,.0f} "
        f"(minimum x{bench.min_throughput})")
