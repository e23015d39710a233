"""Reports people look at: figures per study, a Markdown report mirroring the study document, run history."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from ablation.findings import FINDINGS
from ablation.power import power_rows, power_table
from ablation.results import (NOT_JUDGED, ResultsError, mean_sd, measured_text, ordered_studies, planted_fault,
                              read_results, render, short_commit, study_data, used_cuda_graphs)
from ablation.stats import level_shift
from ablation.studies import get_study
from ablation.verdict import Tolerance, check_against_baseline, check_documented, for_baseline

COLOURS = ("tab:red", "tab:blue", "tab:green")


def plot_results(results: dict[str, Any], directory: str | Path) -> list[Path]:
    """One PNG per study in ``directory``, named after the study."""
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, _ in ordered_studies(results):
        figure = study_figure(results, name)
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written


def study_figure(results: dict[str, Any], name: str):
    """Measured mean ± sd, every replicate as a dot, documented values as diamonds, chance as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study, entry = get_study(name), results["studies"][name]
    figure, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    if isinstance(study.levels[0], str):
        _bars(ax, study, entry)
    else:
        _lines(ax, study, entry)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{study.title}\n{_provenance(results, name)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return figure


def _provenance(results: dict[str, Any], name: str) -> str:
    env = results["environment"]
    return (f"{env['device_name']}, data {Path(study_data(results, name)).name}, profile {results['profile']}, "
            f"torch {env['torch']}")


def _lines(ax, study, entry) -> None:
    ax.axhline(100 / entry.get("classes", 10), color="grey", linestyle=":", linewidth=1, label="chance")
    for colour, variant in zip(COLOURS, study.variants):
        cells = [(c, entry["cells"].get(c.id)) for c in study.cells if c.variant == variant]
        cells = [(c, r) for c, r in cells if r]
        xs = [float(c.level) for c, _ in cells]
        stats = [mean_sd(r["accuracy"]) for _, r in cells]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], color=colour, marker="o",
                    capsize=3, label=f"{variant}: measured mean ± sd")
        for x, (_, r) in zip(xs, cells):
            ax.scatter([x] * len(r["accuracy"]), r["accuracy"], color=colour, alpha=0.45, s=14, linewidths=0)
        documented = [(float(c.level), study.documented[c.id].mean) for c, _ in cells if c.id in study.documented]
        if documented:
            ax.scatter(*zip(*documented), marker="D", facecolors="none", edgecolors=colour, s=40,
                       label=f"{variant}: documented")
    if study.factor == "batch_size":
        ax.set_xscale("log", base=2)
        ax.set_xticks([float(level) for level in study.levels], [str(level) for level in study.levels])
        ax.set_xlabel("batch size (log2 scale; dots: single replicates)")
    else:
        ax.set_xticks([float(level) for level in study.levels])
        ax.set_xlabel(f"number of {study.factor} (dots: single replicates)")


def _bars(ax, study, entry) -> None:
    cells = [(c, entry["cells"][c.id]) for c in study.cells if c.id in entry["cells"]]
    stats = [mean_sd(r["accuracy"]) for _, r in cells]
    positions = range(len(cells))
    ax.bar(positions, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4, color="tab:blue", alpha=0.6,
           label="measured mean ± sd")
    for x, (_, r) in zip(positions, cells):
        ax.scatter([x] * len(r["accuracy"]), r["accuracy"], color="black", s=10, zorder=3)
    documented = [(x, study.documented[c.id].mean) for x, (c, _) in zip(positions, cells) if c.id in study.documented]
    if documented:
        ax.scatter(*zip(*documented), marker="D", color="tab:red", s=40, zorder=4, label="documented")
    ax.set_xticks(list(positions), [str(c.level).replace("_", " → ") for c, _ in cells], fontsize=8)
    ax.set_xlabel("order of the parts in every block (dots: single replicates)")
    low = min(min(r["accuracy"]) for _, r in cells)
    ax.set_ylim(max(0.0, low - 10), None)


def markdown_report(results: dict[str, Any], tolerance: Tolerance = Tolerance()) -> str:
    """The study document's tables with documented, measured, difference and verdict columns, then the findings.

    A smoke-profile run is shown but not judged: one epoch on 20 images per class checks the pipeline, and its
    accuracies say nothing about the documented ones.
    """
    judged_profile = results["profile"] == "full"
    verdicts = {(v.study, v.cell): v for v in check_documented(results, tolerance)} if judged_profile else {}
    findings = FINDINGS if judged_profile else []
    env = results["environment"]
    graphs = used_cuda_graphs(c for _, entry in ordered_studies(results) for c in entry["cells"].values())
    lines = ["# ablation-bench report", "",
             f"{env['device_name']} · torch {env['torch']} · data `{results['data']}` · profile {results['profile']}"
             f"{' · CUDA graphs' if graphs else ''} · commit {short_commit(env) or 'unknown'}"
             f" · {results['created']}", ""]
    if not judged_profile:
        lines += [NOT_JUDGED.format(profile=results["profile"]), ""]
    if fault := planted_fault(results):
        lines += [f"Trained with a planted fault, {fault} (bench/faults.py): what the bench catches of it, not what "
                  "the code trains.", ""]
    for name, entry in ordered_studies(results):
        study = get_study(name)
        rows = []
        for cell in study.cells:
            record = entry["cells"].get(cell.id)
            if record is None:
                continue
            verdict = verdicts.get((name, cell.id))
            documented = record["documented"]["mean"] if record["documented"] else None
            if verdict:
                verdict_text = "**regression**" if not verdict.passed else (
                    "ok (band spans 0-100 %)" if verdict.band_spans_every_accuracy else "ok")
            else:
                verdict_text = "no documented value" if documented is None else "not judged"
            mean = statistics.fmean(record["accuracy"])
            rows.append([str(cell.level), cell.variant if cell.variant != cell.level else "",
                         f"{documented:.2f}" if documented is not None else "-",
                         measured_text(record, entry.get("classes", 10)),
                         f"{mean - documented:+.2f}" if documented is not None else "-", verdict_text])
        lines += [f"## {study.title} (`{name}`)", ""]
        if study_data(results, name) != results["data"]:
            lines += [f"Data: `{study_data(results, name)}`", ""]
        lines += [render([study.factor, "variant", "documented", "measured", "difference", "verdict"], rows, True), ""]
    if judged_profile and (powers := power_rows(results, tolerance)):
        lines += ["## Power", "", "The smallest shift of a whole study, and of its median cell, that its test "
                  "against a baseline of the same replicate counts and other seeds detects with 80 % probability "
                  "(`python -m ablation power`; against a baseline of the same seeds the tests are paired and see "
                  "smaller shifts: `power --baseline FILE`), how far the median cell must fall below the "
                  "documented table to fail (`documented table`: its 1-5 runs a cell make it a check for breakage), "
                  "and how far below its margin each finding's weakest contrast must fall to fail with that "
                  "probability:", "",
                  power_table(powers, None, True), ""]
    judged = [(f, f.judge(results, tolerance)) for f in findings if f.study in results["studies"]]
    judged = [(f, ok, detail) for f, (ok, detail) in judged if ok is not None]
    if judged:
        lines += ["## Findings", ""]
        lines += [f"- {'holds' if ok else '**fails**'}: {f.claim} ({detail})" for f, ok, detail in judged]
    return "\n".join(lines).rstrip() + "\n"


Series = dict[tuple[str, str], list[tuple[str, float, dict[str, Any]]]]  # history's (cell, data checksum) -> runs
HISTORY_ALPHA = 0.01  # false-alarm probability of the level-shift flags over all cells of a history


def history(directory: str | Path, tolerance: Tolerance = Tolerance(),
            min_shift: float = 1.0) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Each cell's mean accuracy over the results files in ``directory``, oldest first.

    A cell's series is its runs on the same data (checksum): a run on other
    data, the smoke profile's or another copy's, is no change of the code.  A
    value is marked ``!`` where it drifted from the run before it in its series
    (outside the band against that run's replicates), and ``^`` where a new
    level starts: the series of run means splits into an earlier and a later
    level that differ by ``min_shift`` points or more, by a pooled t-test over
    the split (stats.level_shift; HISTORY_ALPHA over all series), so a slow
    drift or a step that no single pair of runs shows is seen.  Returns the
    table, notes (files passed over, each level shift) and the alerts: the
    level shifts the newest run brings, that the history before it did not
    show (what a nightly job fails on, once per shift).
    """
    files, notes = [], []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            files.append((path, read_results(path)))
        except ResultsError as error:
            notes.append(f"passed over: {error}")
    if not files:
        raise ResultsError(f"no results files in {directory}; pass a folder holding --out/--bench-out JSON files")
    files.sort(key=lambda file: file[1]["created"])
    runs = [results for _, results in files]
    labels = [f"{r['created'][:16]} {short_commit(r['environment'])}".strip() for r in runs]
    repeated = Counter(labels)  # runs of one commit made in the same minute are told apart by their file's name
    columns = [f"{label} {path.name}" if repeated[label] > 1 else label for label, (path, _) in zip(labels, files)]
    table, series = _history_table(runs, columns, tolerance)
    shifts = _level_shifts(series, min_shift)
    newest = runs[-1]
    before = _level_shifts({key: kept for key, points in series.items()
                            if (kept := [point for point in points if point[2] is not newest])}, min_shift)
    for (key, _), (column, _) in shifts.items():
        table[key][column] += " ^"
    frame = pd.DataFrame.from_dict(table, orient="index", columns=columns).fillna("-")
    frame.index.name = "cell"
    return (frame, notes + [note for _, note in shifts.values()],
            [note for key, (_, note) in shifts.items() if key not in before])


def _history_table(runs: list[dict[str, Any]], columns: list[str],
                   tolerance: Tolerance) -> tuple[dict[str, dict[str, str]], Series]:
    """history's cells by column (each mean, ``!`` outside the band against the run before it) and its series:
    (cell, data checksum) -> per run on that data, oldest first, its column, the cell's mean and the run."""
    table: dict[str, dict[str, str]] = {}
    series: Series = {}
    for column, results in zip(columns, runs):
        for name, entry in results["studies"].items():
            for cell_id, record in entry["cells"].items():
                key, mean = f"{name}[{cell_id}]", statistics.fmean(record["accuracy"])
                same_data = key, entry["data_checksum"]
                text = f"{mean:.2f}"
                if same_data in series:
                    before = series[same_data][-1][2]
                    near = for_baseline(tolerance, results["environment"]["device_name"],
                                        before["environment"]["device_name"])
                    verdict = check_against_baseline(name, cell_id, record, before["studies"][name]["cells"][cell_id],
                                                     near, entry.get("classes", 10))
                    if not verdict.passed:
                        text += " !"
                table.setdefault(key, {})[column] = text
                series.setdefault(same_data, []).append((column, mean, results))
    return table, series


def _level_shifts(series: Series, min_shift: float) -> dict[tuple[str, str], tuple[str, str]]:
    """Per series with a level shift (HISTORY_ALPHA over all the series): the column where its new level starts,
    and the note that says so."""
    shifts = {}
    for (key, checksum), points in series.items():
        shift = level_shift([mean for _, mean, _ in points], HISTORY_ALPHA / len(series), min_shift)
        if shift is not None:
            start, before, after, p = shift
            column = points[start][0]
            shifts[key, checksum] = (column, f"level shift: {key} from {before:.2f} to {after:.2f} from {column} "
                                             f"on (pooled t, adjusted p {p:.2g})")
    return shifts


def history_text(frame: pd.DataFrame, markdown: bool) -> str:
    headers = [frame.index.name] + list(frame.columns)
    rows = [[index, *values] for index, values in zip(frame.index, frame.values.tolist())]
    return render(headers, rows, markdown)
