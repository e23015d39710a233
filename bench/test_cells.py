"""Every documented cell, trained on the GPU and held to the documented table (and to a baseline, if given).

Ids read ``test_<study>[<cell>]``, e.g. ``test_sigmoid_vs_relu[blocks=4-relu]``;
select with ``-k``, e.g. ``-k "sigmoid_vs_relu and relu"``.
"""

from __future__ import annotations

import pytest

from ablation.compare import judge_cell_metrics
from ablation.numerics import same_training
from ablation.results import ResultsError
from ablation.studies import get_study
from ablation.verdict import check_against_baseline, check_cell, for_baseline
from bench.harness import variant_marks


def cell_test(study_name: str):
    marks = [pytest.mark.gpu] + variant_marks(study_name)

    @pytest.mark.parametrize("cell_id", [pytest.param(cell.id, marks=pytest.mark.trains(study_name, cell.id))
                                         for cell in get_study(study_name).cells])
    def test(cell_id, bench, request):
        timing = []  # pytest-benchmark's fixture, taken only by the test that trains the cell: unused, it warns

        def timed(train):
            timing.append(request.getfixturevalue("benchmark"))
            return timing[0].pedantic(train, rounds=1, iterations=1)

        stored = bench.cache.get(study_name, cell_id, timed=timed)
        record, classes = stored["record"], stored["entry"]["classes"]
        for benchmark in timing:
            benchmark.extra_info.update(images_per_s=record["images_per_s"], accuracy=record["accuracy"])
        failures = []
        if record["documented"]:
            runs = record["documented"]["runs"]
            verdict = check_cell(study_name, cell_id, record, runs, bench.tolerance, bench.copy, classes)
            if not verdict.passed:
                failures.append("against the documented table: " + verdict.message(record, runs))
        base_study = bench.baseline and bench.baseline["studies"].get(study_name)
        base = base_study and base_study["cells"].get(cell_id)
        if base and base_study["data_checksum"] != stored["entry"]["data_checksum"]:
            failures.append(f"the baseline measured {study_name} on other data ({bench.baseline['data']}, checksum "
                            f"{base_study['data_checksum']}) than this run ({stored['entry']['data_checksum']}); "
                            "pass a baseline made with the same --bench-data")
        elif base:
            tolerance = for_baseline(bench.tolerance, stored["environment"]["device_name"],
                                     bench.baseline["environment"]["device_name"])
            verdict = check_against_baseline(study_name, cell_id, record, base, tolerance, classes)
            if not verdict.passed:
                failures.append("against the baseline: " + verdict.message(record, base["accuracy"]))
            same_device = stored["environment"]["device_name"] == bench.baseline["environment"]["device_name"]
            failures += [f"against the baseline: {study_name}[{cell_id}]: {m.describe()}"
                         for m in judge_cell_metrics(study_name, cell_id, base, record, tolerance, same_device)
                         if not m.passed]
            if bench.tolerance.same_training:
                try:
                    numerics = same_training(bench.baseline, stored, base, record, f"{study_name}[{cell_id}]")
                except ResultsError as error:
                    failures.append(str(error))
                else:
                    if numerics.verdict == "changed":
                        failures.append(f"against the baseline: numerics changed (--same-training): {numerics.detail}")
        assert not failures, "\n".join(failures)

    test.__name__ = f"test_{study_name}"
    test.pytestmark = test.pytestmark + marks
    return test


test_sigmoid_vs_relu = cell_test("sigmoid_vs_relu")
test_batchnorm_vs_groupnorm = cell_test("batchnorm_vs_groupnorm")
test_conv_activation_norm_position = cell_test("conv_activation_norm_position")
test_batchnorm_vs_groupnorm_long = cell_test("batchnorm_vs_groupnorm_long")  # --variants
