"""Which groups of cells gained from training side by side: two `run --out` files of the same run, one after
another and with --side-by-side N.

    python -m bench.side_by_side_gain ALONE.json SIDE_BY_SIDE.json

For every group of cells that trained at once, the sum of those cells' training
times trained one after another beside the group's time, and the speed-up;
then per study and for the whole table.  This decides which cells `run` should
train side by side by default.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from ablation.results import ResultsError, ordered_studies, read_results, render, training_seconds


def groups(cells: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The cells of a study's records in the groups they trained in: consecutive cells, as run_study groups them,
    each group as many as its cells' side_by_side."""
    ids, found = list(cells), []
    while ids:
        size = cells[ids[0]].get("side_by_side", 1)
        found.append(ids[:size])
        ids = ids[size:]
    return found


def gains(alone: dict[str, Any], together: dict[str, Any]) -> list[list[str]]:
    """Rows: study, cells of a group, seconds one after another, seconds side by side, speed-up (time ratio)."""
    devices = [results["environment"]["device_name"] for results in (alone, together)]
    if devices[0] != devices[1]:
        raise ResultsError(f"the files ran on different devices ({devices[0]}, {devices[1]}); time both on one")
    rows = []
    totals = [0.0, 0.0]
    for name, entry in ordered_studies(together):
        if name not in alone["studies"]:
            raise ResultsError(f"{name} is not in the file of cells one after another")
        before = alone["studies"][name]["cells"]
        study_totals = [0.0, 0.0]
        for group in groups(entry["cells"]):
            missing = [c for c in group if c not in before]
            if missing:
                raise ResultsError(f"{name}: {missing[0]} is not in the file of cells one after another")
            times = (training_seconds(before[c] for c in group), training_seconds(entry["cells"][c] for c in group))
            rows.append([name, " ".join(group), f"{times[0]:.2f}", f"{times[1]:.2f}", f"x{times[0] / times[1]:.2f}"])
            study_totals = [t + s for t, s in zip(study_totals, times)]
        rows.append([f"**{name}**", "all", *(f"{t:.2f}" for t in study_totals),
                     f"x{study_totals[0] / study_totals[1]:.2f}"])
        totals = [t + s for t, s in zip(totals, study_totals)]
    rows.append(["**whole table**", "", *(f"{t:.2f}" for t in totals), f"x{totals[0] / totals[1]:.2f}"])
    return rows


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.side_by_side_gain", description=__doc__.splitlines()[0])
    parser.add_argument("alone", help="results of `run --out` with cells one after another")
    parser.add_argument("side_by_side", help="results of `run --side-by-side N --out` on the same data and device")
    args = parser.parse_args(argv)
    try:
        rows = gains(read_results(args.alone), read_results(args.side_by_side))
    except ResultsError as error:
        parser.error(str(error))
    return render(["study", "cells", "one after another s", "side by side s", "speed-up"], rows, markdown=True)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
