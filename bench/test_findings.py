"""The study document's conclusions, asserted on the measured cells (trained once, shared with test_cells)."""

from __future__ import annotations

import pytest

from ablation.findings import FINDINGS
from bench.harness import variant_marks

PARAMS = [pytest.param(f, id=f"{f.study}:{f.name}",
                       marks=variant_marks(f.study) + [pytest.mark.trains(f.study, *f.cells)]) for f in FINDINGS]


@pytest.mark.gpu
@pytest.mark.parametrize("finding", PARAMS)
def test_finding(finding, bench):
    cells = {cell_id: bench.cache.get(finding.study, cell_id)["record"] for cell_id in finding.cells}
    passed, detail = finding.judge({"studies": {finding.study: {"cells": cells}}}, bench.tolerance)
    assert passed, f"{finding.claim}: {detail}"
