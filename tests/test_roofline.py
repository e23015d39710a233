"""bench/roofline.py: the counted work of a training step, on the meta device."""

import pytest

from ablation.studies import get_study
from bench.roofline import PEAKS, Step, count_step, main


def test_a_steps_flops_are_the_convolutions_counted_by_hand():
    """Sigmoid/ReLU at 8 blocks, 5 replicates of 512 images: per image and replicate the forward pass of a 3->32
    and seven 32->32 3x3 convolutions on 32x32, their weight gradients, and the input gradients of all but the
    first (the images need none), plus the 1x1 head both ways."""
    first, other = 2 * 9 * 3 * 32 * 1024, 2 * 9 * 32 * 32 * 1024
    head = 2 * 32 * 10
    per_image = (first + 7 * other) * 2 + 7 * other + 3 * head
    study = get_study("sigmoid_vs_relu")
    step = count_step(study, study.cell("blocks=8-relu"))
    assert step.flops == pytest.approx(per_image * 512 * 5, rel=1e-6)
    assert not step.bf16 and step.steps == pytest.approx(10 * 3000 / 512)


def test_the_floor_is_the_larger_of_compute_and_the_convolutions_traffic():
    peaks = PEAKS["h200"]
    assert Step(494e12, 0, 0, 0, 1, False).floor_s(peaks) == pytest.approx(1.0)  # a second of TF32 work
    assert Step(0, 9.6e12, 4.8e12, 0, 1, True).floor_s(peaks) == pytest.approx(1.0)  # a second of bandwidth
    study = get_study("batchnorm_vs_groupnorm")
    small = count_step(study, study.cell("batch_size=2-batchnorm"))
    assert small.bf16 and 0 < small.bytes_floor < small.bytes_moved and small.ops > 50


def test_a_bad_cell_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--cell", "sigmoid_vs_relu:blocks=9-relu"])
    assert stop.value.code == 2
    assert "sigmoid_vs_relu has no cell 'blocks=9-relu'" in capsys.readouterr().err
