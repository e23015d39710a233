"""Which groups of cells gained from training side by side: two `run --out` files of the same run, one after
another (--side-by-side 1) and side by side (on CUDA by default, or --side-by-side N).

    python -m bench.side_by_side_gain ALONE.json SIDE_BY_SIDE.json

For every group of cells that trained at once, the sum of those cells' training
times trained one after another beside the group's time, and the speed-up;
then per study and for the whole table: what chose each study's default
(Study.side_by_side).
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
    rows, table_alone, table_together = [], [], []
    for name, entry in ordered_studies(together):
        before = alone["studies"].get(name, {}).get("cells", {})
        missing = [c for c in entry["cells"] if c not in before]
        if missing:
            raise ResultsError(f"{name}: {missing[0]} is not in the file of cells one after another")
        for group in groups(entry["cells"]):
            rows.append(_row(name, " ".join(group), [before[c] for c in group], [entry["cells"][c] for c in group]))
        study_alone, study_together = [before[c] for c in entry["cells"]], list(entry["cells"].values())
        rows.append(_row(f"**{name}**", "all", study_alone, study_together))
        table_alone += study_alone
        table_together += study_together
    rows.append(_row("**whole table**", "", table_alone, table_together))
    return rows


def _row(label: str, cells: str, alone: list[dict[str, Any]], together: list[dict[str, Any]]) -> list[str]:
    seconds = training_seconds(alone), training_seconds(together)
    return [label, cells, f"{seconds[0]:.2f}", f"{seconds[1]:.2f}", f"x{seconds[0] / seconds[1]:.2f}"]


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.side_by_side_gain", description=__doc__.splitlines()[0])
    parser.add_argument("alone", help="results of `run --side-by-side 1 --out`: cells one after another")
    parser.add_argument("side_by_side",
                        help="results of `run --out` with cells side by side, on the same data and device")
    args = parser.parse_args(argv)
    try:
        rows = gains(read_results(args.alone), read_results(args.side_by_side))
    except ResultsError as error:
        parser.error(str(error))
    return render(["study", "cells", "one after another s", "side by side s", "speed-up"], rows, markdown=True)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
