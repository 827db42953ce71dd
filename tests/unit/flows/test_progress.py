"""The terminal progress bars: the training bar fits an 80-column terminal; the checks' bar nests the shadows'."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

import synthgate.flows.stages as stages
from synthgate.flows.stages import count_progress, training_bar, training_description
from synthgate.models.synthesizers.base import TrainingProgress


@pytest.mark.parametrize(
    "p",
    [
        TrainingProgress(
            epoch=4.0, epochs=8, step=123, steps=246, generator_loss=1.234, critic_fake_score=-0.123, epsilon=1.234
        ),
        # wide values: three-digit epochs, a large negative loss, ε of 10
        TrainingProgress(
            epoch=120.5,
            epochs=300,
            step=123456,
            steps=300000,
            generator_loss=-12.345,
            critic_fake_score=-1.234,
            epsilon=10.0,
        ),
    ],
)
def test_the_training_bar_fits_80_columns_whole(p: TrainingProgress) -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    bar = training_bar(console)
    task = bar.add_task("", total=1.0)
    bar.update(task, completed=p.step / p.steps, description=training_description(p))
    console.print(bar.make_tasks_table(bar.tasks))
    (line,) = console.file.getvalue().splitlines()
    assert len(line) <= 80, line
    assert training_description(p) in line and "…" not in line  # nothing cut
    assert line.startswith("training ") and line.rstrip().endswith("0:00:00")  # the elapsed time shown too


def test_a_loss_not_yet_measured_shows_a_dash_not_nan() -> None:
    # wgan-gp's generator first steps after n_critic critic steps: until then its loss is NaN
    p = TrainingProgress(
        epoch=0.1,
        epochs=8,
        step=2,
        steps=160,
        generator_loss=float("nan"),
        critic_fake_score=float("nan"),
        epsilon=0.01,
    )
    text = training_description(p)
    assert "nan" not in text.lower()
    assert "G –" in text and "D(fake) –" in text


def test_the_epoch_shown_never_passes_the_plan() -> None:
    """steps = ceil(epochs / q), so step * q ends past the plan (it showed "ep 16.0/16.0078");
    the loop reports the planned passes times the share of steps done."""
    from synthgate.models.synthesizers.base import Synthesizer

    seen: list[TrainingProgress] = []

    class Ledger:
        epsilon = 0.5

    report = Synthesizer._report
    q, epochs = 0.0039, 16.0
    steps = -(-int(epochs * 10_000) // int(q * 10_000))  # ceil(epochs / q) = 4103
    for step in (1, steps // 2, steps):
        # _report reads nothing of the model when epochs is given
        report(
            SimpleNamespace(),
            seen.append,
            step=step,
            steps=steps,
            sample_rate=q,  # type: ignore[arg-type]
            generator_loss=0.0,
            critic_fake_score=0.0,
            ledger=Ledger(),
            epochs=epochs,
        )  # type: ignore[arg-type]
    assert seen[-1].epoch == epochs and "ep 16.0/16 " in training_description(seen[-1])
    assert all(p.epoch <= epochs for p in seen)


def test_a_bar_opened_inside_another_stacks_below_it(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(stages, "_STDERR", Console(file=out, width=80, force_terminal=True, color_system=None))
    with count_progress(True, "checks", 4) as checks:
        checks()
        with count_progress(True, "shadow models", 2) as shadows:
            shadows()
            shadows()
        checks(3)
    text = out.getvalue()
    assert "checks" in text and "4/4" in text and "shadow models" in text and "2/2" in text
    with count_progress(False, "checks", 4) as hidden:
        hidden()  # a no-op when the bars are off
