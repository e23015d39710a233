"""Each study's throughput (all its images over all its training time) against the baseline's."""

from __future__ import annotations

import pytest

from ablation.compare import judge_throughput
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
    throughput = judge_throughput(study_name, list(base_cells.values()), [s["record"] for s in stored.values()],
                                  same_device, bench.min_throughput)
    if throughput.ok is None:
        pytest.skip(f"throughput not comparable with the baseline's: {throughput.why_not_judged}")
    assert throughput.ok, (
        f"{study_name}: {throughput.current:,.0f} img/s is x{throughput.ratio:.2f} of the baseline's "
        f"{throughput.baseline:,.0f} (minimum x{bench.min_throughput})")
