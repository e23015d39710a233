"""The studies as data: cells, hyperparameters from the notebooks, documented tables."""

from pathlib import Path

import pytest

from ablation.results import read_results
from ablation.studies import DOCUMENTED, STUDIES, get_study

# The study document's published tables (seed-README.md), typed in by hand.
PUBLISHED = {
    "sigmoid_vs_relu": {
        **{f"blocks={b}-sigmoid": v for b, v in zip(range(1, 9), (19.00, 21.75, 22.00, 22.95, 21.93, 22.55, 21.18, 18.59))},
        **{f"blocks={b}-relu": v for b, v in zip(range(1, 9), (23.01, 29.19, 32.63, 35.18, 35.18, 36.20, 37.49, 37.61))},
    },
    "batchnorm_vs_groupnorm": {
        **{f"batch_size={b}-batchnorm": v for b, v in zip((2, 4, 8, 16, 32, 64, 128), (10.01, 33.81, 44.55, 49.68, 52.16, 53.18, 52.05))},
        **{f"batch_size={b}-groupnorm": v for b, v in zip((2, 4, 8, 16, 32, 64, 128), (30.89, 40.46, 44.27, 48.85, 50.65, 51.37, 50.09))},
    },
    "conv_activation_norm_position": {
        "order=conv_bn_relu": 62.64, "order=conv_relu_bn": 58.50, "order=conv_leakyrelu_bn": 60.09,
    },
}


def test_registry_holds_the_three_studies_and_their_33_cells():
    from ablation.studies import DOCUMENTED

    assert [s.name for s in DOCUMENTED] == list(PUBLISHED)
    assert [len(s.cells) for s in DOCUMENTED] == [16, 14, 3]
    for study in STUDIES.values():
        assert len({c.id for c in study.cells}) == len(study.cells)


@pytest.mark.parametrize("name", PUBLISHED)
def test_documented_runs_average_to_the_published_table(name):
    study = get_study(name)
    assert set(study.documented) == set(PUBLISHED[name]) == {c.id for c in study.cells}
    for cell_id, published in PUBLISHED[name].items():
        assert study.documented[cell_id].mean == pytest.approx(published, abs=0.011), cell_id


def test_documented_run_counts_are_the_notebooks():
    runs = {name: {len(d.runs) for d in get_study(name).documented.values()} for name in PUBLISHED}
    assert runs == {"sigmoid_vs_relu": {5}, "batchnorm_vs_groupnorm": {1}, "conv_activation_norm_position": {3}}


def test_hyperparameters_are_what_the_notebooks_ran():
    sr, bg, order = (get_study(n).settings() for n in PUBLISHED)
    assert (sr.per_class, sr.batch_size, sr.epochs, sr.optimizer, sr.amp) == (300, 512, 10, "adamw", False)
    assert sr.optimizer_args == {"lr": 1e-3, "weight_decay": 0.01} and sr.scheduler is None
    assert (bg.per_class, bg.batch_size, bg.epochs, bg.optimizer, bg.amp) == (200, None, 10, "sgd", True)
    assert bg.optimizer_args == {"lr": 0.0195, "momentum": 0.91, "weight_decay": 0.0}
    assert (bg.scheduler, bg.scheduler_args) == ("cosine", {"T_max": 10, "eta_min": 0.003})
    assert get_study("batchnorm_vs_groupnorm").groups == (4, 8, 8)
    assert (order.per_class, order.batch_size, order.epochs, order.scheduler) == (500, 256, 50, "step")
    assert order.scheduler_args == {"step_size": 20, "gamma": 0.1}


def test_the_norm_study_batch_size_is_the_cell_level():
    study = get_study("batchnorm_vs_groupnorm")
    assert [study.batch_size(c) for c in study.cells[::2]] == [2, 4, 8, 16, 32, 64, 128]


def test_smoke_profile_shrinks_only_size_and_length():
    study = get_study("conv_activation_norm_position")
    smoke, full = study.settings("smoke"), study.settings("full")
    assert (smoke.per_class, smoke.epochs, smoke.test_limit) == (20, 1, 1000)
    assert (smoke.optimizer_args, smoke.batch_size, smoke.amp) == (full.optimizer_args, full.batch_size, full.amp)


def test_unknown_names_say_what_exists():
    with pytest.raises(KeyError, match="choose one of: sigmoid_vs_relu"):
        get_study("sigmoid")
    with pytest.raises(KeyError, match="its cells: order=conv_bn_relu"):
        get_study("conv_activation_norm_position").cell("order=bn_conv_relu")


def test_the_long_variant_is_the_many_epochs_notebook():
    long = get_study("batchnorm_vs_groupnorm_long")
    hp = long.settings()
    assert (hp.per_class, hp.epochs, hp.optimizer, hp.amp) == (500, 100, "sgd", True)
    assert hp.optimizer_args == {"lr": 0.012, "momentum": 0.87, "weight_decay": 5e-4}
    assert hp.scheduler_args == {"T_max": 100, "eta_min": 0.0005} and long.seed == 1234
    assert long.documented["batch_size=2-batchnorm"].runs == (39.93,)
    assert long.documented["batch_size=128-groupnorm"].runs == (58.85,) and len(long.documented) == 14


def test_the_cifar100_variant_uses_32_groups_where_they_divide():
    study = get_study("batchnorm_vs_groupnorm_cifar100")
    assert study.dataset == "cifar100" and study.documented == {}
    model = study.model(study.cell("batch_size=8-groupnorm"), classes=100)
    norms = [m for m in model.modules() if m.__class__.__name__ == "GroupNorm"]
    assert [(n.num_groups, n.num_channels) for n in norms] == [(16, 16), (32, 32), (32, 64)]
    assert study.settings() == get_study("batchnorm_vs_groupnorm").settings()


def test_all_means_the_three_documented_studies():
    from ablation.studies import DOCUMENTED

    assert [s.name for s in DOCUMENTED] == list(PUBLISHED)
    assert {s.variant_of for s in STUDIES.values()} == {None, "batchnorm_vs_groupnorm"}


def test_default_seeds_are_the_recorded_runs_seeds():
    """A pull request's run pairs seed by seed with a baseline of earlier code only where both keep the same
    seeds; the recorded H200 runs, and the paired figures measured on them, have these."""
    recorded = read_results(Path(__file__).resolve().parent.parent / "bench" / "recorded" / "h200-bench.json")
    for study in DOCUMENTED:
        for cell_id, record in recorded["studies"][study.name]["cells"].items():
            assert record["seeds"] == study.seeds(study.replicates), (study.name, cell_id)


def test_replicate_plans():
    """pr is each study's own count, nightly more where the study is documented, null five times pr (five
    pseudo-runs of the bench a run), and a number is taken as is."""
    counts = {s.name: tuple(s.replicates_for(plan) for plan in ("pr", "nightly", "null", 7)) for s in STUDIES.values()}
    assert counts["sigmoid_vs_relu"] == (5, 16, 25, 7)
    assert counts["batchnorm_vs_groupnorm"] == (8, 16, 40, 7)
    assert counts["conv_activation_norm_position"] == (3, 24, 15, 7)
    assert counts["batchnorm_vs_groupnorm_long"][:2] == (3, 3)  # 100 epochs: the variants keep their counts
    with pytest.raises(ValueError, match="unknown replicate plan 'weekly'"):
        STUDIES["sigmoid_vs_relu"].replicates_for("weekly")
