"""Taint test: a fit depends on the private table only through its DP mechanisms.

DESIGN.md ("The data contract is the privacy boundary", "Differential privacy, end to end"): the
codec's layout comes from the contract and its statistics (CDFs, the category frequencies the
conditional vector is drawn from, the row count) from one charged Gaussian histogram step. Every
network that reads a real row trains through ``models.dp.PrivateTrainer`` (DP-SGD). The generator
never touches a real row. If that holds, then once every DP mechanism ignores its input the fit is
a function of the contract, the seeds and the DP noise alone: two tables under the same contract
must give bit-identical codecs, conditional samplers and generators.

The data-entry points are the four places that charge the ledger. Each is neutralised as follows:

- ``models.codec.Codec.fit_dp`` (``codec-histograms``): called with a PUBLIC table built from the
  contract alone (``public_table``) instead of the private one. Charging, noise and
  post-processing run unchanged.
- ``models.dp.PrivateTrainer`` (``dp-sgd-*``: every critic/discriminator, tvae's VAE, medgan's and
  corgan's autoencoders, tablegan's classifier): ``clip_and_accumulate`` of the DPOptimizer each
  trainer builds is wrapped so that every per-sample gradient is zeroed just before clipping. Real
  rows still go through the forward and backward passes and Opacus' machinery, but each step adds
  noise only. The hooks path (``step``) and the ``torch.func`` path (``step_per_sample``) both end
  in that call. Under ghost clipping (ctgan's default) there are no per-sample gradients: the
  clipped sum the second backward leaves in ``p.grad`` is zeroed instead, in the optimizer's
  ``accumulate`` just before the noise.
- ``models.synthesizers.tablegan.release_feature_moments`` (``gaussian-feature-moments``): called
  with an empty feature batch, so it releases noise only.
- ``models.codec.Codec.refine_dp`` (``codec-coarse-histograms``: ctgan's coarse re-measurement of the
  numeric columns whose fine bins the codec's noise swamps): called with the PUBLIC table, as
  ``fit_dp``. Charging, noise and post-processing run unchanged.
- ``models.codec.Codec.zoom`` (``codec-zoom-histograms``: ctgan's finer measurement inside the bins that
  hold most of a column): called with the PUBLIC table, as ``fit_dp``. No default fit of the test's
  contract zooms (its public rows spread over the bounds), so the case ``ctgan-zoom`` fixes a plan (which
  bins: public, as the plan is read off released masses) and skips the guard that would drop those bins
  for holding too few rows (``DPCTGAN.zoom_noise_plan``) to run it. It has no positive control: 300 rows
  over a bin's sub-bins are all noise at the codec's σ, so a live zoom changes nothing either;
  tests/unit/models/test_codec_zoom.py shows that it reads the rows.
- ``models.marginals.measure_marginals`` (``marginal-selection`` and ``marginal-measurements``:
  ctgan's exponential-mechanism choice of pairs and 3-way tables, and their Gaussian count tables): called with the
  codec's encoding of the PUBLIC table instead of the private rows. Charging, selection draws, noise
  and the projection run unchanged.

Both runs use the same seed and the same SYNTHGATE_NOISE_SEED (tests/conftest.py), so the DP noise
and the Poisson batches repeat. Any other read of the private rows makes the runs differ: an exact
statistic, a BatchNorm over real rows, a loss on real rows feeding the generator, and so on. The
positive controls leave one mechanism at a time live and check that the difference shows, so the
test has power. A ledger entry that is not one of the neutralised mechanisms fails the test until
this file learns to neutralise it.

Besides the model (codec, conditional sampler, networks, samples), two more things are checked:
- the figures a release reports about the fit (training summary, progress reports);
- the row count. It is private too, and the models see it only through the DP estimate. A table
  with more rows must give the same model once the mechanisms are neutralised. A diagnostic test
  shows that the only route is the realised Poisson batch size.
The two leaks this test found (tvae reporting exact statistics of real rows, and the realised Poisson
batch size steering the generator) are fixed; the comments above their tests say how.

Third, the per-sample streams (``test_every_draw_in_a_private_step_comes_from_a_private_stream``): every
random torch call between a Poisson sample and the end of its mechanism is traced, and must draw from a
stream that follows the secret key (fake partners, conditions, α, VAE noise: ``Generators.per_sample``).

The fits are tiny (300 rows, Poisson rate ~0.1, 5 DP steps per network, small networks, ε = 1
because Opacus' RDP analysis is quickest there). The module runs on one torch thread, so that the
comparisons are exact and other processes on the machine slow it down less.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from torch.overrides import TorchFunctionMode

import synthgate.models.synthesizers.base as base_module
import synthgate.models.synthesizers.ctgan as ctgan_module
import synthgate.models.synthesizers.tablegan as tablegan_module
from synthgate.models.codec import Codec
from synthgate.models.dp import PrivateTrainer
from synthgate.models.ledger import PrivacyLedger
from synthgate.models.sampling import sample_where
from synthgate.models.synthesizers import MODEL_NAMES, get_synthesizer
from synthgate.models.synthesizers.base import (
    NOISE_SEED_ENV,
    PRIVATE_STREAMS,
    Generators,
    Synthesizer,
    TrainingProgress,
)
from synthgate.models.synthesizers.ctgan import DPCTGAN
from synthgate.validation.contract import (
    BooleanColumn,
    CategoricalColumn,
    ContinuousColumn,
    Contract,
    DatetimeColumn,
    IntegerColumn,
    parse_contract,
)

N_ROWS = 300
EXTRA_ROWS = 150  # the "larger" table: the real one plus this many more rows
SEED = 13
BATCH = 20  # expected Poisson batch: rate ~0.1 over the DP row-count estimate
EPOCHS = 0.5  # so ~5 DP steps per network
EPSILON = 1.0
CODEC = "codec-histograms"
REFINE = "codec-coarse-histograms"
ZOOM = "codec-zoom-histograms"
MOMENTS = "gaussian-feature-moments"
MARGINALS = "marginals"  # one interception charges both entries below
MARGINAL_ENTRIES = ("marginal-selection", "marginal-measurements")

# Small networks: the test is about where data flows, not about quality.
TINY: dict[str, dict[str, Any]] = {
    "ctgan": {"generator_dims": (32, 32), "critic_dims": (32, 32), "z_dim": 16},
    "tvae": {"encoder_dims": (32,), "decoder_dims": (32,), "latent_dim": 8},
    "gumbel-gan": {"generator_dims": (32, 32), "discriminator_dims": (32, 32), "z_dim": 16},
    "wgan-gp": {"generator_dims": (32, 32), "critic_dims": (32, 32), "z_dim": 16},
    "cwgan-gp": {"generator_dims": (32, 32), "critic_dims": (32, 32), "z_dim": 16},
    "medgan": {
        "autoencoder_epochs": EPOCHS,
        "latent_dim": 16,
        "z_dim": 16,
        "generator_dims": (16, 16),
        "discriminator_dims": (32, 32),
    },
    "corgan": {
        "autoencoder_epochs": EPOCHS,
        "latent_dim": 16,
        "z_dim": 16,
        "channels": (4, 4),
        "generator_channels": 4,
        "generator_length": 8,
    },
    "tablegan": {
        "z_dim": 16,
        "generator_channels": 8,
        "discriminator_channels": 4,
        "norm_groups": 2,
        "feature_dim": 8,
    },
    "tgan": {"z_dim": 8, "hidden_dim": 16, "feature_dim": 16, "embed_dim": 8, "discriminator_dims": (32, 32)},
}


@dataclass(frozen=True)
class Case:
    """A registered model with tiny settings, plus any options that change how it reads data."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    @property
    def id(self) -> str:
        return self.label or self.name


# Every registered model, plus the ctgan options with their own data paths: the critic conditioned
# on each real row's own category (with log-frequency conditions for the generator), and CTGAN's
# mode-specific normalisation (EM on the DP histogram), and 3-way marginals with the target (chosen by
# the exponential mechanism and measured after the pairs; the default plans none on 300 rows).
CASES: list[Case] = [Case(name) for name in MODEL_NAMES] + [
    Case("ctgan", (("critic_conditioning", True), ("log_frequency", True)), "ctgan-conditioned"),
    Case("ctgan", (("numeric_encoding", "modes"),), "ctgan-modes"),
    Case("ctgan", (("extra_triples", 2),), "ctgan-triples"),
    Case("ctgan", (), "ctgan-zoom"),
]
# the bins ``ctgan-zoom`` cuts finer (``Codec.zoom_plan`` replaced by this fixed, public plan)
ZOOM_PLAN = {"income": [5, 6], "weight": [3]}

# What each case's DP-SGD trainers are charged as (the positive controls make each one live).
DP_SGD: dict[str, list[str]] = {
    "ctgan": ["dp-sgd-critic"],
    "tvae": ["dp-sgd-vae"],
    "gumbel-gan": ["dp-sgd-discriminator"],
    "wgan-gp": ["dp-sgd-critic"],
    "cwgan-gp": ["dp-sgd-critic"],
    "medgan": ["dp-sgd-autoencoder", "dp-sgd-discriminator"],
    "corgan": ["dp-sgd-autoencoder", "dp-sgd-discriminator"],
    "tablegan": ["dp-sgd-discriminator", "dp-sgd-classifier"],
    "tgan": ["dp-sgd-critic"],
}


def test_every_registered_model_is_covered() -> None:
    assert set(MODEL_NAMES) == {c.name for c in CASES} == set(TINY) == set(DP_SGD)


# ---------------------------------------------------------------------------- contract and tables
@pytest.fixture(scope="module")
def contract() -> Contract:
    """Every modelled kind (nullable ones too), a categorical target, and two excluded columns."""
    return parse_contract(
        {
            "table": "taint",
            "target": "plan",
            "columns": {
                "member_id": {"kind": "identifier"},
                "email": {"kind": "pii"},
                "age": {"kind": "integer", "min": 18, "max": 90},
                "income": {"kind": "continuous", "min": 0.0, "max": 500.0, "nullable": True},
                "weight": {"kind": "integer", "min": 0, "max": 1_000_000},  # > 128 values: wide bins
                "joined": {"kind": "datetime", "min": "2000-01-01T00:00:00", "max": "2025-12-31T00:00:00"},
                "smoker": {"kind": "boolean"},
                "region": {"kind": "categorical", "categories": ["north", "south", "east", "west"], "nullable": True},
                "plan": {"kind": "categorical", "categories": ["basic", "plus", "premium"]},
            },
            "privacy": {"epsilon": EPSILON, "delta": 1e-6},
        },
        source="taint",
    )


_DTYPES: dict[type, pl.DataType] = {
    BooleanColumn: pl.Boolean(),
    CategoricalColumn: pl.Utf8(),
    ContinuousColumn: pl.Float64(),
    DatetimeColumn: pl.Datetime("us"),
    IntegerColumn: pl.Int64(),
}


def _frame(contract: Contract, n: int, value: Callable[[Any, int], Any]) -> pl.DataFrame:
    """Every contract column, ``value(column, i)`` in row i, in the column's dtype."""
    data = []
    for name, col in contract.columns.items():
        dtype = next((t for cls, t in _DTYPES.items() if isinstance(col, cls)), pl.Utf8())
        data.append(pl.Series(name, [value(col, i) for i in range(n)], dtype=dtype))
    return pl.DataFrame(data)


def public_table(contract: Contract, n: int) -> pl.DataFrame:
    """Rows made from the contract alone, cycling through domains and bounds. The neutralised codec
    step reads this instead of the private table, so it is the same for every fit under the contract."""

    def value(col: Any, i: int) -> Any:
        frac = (i * 0.618034) % 1.0
        if isinstance(col, CategoricalColumn):
            return col.categories[i % len(col.categories)]
        if isinstance(col, BooleanColumn):
            return i % 2 == 0
        if isinstance(col, IntegerColumn):
            return col.min + (i * 7919) % (col.max - col.min + 1)
        if isinstance(col, ContinuousColumn | DatetimeColumn):
            return col.min + (col.max - col.min) * frac
        return f"public-{i}"

    return _frame(contract, n, value)


def real_table(n: int, seed: int) -> pl.DataFrame:
    """The "private" table: seeded, columns depend on each other, some nulls, all within the contract."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, n)
    income = np.clip(rng.gamma(2.0, 15.0, n) + 0.8 * (age - 18), 0, 500)
    plan = np.clip((income / 60).astype(int) + rng.integers(0, 2, n) - 1, 0, 2)
    start = dt.datetime(2000, 1, 1)
    span = (dt.datetime(2025, 12, 31) - start).total_seconds()
    regions = ["north", "south", "east", "west", None]
    return pl.DataFrame(
        {
            "member_id": [f"M{seed}-{i:06d}" for i in range(n)],
            "email": [f"person{seed}-{i}@example.org" for i in range(n)],
            "age": age,
            "income": [None if rng.uniform() < 0.1 else float(v) for v in income],
            "weight": rng.integers(500, 900_000, n),
            "joined": [start + dt.timedelta(seconds=float(s)) for s in rng.uniform(0, span, n)],
            "smoker": (rng.uniform(size=n) < 0.2 + 0.3 * (age < 30)).tolist(),
            "region": [regions[r] for r in rng.integers(0, 5, n)],
            "plan": [["basic", "plus", "premium"][k] for k in plan],
        },
        schema_overrides={"joined": pl.Datetime("us"), "income": pl.Float64},
    )


def sentinel_table(contract: Contract, n: int) -> pl.DataFrame:
    """Every row the same sentinel: null where nullable, else the top of the domain. Within the contract."""

    def value(col: Any, i: int) -> Any:
        if col.nullable:
            return None
        if isinstance(col, CategoricalColumn):
            return col.categories[-1]
        if isinstance(col, BooleanColumn):
            return True
        if isinstance(col, IntegerColumn | ContinuousColumn | DatetimeColumn):
            return col.max
        return f"SENTINEL-{i}"

    return _frame(contract, n, value)


@pytest.fixture(scope="module")
def tables(contract: Contract) -> dict[str, pl.DataFrame]:
    real = real_table(N_ROWS, seed=0)
    return {
        "real": real,
        "sentinel": sentinel_table(contract, N_ROWS),
        "larger": pl.concat([real, real_table(EXTRA_ROWS, seed=1)], how="vertical"),
    }


def test_the_tables_satisfy_the_contract_and_differ(contract: Contract, tables: dict[str, pl.DataFrame]) -> None:
    from synthgate.validation.expectations import validate_frame

    for name, df in [*tables.items(), ("public", public_table(contract, N_ROWS))]:
        report = validate_frame(df, contract)
        assert report.success, (name, [f.__dict__ for f in report.failures])
    real, sentinel = (tables[k].select(contract.modelled_columns) for k in ("real", "sentinel"))
    assert real.height == sentinel.height == N_ROWS
    # No row in common and every column different: nothing a fit reads can agree by chance.
    assert real.join(sentinel, on=contract.modelled_columns, how="semi", nulls_equal=True).height == 0
    for c in contract.modelled_columns:
        assert not real[c].equals(sentinel[c]), c


# ---------------------------------------------------------------------------- neutralisation
@dataclass
class Taint:
    """``live``: the mechanisms that read the table given to ``fit``; the others get data-independent
    input. ``calls`` counts how often each mechanism was reached."""

    live: frozenset[str] = frozenset()
    calls: dict[str, int] = field(default_factory=dict)

    def reads_table(self, mechanism: str) -> bool:
        self.calls[mechanism] = self.calls.get(mechanism, 0) + 1
        return mechanism in self.live


@contextmanager
def neutralised(taint: Taint) -> Iterator[Taint]:
    """Patch every data-entry point (see the module docstring); restored on exit."""
    mp = pytest.MonkeyPatch()
    fit_dp = Codec.fit_dp
    refine_dp = Codec.refine_dp
    zoom = Codec.zoom
    trainer_init = PrivateTrainer.__init__
    release = tablegan_module.release_feature_moments
    measure = ctgan_module.measure_marginals

    @functools.wraps(fit_dp)
    def fit_dp_on_public_rows(self: Codec, df: pl.DataFrame, **kwargs: Any) -> None:
        if not taint.reads_table(CODEC):
            df = public_table(self.contract, N_ROWS).select(self.columns)
        fit_dp(self, df, **kwargs)

    @functools.wraps(refine_dp)
    def refine_dp_on_public_rows(self: Codec, df: pl.DataFrame, *args: Any, **kwargs: Any) -> None:
        if not taint.reads_table(REFINE):
            df = public_table(self.contract, N_ROWS).select(self.columns)
        refine_dp(self, df, *args, **kwargs)

    @functools.wraps(zoom)
    def zoom_on_public_rows(self: Codec, df: pl.DataFrame, *args: Any, **kwargs: Any) -> None:
        if not taint.reads_table(ZOOM):
            df = public_table(self.contract, N_ROWS).select(self.columns)
        zoom(self, df, *args, **kwargs)

    @functools.wraps(trainer_init)
    def init_with_noise_only_steps(self: PrivateTrainer, module: torch.nn.Module, **kwargs: Any) -> None:
        trainer_init(self, module, **kwargs)
        assert self.dp, "the taint test fits under DP only"
        mechanism = kwargs["mechanism"]
        if self.ghost:
            # ghost clipping: the second backward leaves the clipped per-sample sum in p.grad, which
            # the optimizer's accumulate() copies before adding noise
            accumulate = self.optimizer.accumulate

            def zero_then_accumulate() -> None:
                if not taint.reads_table(mechanism):
                    for p in self.optimizer.params:
                        if p.grad is not None:
                            p.grad.zero_()
                accumulate()

            self.optimizer.accumulate = zero_then_accumulate  # type: ignore[method-assign]
            return
        clip_and_accumulate = self.optimizer.clip_and_accumulate

        def zero_then_clip() -> None:
            if not taint.reads_table(mechanism):
                for p in self.optimizer.params:
                    grad_sample = p.grad_sample
                    for g in grad_sample if isinstance(grad_sample, list) else [grad_sample]:
                        g.zero_()
            clip_and_accumulate()

        self.optimizer.clip_and_accumulate = zero_then_clip  # type: ignore[method-assign]

    @functools.wraps(release)
    def release_noise_only(features: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if not taint.reads_table(MOMENTS):
            features = features[:0]  # an empty Poisson batch: the mechanism releases its noise only
        return release(features, **kwargs)

    @functools.wraps(measure)
    def measure_public_rows(x: np.ndarray, codec: Codec, **kwargs: Any) -> Any:
        if not taint.reads_table(MARGINALS):
            public = public_table(codec.contract, N_ROWS).select(codec.columns)
            x = codec.encode(public, rng=np.random.default_rng(0))
        return measure(x, codec, **kwargs)

    mp.setattr(Codec, "fit_dp", fit_dp_on_public_rows)
    mp.setattr(Codec, "refine_dp", refine_dp_on_public_rows)
    mp.setattr(Codec, "zoom", zoom_on_public_rows)
    mp.setattr(ctgan_module, "measure_marginals", measure_public_rows)
    mp.setattr(PrivateTrainer, "__init__", init_with_noise_only_steps)
    mp.setattr(tablegan_module, "release_feature_moments", release_noise_only)
    try:
        yield taint
    finally:
        mp.undo()


@contextmanager
def batches_from_first_rows(n: int) -> Iterator[None]:
    """Poisson-sample as if the table had only its first ``n`` rows: the same batches on a larger table."""
    mp = pytest.MonkeyPatch()
    for module in LOOP_MODULES:
        original = importlib.import_module(
            f"synthgate.models.synthesizers.{module}"
        ).poisson_sample  # the tracer's, if on
        mp.setattr(
            f"synthgate.models.synthesizers.{module}.poisson_sample",
            lambda rows, rate, g, original=original: original(min(rows, n), rate, g),
        )
    try:
        yield
    finally:
        mp.undo()


# The modules that draw Poisson batches and make a fit's streams: the one training loop every family
# runs (models/synthesizers/base.py, ``Synthesizer.fit``).
LOOP_MODULES = ("base",)


# ---------------------------------------------------------------------------- which stream each private draw uses
# Torch functions that draw random numbers (a ``generator=`` argument, or the global RNG without one).
RANDOM_OPS = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "rand_like",
        "randn_like",
        "randint_like",
        "randperm",
        "normal",
        "poisson",
        "bernoulli",
        "multinomial",
        "uniform_",
        "normal_",
        "bernoulli_",
        "exponential_",
        "geometric_",
        "cauchy_",
        "log_normal_",
        "random_",
        "dropout",
        "alpha_dropout",
        "feature_alpha_dropout",
        "gumbel_softmax",
        "rrelu",
    }
)
# Mechanisms whose samples pair a real row with random draws (fake partners, conditions, α, VAE noise);
# the others (autoencoders, tablegan's classifier and feature moments) read real rows alone.
PAIRED = frozenset({"dp-sgd-critic", "dp-sgd-discriminator", "dp-sgd-vae"})
GLOBAL_RNG = "the global RNG"
UNKNOWN = "a generator not made by make_generators"
OTHER_KEY = "424242"  # a second SYNTHGATE_NOISE_SEED, to tell which streams follow the secret key


@dataclass
class PrivateStep:
    """One private step: from its Poisson draw to the end of its mechanism; the stream of every draw."""

    mechanism: str = ""
    batch: int = 0
    draws: list[str] = field(default_factory=list)


@dataclass
class Draws:
    """What the tracer saw in one fit. ``streams``: id of each generator make_generators returned -> its
    field name; ``private``: the fields whose seed changes with the secret key (found by making the
    streams again under another key, so a stream derived from the public seed alone shows as public)."""

    streams: dict[int, str] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    steps: list[PrivateStep] = field(default_factory=list)
    open: PrivateStep | None = None
    unopened: list[str] = field(default_factory=list)  # steps that ended without a Poisson draw

    def name(self, g: Any) -> str:
        if g is None:
            return GLOBAL_RNG
        return self.streams.get(id(g), UNKNOWN)

    def stray(self) -> list[str]:
        """Draws in a private step from anything but a private stream of the fit."""
        return [
            f"{s.mechanism} step {i}: a draw from {d}"
            for i, s in enumerate(self.steps)
            for d in s.draws
            if d not in self.private
        ]


def _stream_seeds(g: Generators) -> dict[str, Any]:
    return {
        name: (json.dumps(str(v.bit_generator.state)) if isinstance(v, np.random.Generator) else v.initial_seed())
        for name, v in vars(g).items()
    }


class _DrawTracer(TorchFunctionMode):
    """Records, while a private step is open, the stream every random torch call draws from."""

    def __init__(self, draws: Draws) -> None:
        super().__init__()
        self.draws = draws

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        step = self.draws.open
        if step is not None and getattr(func, "__name__", "") in RANDOM_OPS:
            g = kwargs.get("generator", next((a for a in args if isinstance(a, torch.Generator)), None))
            step.draws.append(self.draws.name(g))
        return func(*args, **kwargs)


@contextmanager
def traced(draws: Draws) -> Iterator[Draws]:
    """Trace a fit: a private step opens at each Poisson sample and closes when its mechanism has run
    (``PrivateTrainer.step`` / ``step_per_sample``, tablegan's ``release_feature_moments``)."""
    mp = pytest.MonkeyPatch()
    make = base_module.make_generators

    def capturing_make_generators(seed: int, device: torch.device) -> Generators:
        gens = make(seed, device)
        key = os.environ.get(NOISE_SEED_ENV)
        os.environ[NOISE_SEED_ENV] = OTHER_KEY if key != OTHER_KEY else OTHER_KEY + "1"
        try:
            other = make(seed, device)
        finally:
            if key is None:
                del os.environ[NOISE_SEED_ENV]
            else:
                os.environ[NOISE_SEED_ENV] = key
        a, b = _stream_seeds(gens), _stream_seeds(other)
        draws.fields |= set(a)
        draws.private |= {name for name in a if a[name] != b[name]}
        draws.streams.update({id(v): name for name, v in vars(gens).items()})
        return gens

    def open_step(poisson: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def poisson_sample(n: int, rate: float, g: torch.Generator) -> torch.Tensor:
            draws.open = PrivateStep()
            draws.steps.append(draws.open)
            return poisson(n, rate, g)

        return poisson_sample

    def close_step(mechanism: str, batch: int) -> None:
        if draws.open is None:
            draws.unopened.append(mechanism)
        else:
            draws.open.mechanism, draws.open.batch = mechanism, batch
        draws.open = None

    step, step_per_sample = PrivateTrainer.step, PrivateTrainer.step_per_sample
    release = tablegan_module.release_feature_moments

    def traced_step(self: PrivateTrainer, loss_sum: Any, batch_size: int) -> None:
        step(self, loss_sum, batch_size)
        close_step(self.entry.mechanism, batch_size)

    def traced_step_per_sample(self: PrivateTrainer, loss_fn: Any, *samples: torch.Tensor) -> None:
        step_per_sample(self, loss_fn, *samples)
        close_step(self.entry.mechanism, samples[0].shape[0] if samples else 0)

    def traced_release(features: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out = release(features, **kwargs)
        close_step(MOMENTS, features.shape[0])
        return out

    for module in LOOP_MODULES:
        mod = importlib.import_module(f"synthgate.models.synthesizers.{module}")
        mp.setattr(mod, "make_generators", capturing_make_generators)
        mp.setattr(mod, "poisson_sample", open_step(mod.poisson_sample))
    mp.setattr(PrivateTrainer, "step", traced_step)
    mp.setattr(PrivateTrainer, "step_per_sample", traced_step_per_sample)
    mp.setattr(tablegan_module, "release_feature_moments", traced_release)
    try:
        with _DrawTracer(draws):
            yield draws
    finally:
        mp.undo()


# ---------------------------------------------------------------------------- fits and fingerprints
# one torch thread for the whole module, its shared fits included (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Fit:
    model: Synthesizer
    ledger: PrivacyLedger
    calls: dict[str, int]
    progress: list[TrainingProgress]
    draws: Draws


_FITS: dict[tuple[str, str, frozenset[str], bool], Fit] = {}


def fit(
    case: Case,
    contract: Contract,
    tables: dict[str, pl.DataFrame],
    table: str,
    live: frozenset[str] = frozenset(),
    *,
    same_batches: bool = False,
) -> Fit:
    """One DP fit of ``case`` on ``tables[table]`` in which only the ``live`` mechanisms read the table
    (cached: every test compares against the same fits). ``same_batches``: Poisson batches drawn from
    the first N_ROWS rows only."""
    key = (case.id, table, live, same_batches)
    if key not in _FITS:
        _FITS[key] = fit_now(case, contract, tables, table, live, same_batches=same_batches)
    return _FITS[key]


def fit_now(
    case: Case,
    contract: Contract,
    tables: dict[str, pl.DataFrame],
    table: str,
    live: frozenset[str] = frozenset(),
    *,
    same_batches: bool = False,
) -> Fit:
    """``fit`` without the cache."""
    cls = get_synthesizer(case.name)
    # the codec noise of ε = 3 (8): ε = 1's default would leave a 300-row table's DP row count so
    # noisy that a fit could take a single step, too few for the step-count checks below
    config = cls.config_class(
        epochs=EPOCHS, batch_size=BATCH, codec_noise_multiplier=8.0, **TINY[case.name], **dict(case.options)
    )
    ledger = PrivacyLedger(contract.privacy.delta)
    seen: list[TrainingProgress] = []
    pinned = batches_from_first_rows(N_ROWS) if same_batches else nullcontext()
    plan = pytest.MonkeyPatch()
    if case.id == "ctgan-zoom":
        plan.setattr(Codec, "zoom_plan", lambda self: ZOOM_PLAN)
        # and past the guard that drops bins of too few rows for the noise (300 rows: all of them)
        plan.setattr(
            DPCTGAN,
            "zoom_noise_plan",
            lambda self, p, *, ledger, epsilon: (p, self.zoom_noise(len(p), ledger=ledger, epsilon=epsilon)),
        )
    try:
        with neutralised(Taint(live)) as taint, traced(Draws()) as draws, pinned:
            model = cls(contract, config, device="cpu").fit(
                tables[table].select(contract.modelled_columns),
                ledger=ledger,
                epsilon=EPSILON,
                seed=SEED,
                progress=seen.append,
            )
    finally:
        plan.undo()
    return Fit(model, ledger, dict(taint.calls), seen, draws)


def codec_fingerprint(model: Synthesizer) -> str:
    """The codec's layout and its learned statistics (CDF masses, null rates, category frequencies, row
    count estimate, and under "modes" the mixtures)."""
    return json.dumps(
        {"layout": [b.__dict__ for b in model.codec.blocks], "state": model.codec.state()}, sort_keys=True
    )


def conditional_draws(model: Synthesizer) -> dict[str, torch.Tensor]:
    """What the model's conditional sampler draws from a fixed generator (nothing for unconditional models)."""
    out: dict[str, torch.Tensor] = {}
    if model.name == "ctgan":
        for log in (False, True):
            g = torch.Generator().manual_seed(0)
            cond, which, cats = model._sample_cond(4000, g, log_frequency=log)  # type: ignore[attr-defined]
            out[f"_sample_cond(log_frequency={log})"] = torch.cat(
                [cond, which[:, None].float(), cats[:, None].float()], 1
            )
    elif model.name == "cwgan-gp":
        out["_draw_cond"] = model._draw_cond(4000, torch.Generator().manual_seed(0), None)  # type: ignore[attr-defined]
    else:
        assert not model.conditional, f"{model.name} is conditional: add its conditional sampler here"
    return out


def differences(a: Fit, b: Fit) -> list[str]:
    """What differs between two fits, by name; [] when everything they release is bit-identical."""
    diff: list[str] = []
    if codec_fingerprint(a.model) != codec_fingerprint(b.model):
        diff.append("codec")
    draws_b = conditional_draws(b.model)
    diff += [
        f"conditional sampler {k}" for k, t in conditional_draws(a.model).items() if not torch.equal(t, draws_b[k])
    ]
    nets_a, nets_b = a.model._networks(), b.model._networks()
    assert set(nets_a) == set(nets_b)
    for net in nets_a:
        sa, sb = nets_a[net].state_dict(), nets_b[net].state_dict()
        diff += [f"{net}.{k}" for k in sa if not torch.equal(sa[k], sb[k])]
    if not a.model.sample(200, seed=5).equals(b.model.sample(200, seed=5)):
        diff.append("sample")
    if a.model.conditional:  # conditional generation (no rejection) through models.sampling
        column = a.model.conditionable_columns()[-1]
        value = next(s for s in a.model.codec.discrete if s.name == column).categories[0]
        where = f"{column} = '{value}'"
        rows_a = sample_where(a.model, 100, where=where, seed=5, max_draws=100_000).rows
        rows_b = sample_where(b.model, 100, where=where, seed=5, max_draws=100_000).rows
        if not rows_a.equals(rows_b):
            diff.append(f"sample_where({where!r})")
    return diff


def released_figures(f: Fit) -> dict[str, Any]:
    """What a release says about the fit besides the model: the training summary (the release
    report's notes, tasks/report.py release_notes) without its wall-clock time, and the progress reports."""

    def plain(v: Any) -> Any:  # NaN (a loss not reported) compares equal to NaN here
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    summary = {k: plain(v) for k, v in f.model.training_summary.items() if k != "seconds"}
    progress = [tuple(map(plain, (p.step, p.generator_loss, p.critic_fake_score, p.epsilon))) for p in f.progress]
    return {"training_summary": summary, "progress": progress}


def check_mechanisms(f: Fit) -> None:
    """Every ledger entry is a mechanism this test neutralises, and each one was intercepted."""
    for e in f.ledger.entries:
        key = MARGINALS if e.mechanism in MARGINAL_ENTRIES else e.mechanism
        assert key in (CODEC, REFINE, ZOOM, MOMENTS, MARGINALS) or e.mechanism.startswith("dp-sgd-"), (
            f"{f.model.name} charges an unknown mechanism {e.mechanism!r}: it reads private rows, so the "
            "taint test must learn to neutralise it"
        )
        assert f.calls.get(key, 0) > 0, f"{e.mechanism!r} was charged but never intercepted"
        if key in (REFINE, ZOOM):  # one interception, one Gaussian step
            assert f.calls[key] == e.steps == 1, (e.mechanism, f.calls[key], e.steps)
        elif key not in (CODEC, MARGINALS):  # one interception per accounted step
            assert f.calls[key] == e.steps > 1, (e.mechanism, f.calls[key], e.steps)
    assert f.calls.get(CODEC) == 1
    assert (f.calls.get(ZOOM) == 1) == (f.model.name == "ctgan" and ZOOM in [e.mechanism for e in f.ledger.entries])
    if f.model.name == "ctgan" and getattr(f.model.config, "marginals", "off") != "off":
        # one interception, both its entries charged (ctgan measures pair marginals by default)
        assert f.calls.get(MARGINALS) == 1
        rounds = 2 if getattr(f.model.config, "extra_triples", None) else 1  # pairs, then the 3-way tables
        charged = [e.mechanism for e in f.ledger.entries if e.mechanism in MARGINAL_ENTRIES]
        assert charged == list(MARGINAL_ENTRIES) * rounds
    assert f.ledger.differentially_private and 0.9 * EPSILON < f.ledger.epsilon <= EPSILON + 1e-6


def _ids(cases: list[Any]) -> list[str]:
    return [c.id if isinstance(c, Case) else f"{c[0].id}-{c[1]}" for c in cases]


# ---------------------------------------------------------------------------- the taint tests
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_swapping_the_table_for_sentinels_changes_nothing_the_fit_releases(
    case: Case, contract: Contract, tables: dict[str, pl.DataFrame]
) -> None:
    real, sentinel = fit(case, contract, tables, "real"), fit(case, contract, tables, "sentinel")
    check_mechanisms(real)
    assert [(e.mechanism, e.steps) for e in real.ledger.entries] == [
        (e.mechanism, e.steps) for e in sentinel.ledger.entries
    ]
    assert real.calls == sentinel.calls
    diff = differences(real, sentinel)
    assert not diff, (
        f"{case.id}: with every DP mechanism neutralised, the real and the sentinel table still give "
        f"different {diff}: private rows reach them by a route that is not a DP mechanism"
    )


def test_the_zoom_case_zooms(contract: Contract, tables: dict[str, pl.DataFrame]) -> None:
    f = fit(next(c for c in CASES if c.id == "ctgan-zoom"), contract, tables, "real")
    assert [e.mechanism for e in f.ledger.entries].count(ZOOM) == 1 and f.calls.get(ZOOM) == 1
    assert f.model.codec.zoomed == list(ZOOM_PLAN)


# Fixed leak (found by this test): tvae reported the exact mean loss and KL of the last Poisson
# batch of real rows in its progress and training summary (hence in the release report's notes).
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_swapping_the_table_for_sentinels_changes_no_reported_figure(
    case: Case, contract: Contract, tables: dict[str, pl.DataFrame]
) -> None:
    a = released_figures(fit(case, contract, tables, "real"))
    b = released_figures(fit(case, contract, tables, "sentinel"))
    assert a == b, f"{case.id}: the training summary or progress reports differ between the real and the sentinel table"


# Fixed leak (found by this test): the realised Poisson batch size b (a private count: it grows with
# the table) steered the generator. Fake partners for a critic step came from the same device stream
# as the generator's own training noise, in ceil(b / chunk) chunks (or b rows), and chunks made in
# train mode updated BatchNorm's running statistics. Partners now come from ``gens.per_sample``, which
# the generator's steps never use, and ``buffers_kept`` restores the running statistics (base.py
# ``_fake_partners``; medgan's own ``_fake_partners``; wgan_gp's partners and alphas).
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_the_row_count_reaches_the_model_only_through_the_dp_estimate(
    case: Case, contract: Contract, tables: dict[str, pl.DataFrame]
) -> None:
    """The row count is private too (DESIGN.md: learned with a DP mechanism). With the mechanisms
    neutralised, a table with 50% more rows must give the same model: the DP estimate of n is the
    same, so the Poisson rate, the step count and all public randomness are the same."""
    real, larger = fit(case, contract, tables, "real"), fit(case, contract, tables, "larger")
    assert real.model.codec.n_estimate == larger.model.codec.n_estimate
    diff = differences(real, larger)
    assert not diff, f"{case.id}: {EXTRA_ROWS} more rows change {diff} although every DP mechanism is neutralised"


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_with_the_same_poisson_batches_the_row_count_changes_nothing(
    case: Case, contract: Contract, tables: dict[str, pl.DataFrame]
) -> None:
    """Diagnosis for the test above: once the larger table's Poisson batches are drawn from its first
    N_ROWS rows (the real table's rows, so the batch sizes are the same), the fits are identical. The
    realised batch size is the only route by which the row count reaches the model."""
    real = fit(case, contract, tables, "real")
    pinned = fit(case, contract, tables, "larger", same_batches=True)
    assert differences(real, pinned) == []


# ---------------------------------------------------------------------------- positive controls
CONTROLS: list[tuple[Case, str]] = [
    (c, m)
    for c in CASES
    if not c.options
    for m in [CODEC, *DP_SGD[c.name], *([MARGINALS, REFINE] if c.name == "ctgan" else [])]
] + [(next(c for c in CASES if c.name == "tablegan"), MOMENTS)]


@pytest.mark.parametrize(("case", "mechanism"), CONTROLS, ids=_ids(CONTROLS))
def test_positive_control_one_live_mechanism_shows_the_swap(
    case: Case, mechanism: str, contract: Contract, tables: dict[str, pl.DataFrame]
) -> None:
    """The test has power: with ``mechanism`` reading the table (all others still neutralised), the
    real and the sentinel table give different releases, through the part that mechanism feeds."""
    live = frozenset({mechanism})
    real, sentinel = fit(case, contract, tables, "real", live), fit(case, contract, tables, "sentinel", live)
    assert real.calls.get(mechanism, 0) > 0, f"{mechanism} never ran in {case.id}"
    diff = differences(real, sentinel)
    assert "sample" in diff, f"{case.id}: with {mechanism} live, real and sentinel fits sample the same rows"
    if mechanism in (CODEC, REFINE):  # both set the codec's statistics
        assert "codec" in diff
    else:
        assert "codec" not in diff, diff
        networks = [d for d in diff if "." in d]
        assert networks, f"{case.id}: {mechanism} reads the table, yet the released networks are identical"


# ---------------------------------------------------------------------------- private per-sample streams
# Issue 18, item 3. Under DP-SGD's threat model every iterate is visible, and the per-sample sensitivity
# argument treats everything paired with real row i (its fake partner, that partner's condition and
# Gumbel noise, the condition column chosen for it, WGAN-GP's α_i, the VAE's noise) as part of sample i:
# independent of the other rows and unknown to the adversary. Drawn by batch position from a stream
# the public seed determines, adding one row would shift every later row's known partner. So every
# random draw between a Poisson sample and the end of its mechanism must come from a stream that
# follows the secret key. ``traced`` tells which streams those are by making the fit's streams again
# under another key: a stream derived from the public seed alone shows as public and fails this test.
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_every_draw_in_a_private_step_comes_from_a_private_stream(
    case: Case, contract: Contract, tables: dict[str, pl.DataFrame]
) -> None:
    f = fit(case, contract, tables, "real")
    d = f.draws
    assert d.private == set(PRIVATE_STREAMS), (
        f"the streams that follow the secret key are {sorted(d.private)}, not {sorted(PRIVATE_STREAMS)}: "
        "a private stream is derived from the public seed"
    )
    assert d.fields - d.private, "no public stream at all: the tracer cannot tell public from private"
    assert not d.unopened, f"{case.id}: private steps without a Poisson sample before them: {d.unopened}"
    # full-data mechanisms (the codec's histograms, ctgan's pair marginals) have no Poisson steps; their
    # noise comes from the private numpy stream (gens.numpy, and a stream split off it for the marginals)
    accounted = {
        e.mechanism: e.steps for e in f.ledger.entries if e.mechanism not in (CODEC, REFINE, ZOOM, *MARGINAL_ENTRIES)
    }
    assert {m: sum(s.mechanism == m for s in d.steps) for m in accounted} == accounted
    assert not d.stray(), f"{case.id}: {d.stray()[:5]}"
    for s in d.steps:
        assert s.draws[0] == "batches", s  # the Poisson sample
        assert "noise" in s.draws, s  # the tracer sees the mechanism's noise (it has power)
    paired = [s for s in d.steps if s.mechanism in PAIRED and s.batch > 0]
    assert paired, f"{case.id}: no non-empty step of a network that pairs real rows with random draws"
    missing = [i for i, s in enumerate(paired) if "per_sample" not in s.draws]
    assert not missing, (
        f"{case.id}: steps {missing[:5]} pair real rows with nothing drawn from the per-sample stream: their "
        "fake partners (or noise) were drawn before the Poisson sample, or reused from a public batch"
    )


def test_positive_control_a_per_sample_stream_from_the_public_seed_is_caught(
    contract: Contract, tables: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutation the test above exists for: ``per_sample`` seeded by the public seed."""
    make = base_module.make_generators

    def public_per_sample(seed: int, device: torch.device) -> Generators:
        gens = make(seed, device)
        gens.per_sample = torch.Generator(device=device).manual_seed(seed)
        return gens

    monkeypatch.setattr(base_module, "make_generators", public_per_sample)  # traced() wraps this one
    d = fit_now(Case("ctgan"), contract, tables, "real").draws
    assert "per_sample" not in d.private
    assert any("a draw from per_sample" in s for s in d.stray())
