"""DP-CTGAN v1: a conditional tabular GAN whose critic alone sees real rows, under DP-SGD.

What differs from the public CTGAN code, and why (see DESIGN.md, "known leaks"):
- the codec comes from the contract; its CDFs and the conditional sampler's category
  frequencies come from one charged Gaussian-mechanism histogram step (models/codec.py);
- CTGAN's training-by-sampling (draw a condition, then a real row matching it) is replaced:
  real rows are Poisson-sampled, which the privacy accounting assumes. By default the critic
  sees rows only; with ``critic_conditioning=True`` each sampled real row is conditioned on
  its OWN category in a randomly chosen discrete column (see ``CTGANConfig``), so the critic
  judges [row, condition] pairs as in CTGAN without breaking Poisson sampling;
- pac = 1, no BatchNorm and no dropout in the critic; a penalty-free logistic critic (see
  models/dp.py for why not WGAN-GP under DP-SGD);
- per-sample gradients of the whole step's loss (real row and its fake partner) are clipped
  together and noised by Opacus' DPOptimizer;
- no early stopping or model selection on real data; the generator (and its BatchNorm)
  never touches a real row, so its updates are post-processing of the DP critic.
The generator is steered by three post-processing signals besides the critic: the
conditional vector's cross-entropy (as in CTGAN), a marginal loss towards the DP
histograms, and (``marginals="auto"``, the default) a loss towards DP-measured 2-way marginals, and
3-way ones with the target where the noise allows (models/marginals.py), so DP-SGD's noisy critic is
left with the dependencies no measured marginal holds.
When the planned critic would be noise (``critic="auto"``: small tables at small ε, see
``CTGANConfig``), no critic trains; the marginals spend its ε and the generator fits them alone.
The training schedule (steps, batch, σ, learning rate) comes from public quantities only
(models/schedule.py) unless ``epochs`` or ``batch_size`` is set.

Numerics are quantile-normalised by default; ``numeric_encoding="modes"`` uses CTGAN's
mode-specific normalisation with modes from the contract or fitted to the DP histogram
(models/codec.py), the mode one-hot's marginal target being the mixture's weights.

``fit(..., epsilon=math.inf)`` is a non-DP mode for baselines and privacy-attack oracles: exact
codec histograms and a plain (unclipped, noise-free) Adam critic on the same Poisson batches,
recorded in the ledger as non-DP entries (ε = ∞), so such a model never passes a budget gate.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from synthgate.models import schedule as training_schedule
from synthgate.models.calibrate import Calibrator
from synthgate.models.codec import Codec
from synthgate.models.dp import PrivateTrainer, init_uniform_, pair_losses
from synthgate.models.ledger import PrivacyLedger, calibrate_noise
from synthgate.models.marginals import Measured, PairLoss, measure_marginals, variables
from synthgate.models.nets import MLPCritic as Critic
from synthgate.models.synthesizers.base import (
    ModelInfo,
    Phase,
    Run,
    SynthConfig,
    Synthesizer,
    TrainingProgress,
    activate,
    codec_noise_for,
    marginal_loss,
    marginal_targets,
)
from synthgate.validation.contract import Contract

__all__ = ["CTGANConfig", "Critic", "DPCTGAN", "Generator", "TrainingProgress"]

# The numeric refinement (``numeric_refine="auto"``, ``DPCTGAN.refine_plan``): the share of the ε left after
# the codec it spends, and how its coarse groups are sized (an even share of n̂ per group at least this
# many noise stds, within [MIN, MAX] groups).
REFINE_SHARE = 0.25
REFINE_ROWS_PER_NOISE = 4.0
MIN_REFINE_GROUPS = 4
MAX_REFINE_GROUPS = 16

# The numeric zoom (``numeric_zoom="auto"``, ``DPCTGAN.zoom_noise``): at most this share of the ε left after the
# codec; less when the codec's own noise std is reached first.
ZOOM_SHARE = 0.25
# a column is zoomed only if its zoomed bins hold this many of the zoom's noise stds in DP rows (about the
# single-sub-bin threshold Φ⁻¹(1 − FAMILY_ALPHA / sub-bins) at a few hundred sub-bins)
ZOOM_MIN_ROWS_PER_NOISE = 4.0

# The generator's widths by whether the DP-SGD critic trains (``CTGANConfig.generator_dims`` = None):
# narrower with a critic, where its layers set a fit's CPU; CTGAN's own (256, 256) without one, a cheap fit
# (BENCHMARKS.md, "Round 2 session 14")
GENERATOR_DIMS: dict[bool, tuple[int, ...]] = {True: (128, 128), False: (256, 256)}

# Opacus' per-sample hooks on a critic whose input needs no gradient trigger this torch warning
# on every step; it is benign. A process-wide filter (not catch_warnings, which is not
# thread-safe: shadow models train in parallel threads).
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)


class CTGANConfig(SynthConfig):
    """DP-CTGAN's options (the inherited ones: epochs, batch_size, max_grad_norm, codec noise).

    ``numeric_encoding``: "quantile" (one tanh slot per numeric through the DP CDF) or "modes"
    (CTGAN's mode-specific normalisation, at most ``max_modes`` modes per learned mixture).

    ``critic_conditioning``: the critic scores [row, condition] instead of rows alone. Real rows
    stay Poisson-sampled; for each real row a discrete column is drawn at random (from the
    private per-sample stream, reading no data) and the condition is the row's OWN category in it, a function of the row itself.
    Its fake partner is generated with the same condition vector, and the critic sees
    [real_i, cond_i] and [fake_i, cond_i] as the two halves of ONE sample, clipped together by
    DP-SGD (``pair_losses``). Why this is DP-correct: the pair's loss ℓ_i depends on no other real
    row (cond_i comes from real_i, fake_i from cond_i and the generator's noise), so adding or
    removing a row changes at most one clipped per-sample gradient, exactly the setting the
    Poisson-subsampled Gaussian accounting assumes. CTGAN's training-by-sampling (draw a
    condition, then a matching real row) would make batch membership depend on the other rows'
    categories and break that. The price: during critic steps the conditions follow the
    empirical category frequencies, not a chosen (e.g. log-) frequency; the generator's own
    steps draw conditions from the DP frequencies (``codec.frequencies``), or from their
    logarithm (``log_frequency``, CTGAN's choice, which shows rare categories more often).

    ``epochs`` / ``batch_size``: None (the default) lets ``models/schedule.py`` choose the Poisson
    rate, the step count, σ and the critic's learning rate together from ε, δ, the codec's DP row
    estimate and the encoded width; setting either one trains for those epochs at that batch instead.

    ``marginals="auto"`` (default): after the codec, ``marginal_share`` of the remaining ε measures
    2-way marginals of the discretised table (every pair with the contract's target, plus as many
    others as the noise allows, chosen by the exponential mechanism when not all of them; then
    ``extra_triples`` 3-way marginals (target, a, b), by default as many as ``marginals.plan_triples``
    allows: none at small n̂·ε; ``models/marginals.py``), and the generator's loss gains
    ``pair_weight`` × Σ KL(measured marginal ‖ the batch's soft joint): post-processing of charged
    measurements, beside the critic's signal. ``"off"``: the critic gets that share back.

    ``critic="auto"`` (default): before the marginals are measured, the critic's DP-SGD run is planned
    as if they took their share (models/schedule.py: T steps, expected batch B, σ), and its whole-run
    signal-to-noise bound ``schedule.critic_snr`` = √T·B / (σ·√P) (P the critic's parameters) is
    compared with ``schedule.MIN_CRITIC_SNR`` = 9 (4 before round 2 session 16; models/schedule.py says
    why). Below it no critic trains: the marginals spend all
    the ε left after the codec, no ``dp-sgd-critic`` entry is charged, and the generator trains for
    the schedule's steps on the condition, 1-way and pair losses alone (post-processing of released
    statistics; it reads no row). Inputs: ε, δ, the codec's DP row count n̂, the encoded width and
    the critic's architecture, all public; explicit ``epochs`` / ``batch_size`` or ε = ∞ keep the critic.
    On the suite (δ of each contract) the bound is 0.7 / 1.8 / 5.2 on survival::colon (~1,300 rows)
    at ε = 1 / 3 / 10, 2.0–8.8 on the 3,600–5,500-row held-out tables at ε = 1 and 3, and 11–23 at
    ε = 1 on every table of 18,000+ rows. At the threshold of 4 (below), only colon at ε ≤ 3 lost
    its critic. Measured there (column shapes / pair trends / TSTR AUC,
    process CPU s; the DP noise is unseeded, so a fit's figures vary run to run beyond its seed):
      6 fits each, one harness (benchmarks.suite.evaluate, seeds 0-5), critic on -> off:
        ε = 1: 0.952 / 0.911 / 0.900, 8.2 s  ->  0.948 / 0.913 / 0.927, 4.1 s
        ε = 3: 0.957 / 0.912 / 0.911, 10.8 s ->  0.967 / 0.933 / 0.934, 5.8 s
      benchmarks.suite, seeds 0-2 (suite.json's default before -> suite-small-tables.json):
        ε = 1: 0.923 / 0.870 / 0.907, 10 s   ->  0.944 / 0.899 / 0.880, 9 s (one TSTR of 0.77)
        ε = 3: 0.963 / 0.921 / 0.919, 12 s   ->  0.975 / 0.949 / 0.936, 11 s
    Both arms have TSTR outliers (0.75 and 0.83 on, 0.77 off): a fit from ~1,300 rows at ε = 1 is
    fragile either way. Forcing the critic off on larger tables (2 fits each; not the default: their
    bound is 11-50 at ε = 1-3) changed no figure beyond noise, at about half the CPU: Adult ε = 1
    0.983 / 0.961 / 0.892 on vs 0.983 / 0.962 / 0.894 off (same harness; 47 vs 26 s); against
    suite.json's 3 default fits, nassCDS ε = 1 0.979 / 0.980 / 0.976 vs 0.979 / 0.981 / 0.978 off,
    ε = 3 0.983 / 0.986 / 0.975 vs 0.985 / 0.987 / 0.980, CPS1988 ε = 1 0.992 / 0.987 / R² 0.189
    vs 0.992 / 0.987 / 0.176; Adult ε = 3 0.988 / 0.973 / 0.894 (suite-small-tables.json, 57 s)
    vs 0.989 / 0.974 / 0.895 off (24 s); ε = 1 against suite.json: diamonds 0.961 / 0.963 / R² 0.873
    (35 s) vs 0.964 / 0.966 / 0.887 off (17 s), MplsStops 0.980 / 0.955 / 0.877 (51 s) vs 0.976 /
    0.952 / 0.882 off (28 s). Colon at ε = 10 (bound 6.9, critic on; 3 fits): 0.970 / 0.942 / 0.943, forced off 0.967 /
    0.946 / 0.944: no fall from ε = 3 across the threshold.
    A lower bar (no critic under DP at all) was tested against a rule fixed before the results
    (BENCHMARKS.md, "Critic off under DP"): on CPS1988, nassCDS, diamonds, MplsStops and Adult at
    ε = 1 and 3, 3 fits per arm, adopt if critic-off's mean is within 0.005 of auto's on pair trends
    and TSTR in all 10 cells. It failed 2: nassCDS ε = 1 TSTR AUC 0.975 -> 0.963, diamonds ε = 3
    pair trends 0.980 -> 0.975 and R² 0.895 -> 0.888 (the other 8 cells: −0.004 to +0.008), at
    30-37% less CPU on the three largest tables. So the rule stays at 4.
    Training the critic-less generator longer or on larger batches (3x steps, batch ≥ 1,024) did
    not help on colon (pairs 0.902-0.912 at ε = 1, 0.921-0.934 at ε = 3).
    ``"on"``: always train the critic (the behaviour before); ``"off"``: never (needs marginals).

    ``numeric_refine="auto"`` (default): under DP, right after the codec, each numeric column whose fine
    histogram bins the codec's noise swamps (``Codec.noise_bound_columns``: an even share of n̂ per bin
    under the single-bin threshold τσ) is measured again on 4-16 equal runs of its bins with
    ``REFINE_SHARE`` of the ε left after the codec (``refine_plan``, ``Codec.refine_dp``; charged as
    ``codec-coarse-histograms``); the marginals (and critic) share what is left. Why: on survival::colon
    at ε = 1 the fit-to-fit spread of pair trends (0.86-0.94) was the codec's DP noise on ``age`` and
    ``time`` (σ ≈ 40 rows per bin over 83-128 bins, ~1,300 rows), not the generator: with the noise
    pinned, six generator seeds gave 0.860-0.863. Pre-registered comparison (BENCHMARKS.md, "Round 2
    session 5"; paired fits, shapes / pairs / TSTR means, off -> auto): colon ε = 1 0.942 / 0.898 /
    0.916 -> 0.966 / 0.938 / 0.923; ε = 3 0.947 / 0.922 / 0.938 -> 0.966 / 0.948 / 0.933; a 1,500-row
    public subsample of Adult ε = 1 0.877 / 0.801 / 0.778 -> 0.915 / 0.843 / 0.811, ε = 3 0.910 /
    0.853 / 0.811 -> 0.937 / 0.883 / 0.841. No column of the 18,000+-row suite tables is noise-bound at
    ε ≥ 1, so nothing is spent there and their fits are unchanged. ``"off"``: never.

    ``calibration="rake"`` (default): ``sample`` draws its rows from a 4x generated pool, weighted to
    the released DP marginals (``models/calibrate.py``; post-processing).

    ``generator_dims``: the generator's residual layer widths. None (default): (128, 128) when the
    DP-SGD critic trains, (256, 256) when it does not (``critic: auto`` on small tables, or ``off``).
    With a critic, the generator's layers are most of a fit's FLOPs (each step generates the critic's
    partners and back-propagates a batch through the critic into the generator); the narrower one cost
    about a quarter less CPU on five suite tables at the same quality. Without one, a fit is cheap
    already (no DP-SGD loop), so the change is kept to the regime it was measured and made for; there
    the narrower generator's effect was mixed (TSTR −0.061 to +0.052 over the five suite cells without
    a critic, mean −0.006; BENCHMARKS.md, "Round 2 session 14").

    ``clipping``: how DP-SGD clips the critic's per-sample gradients. "ghost" (default) computes
    each sample's gradient norm without materialising the gradient (Opacus' ghost clipping; see
    ``models.dp.PrivateTrainer``); "per-sample" materialises them. Same mechanism, same ε; ghost
    is faster (BENCHMARKS.md, "Speed").
    """

    z_dim: int = Field(64, ge=1)
    # None: chosen with the critic (DPCTGAN.generator_dims, GENERATOR_DIMS); a tuple: always that
    generator_dims: tuple[int, ...] | None = None
    critic_dims: tuple[int, ...] = (128, 128)
    generator_lr: float = Field(1e-3, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    cond_weight: float = Field(1.0, ge=0)
    marginal_weight: float = Field(1.0, ge=0)
    gumbel_tau: float = Field(0.2, gt=0)
    numeric_encoding: Literal["quantile", "modes"] = "quantile"
    max_modes: int = Field(10, ge=1)
    critic_conditioning: bool = False
    log_frequency: bool = False
    clipping: Literal["ghost", "per-sample"] = "ghost"
    # --- schedule and measured marginals (models/schedule.py, models/marginals.py) ---------------
    epochs: float | None = Field(
        None, gt=0, description="Passes over the data; None: models/schedule.py sets steps and batch from ε and n̂."
    )
    batch_size: int | None = Field(
        None, ge=2, description="Expected Poisson batch; None: models/schedule.py (5·√n̂ within [64, 4096])."
    )
    calibration: Literal["rake", "off"] = Field(
        "rake",
        description=(
            "rake: sample() draws each output chunk from a 4x larger generated pool so that its marginals "
            "match the released DP ones (models/calibrate.py; post-processing). off: the generator's rows as they come."
        ),
    )
    marginals: Literal["auto", "off"] = Field(
        "auto", description="auto: measure 2-way marginals under DP (models/marginals.py) for the generator to match."
    )
    # Budget split (ctgan's codec_share 0.4, marginal_share 0.85; before: 0.2 and 0.5). Chosen on public
    # tables at ε = 1 (means of 2 fits; column shapes / pair trends / TSTR, raked samples):
    #   colon (930 rows):               0.924 / 0.852 / 0.905  ->  0.954 / 0.922 / 0.942
    #   Adult, 1,500-row sample:         0.856 / 0.774 / 0.810  ->  0.910 / 0.833 / 0.836
    #   nassCDS, 2,000-row sample:       0.933 / 0.896 / 0.915  ->  0.951 / 0.922 / 0.929
    #   Adult (30,162 rows, 1 fit):      0.985 / 0.961 / 0.885  ->  0.982 / 0.960 / 0.888
    #   MplsStops (36,344 rows, 1 fit):  0.972 / 0.943 / 0.875  ->  0.977 / 0.951 / 0.864
    # With every pair measured and the sample raked to them, the DP-SGD critic adds little that is
    # worth half the budget: small tables gain much, large ones stay within the noise of a fit.
    marginal_share: float = Field(
        0.85, gt=0, lt=1, description="Share of the ε left after the codec that the pair marginals spend."
    )
    pair_weight: float = Field(1.0, ge=0, description="Weight of the generator's loss on the measured pair marginals.")
    critic: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "auto: the DP-SGD critic trains unless its planned gradient noise leaves it no usable signal "
            "(models/schedule.py, critic_snr below MIN_CRITIC_SNR), in which case its ε goes to the measured "
            "marginals and the generator fits them alone; on: always; off: never (needs marginals='auto')."
        ),
    )
    numeric_refine: Literal["auto", "off"] = Field(
        "auto",
        description=(
            "auto: under DP, numeric columns whose fine histogram bins the codec's noise swamps (an even share "
            "of the DP row count per bin under the single-bin threshold; Codec.noise_bound_columns) are measured "
            "again on 4-16 coarse groups of their bins with REFINE_SHARE of the ε left after the codec, which "
            "then sets their DP CDF (Codec.refine_dp). No such column (large tables): nothing is spent. off: never."
        ),
    )
    numeric_zoom: Literal["auto", "off"] = Field(
        "auto",
        description=(
            "auto: numeric columns whose released histogram puts half its mass in one or two of the contract's "
            "bins (bounds far wider than the rows; Codec.zoom_plan) get those bins cut finer, linear and, at "
            "zero, geometric sub-bins, and their rows measured there (Codec.zoom) at the codec's noise std or "
            "ZOOM_SHARE of the ε left after the codec, whichever costs less. No such column: nothing is "
            "spent. off: never."
        ),
    )
    extra_pairs: int | None = Field(
        None,
        ge=0,
        description=(
            "Pairs measured beyond the target's; None: marginals.plan_extra (every candidate while the noise "
            "allows, never fewer than one per variable less one)."
        ),
    )
    extra_triples: int | None = Field(
        None,
        ge=0,
        description=(
            "3-way marginals (target, a, b) measured after the pairs; None: marginals.plan_triples (as many as keep "
            "the expected noise error of a median candidate's table for the rarest target class within the pairs' "
            "tolerance, wide ones dropped: large tables at large ε only, every candidate without DP); 0: none."
        ),
    )

    @model_validator(mode="after")
    def _critic_needs_marginals(self) -> CTGANConfig:
        if self.critic == "off" and self.marginals == "off":
            raise ValueError(
                "critic='off' with marginals='off' leaves the generator nothing to learn from; "
                "set marginals='auto' or critic='auto'."
            )
        return self


class _Residual(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    def __init__(self, in_dim: int, dims: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in dims:
            layers.append(_Residual(d, h))
            d += h
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(d, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return self.out(self.body(x))
        return self._inference(x)

    def _inference(self, x: torch.Tensor) -> torch.Tensor:
        """The eval-mode forward without its copies (sampling's hot path; profiled in BENCHMARKS.md).

        The residual stack's concatenations become one buffer [h_L | ... | h_1 | x]: layer k reads
        the suffix it would have concatenated and writes its output just before it. BatchNorm's
        running statistics are folded into the Linear before it (eval mode: an affine map), and
        ReLU runs in place. Equal to ``out(body(x))`` up to float rounding.
        """
        widths = [layer.fc.out_features for layer in self.body]
        total = x.shape[1] + sum(widths)
        buf = x.new_empty((x.shape[0], total))
        pos = total - x.shape[1]
        buf[:, pos:] = x
        for layer, width in zip(self.body, widths, strict=True):
            bn = layer.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = layer.fc.weight * scale[:, None]
            bias = (layer.fc.bias - bn.running_mean) * scale + bn.bias
            torch.addmm(bias, buf[:, pos:], weight.t(), out=buf[:, pos - width : pos])
            pos -= width
            buf[:, pos : pos + width].clamp_(min=0.0)
        return self.out(buf)


class DPCTGAN(Synthesizer):
    """fit(train, ledger, epsilon) under DP; sample(n) anywhere (post-processing).

    ``epsilon=math.inf`` is the non-DP mode (baselines, attack oracles): see ``fit``.
    """

    name = "ctgan"
    config_class = CTGANConfig
    codec_share = 0.4  # see CTGANConfig.marginal_share for the measurements behind it
    # No floor on the codec's noise: it spends 0.4 of ε at every ε. With the family default (σ/Δ >= 8) it
    # stopped at ε ≈ 0.55 from ε ≈ 1.4 up, and its 1-way histograms stopped improving while the pair
    # tables did: at ε = 3, σ/Δ = 3.8 instead of 8 lifted column shapes in 9 of 11 table cells (up to
    # +0.007) and pair trends in 8, TSTR within -0.004..+0.010 (3 fits each; BENCHMARKS.md, round 2
    # session 11, with the ε = 10 check that decided it).
    codec_noise_floor = 0.0
    conditional = True
    info = ModelInfo(
        family="conditional GAN (CTGAN, Xu et al. 2019)",
        paper="Xu, Skoularidou, Cuesta-Infante, Veeramachaneni: Modeling Tabular Data using "
        "Conditional GAN, NeurIPS 2019",
        good_for="mixed-type tables (numeric + categorical), imbalanced categories; conditional "
        "sampling on any categorical or boolean column",
        caveats="the flagship and the default; the critic is penalty-free (logistic loss) under "
        "DP-SGD instead of WGAN-GP",
    )
    config: CTGANConfig

    def __init__(self, contract: Contract, config: CTGANConfig | None = None, *, device: str = "auto") -> None:
        super().__init__(contract, config, device=device)
        self.codec = Codec(contract, numeric_encoding=self.config.numeric_encoding, max_modes=self.config.max_modes)
        # Conditional vector: one-hot over the discrete columns' value blocks.
        self._cond_blocks = [b for b in self.codec.blocks if b.kind == "softmax" and b.role == "value"]
        self.cond_dim = sum(b.width for b in self._cond_blocks)
        self.generator: Generator | None = None
        self.accountant = None
        # "modes": a large negative bias on unused (pruned) mode slots, set once the codec is fitted.
        self._logit_bias: torch.Tensor | None = None
        self._cond_tables: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}
        # The DP pair marginals (models/marginals.py) the generator is pulled towards; set by fit.
        self.measured: Measured | None = None
        # Whether this fit trains the DP-SGD critic (``CTGANConfig.critic``); decided before the marginals
        # are measured, since a skipped critic's share goes to them.
        self._critic_on = True
        self._critic_snr: float | None = None  # schedule.critic_snr of the planned critic ("auto" under DP)

    def _set_logit_bias(self) -> None:
        """Unused mode slots (weight 0) can never be generated: -1e4 on their logits.

        Called whenever the codec's statistics are (re)set, so the condition tables are dropped too.
        """
        self._cond_tables = {}
        if self.codec.numeric_encoding != "modes":
            self._logit_bias = None
            return
        bias = torch.zeros(self.codec.dim)
        for b in self.codec.blocks:
            if b.role == "mode":
                unused = torch.as_tensor(~self.codec.modes[b.column].valid)
                bias[b.start : b.start + b.width][unused] = -1e4
        self._logit_bias = bias.to(self.device)

    def conditionable_columns(self) -> list[str]:
        return [b.column for b in self._cond_blocks]

    # ------------------------------------------------------------------ helpers
    def _activate(self, logits: torch.Tensor, g: torch.Generator | None, *, hard: bool = False) -> torch.Tensor:
        return activate(self.codec, logits, g, tau=self.config.gumbel_tau, hard=hard)

    def _sample_cond(
        self, n: int, g: torch.Generator, conditions: dict[str, Any] | None = None, *, log_frequency: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Condition vectors from the DP frequencies: (cond, chosen block index, category).

        ``log_frequency`` (generator training steps only): categories drawn ∝ log(1 + count) with
        counts = DP frequency × DP row count, as CTGAN does; sampling uses the frequencies.
        """
        dev = self.device
        cond = torch.zeros(n, self.cond_dim, device=dev)
        if not self._cond_blocks:
            return cond, torch.zeros(n, dtype=torch.long, device=dev), torch.zeros(n, dtype=torch.long, device=dev)
        if conditions:
            return self._fixed_cond(n, conditions)
        cdf, offsets = self._cond_table(log_frequency)
        which = torch.randint(len(self._cond_blocks), (n,), generator=g, device=dev)
        # one draw per row by inverting its block's CDF (rows padded with 1.0 past the block's width)
        u = torch.rand((n, 1), generator=g, device=dev)
        cats = (cdf[which] < u).sum(1)
        cond[torch.arange(n, device=dev), offsets[which] + cats] = 1.0
        return cond, which, cats

    def _cond_table(self, log_frequency: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-block category CDFs, padded with 1.0 to the widest block; block offsets), cached per
        fit: the DP frequencies do not change after the codec is fitted."""
        cached = self._cond_tables.get(log_frequency)
        if cached is not None:
            return cached
        cdf = torch.ones(len(self._cond_blocks), max(b.width for b in self._cond_blocks), dtype=torch.float32)
        offsets, offset = [], 0
        for j, b in enumerate(self._cond_blocks):
            f = np.asarray(self.codec.frequencies[b.column], dtype=np.float64)
            if log_frequency:
                f = np.log1p(f * float(self.codec.n_estimate or 1.0))
            f = f / f.sum() if f.sum() > 0 else np.full(len(f), 1.0 / len(f))
            cdf[j, : len(f) - 1] = torch.as_tensor(np.cumsum(f)[:-1], dtype=torch.float32)  # the top stays
            # exactly 1.0: u < 1 then never runs past the block's last category through rounding
            offsets.append(offset)
            offset += b.width
        table = (cdf.to(self.device), torch.as_tensor(offsets, device=self.device))
        self._cond_tables[log_frequency] = table
        return table

    def _fixed_cond(self, n: int, conditions: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(conditions) != 1:
            raise ValueError(f"v1 conditions on exactly one column. Got {sorted(conditions)}.")
        ((column, value),) = conditions.items()
        names = [b.column for b in self._cond_blocks]
        if column not in names:
            raise ValueError(
                f"cannot condition on {column!r}: conditions need a categorical or boolean "
                f"column. Choose one of {names}."
            )
        j = names.index(column)
        spec = next(s for s in self.codec.discrete if s.name == column)
        if value not in spec.categories:
            raise ValueError(f"{value!r} is not in the contract's domain of {column!r}: {spec.categories}.")
        k = spec.categories.index(value)
        offset = sum(b.width for b in self._cond_blocks[:j])
        cond = torch.zeros(n, self.cond_dim, device=self.device)
        cond[:, offset + k] = 1.0
        full = lambda v: torch.full((n,), v, dtype=torch.long, device=self.device)  # noqa: E731
        return cond, full(j), full(k)

    def _generate(
        self, n: int, g: torch.Generator, conditions: dict[str, Any] | None = None, *, log_frequency: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        assert self.generator is not None
        z = torch.randn(n, self.config.z_dim, generator=g, device=self.device)
        cond, which, cats = self._sample_cond(n, g, conditions, log_frequency=log_frequency)
        logits = self.generator(torch.cat([z, cond], dim=1))
        if self._logit_bias is not None:
            logits = logits + self._logit_bias
        return logits, cond, which, cats

    def _generate_given(self, cond: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Generator logits for given condition vectors (the critic step's fake partners)."""
        assert self.generator is not None
        z = torch.randn(cond.shape[0], self.config.z_dim, generator=g, device=self.device)
        logits = self.generator(torch.cat([z, cond], dim=1))
        return logits + self._logit_bias if self._logit_bias is not None else logits

    def _own_cond(self, real: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Per real row: a discrete column drawn at random (no data read), conditioned on the row's
        own category in it. Row i's condition is a function of row i alone and of a draw from ``g``,
        which must be the private per-sample stream (``gens.per_sample``)."""
        b = real.shape[0]
        block_of = torch.cat(
            [torch.full((blk.width,), j, dtype=torch.long) for j, blk in enumerate(self._cond_blocks)]
        ).to(real.device)
        cols = torch.cat([torch.arange(blk.start, blk.start + blk.width) for blk in self._cond_blocks]).to(real.device)
        which = torch.randint(len(self._cond_blocks), (b,), generator=g, device=real.device)
        return real[:, cols] * (block_of[None, :] == which[:, None]).to(real.dtype)

    def _cond_loss(self, logits: torch.Tensor, which: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for j, b in enumerate(self._cond_blocks):
            rows = (which == j).nonzero(as_tuple=True)[0]
            if len(rows):
                total = total + F.cross_entropy(logits[rows, b.start : b.start + b.width], cats[rows], reduction="sum")
        return total / max(1, logits.shape[0])

    def _marginal_loss(self, logits: torch.Tensor, targets: dict[tuple[str, str], torch.Tensor]) -> torch.Tensor:
        """KL(DP histogram ‖ generated marginal) per one-hot block (mode blocks: the mixture's
        weights); W2 per numeric slot to uniform ("quantile") or to α's DP-implied quantiles ("modes")."""
        return marginal_loss(self.codec, logits, targets)

    def _marginal_targets(self) -> dict[tuple[str, str], torch.Tensor]:
        out = marginal_targets(self.codec, self.device)
        if self.codec.numeric_encoding == "modes":
            for b in self.codec.blocks:
                if b.kind != "softmax":
                    t = self.codec.value_quantiles(b.column)
                    out[(b.column, "alpha")] = torch.as_tensor(t, dtype=torch.float32, device=self.device)
        return out

    # ------------------------------------------------------------------ training (hooks of Synthesizer.fit)
    # ``epsilon=math.inf`` trains WITHOUT differential privacy (non-DP baselines, attack oracles):
    # exact codec histograms and marginals, and a plain Adam critic on Poisson-sampled batches with no
    # clipping and no noise; architecture, losses, sampling rate and step count are those of the DP
    # path. Every step is recorded in the ledger as a non-DP entry (``ledger.epsilon`` is ``math.inf``).
    measures = True  # the pair marginals, after the codec (``_measure``)

    def _measure(
        self, encoded: np.ndarray, *, ledger: PrivacyLedger, dp: bool, epsilon: float, rng: np.random.Generator
    ) -> None:
        self.measured = self._measure_marginals(encoded, ledger=ledger, dp=dp, epsilon=epsilon, rng=rng)

    def _measured_state(self) -> Any:
        return {**self.measured.state(), "critic": self._critic_on} if self.measured is not None else None

    def _load_measured_state(self, state: Any) -> None:
        self.measured = Measured.from_state(variables(self.codec), state) if state is not None else None
        self._critic_on = bool(state.get("critic", True)) if state is not None else True

    def _phases(self, run: Run) -> list[Phase]:
        cfg = self.config
        # no critic: no DP-SGD, nothing left to spend; the generator takes the schedule's steps and rate
        plan = self._schedule(ledger=run.ledger, dp=run.dp and self._critic_on, epsilon=run.epsilon, n_hat=run.n_hat)
        self._training_plan = plan
        epochs = cfg.epochs if cfg.epochs is not None else plan.steps * plan.sample_rate
        return [Phase("train", plan.steps, plan.sample_rate, epochs=epochs, step=self._train_step)]

    def _noise_multiplier(self, run: Run, phases: list[Phase]) -> float:
        return self._training_plan.noise_multiplier  # models/schedule.py calibrated it with the steps (0: no critic)

    def _build_training(self, run: Run) -> None:
        cfg = self.config
        dev = run.device
        plan = self._training_plan
        self._set_logit_bias()
        self._conditioned = cfg.critic_conditioning and bool(self._cond_blocks)
        self._critic_lr = (
            cfg.critic_lr if "critic_lr" in cfg.model_fields_set or plan.source == "options" else plan.learning_rate
        )
        self.generator = Generator(cfg.z_dim + self.cond_dim, self.generator_dims(), self.codec.dim).to(dev)
        init_uniform_(self.generator, run.gens.init)
        self._opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.generator_lr, betas=cfg.betas)
        # no critic: no network reads a real row, nothing to charge, nothing to audit
        self._trainer: PrivateTrainer | None = None
        self._critic: Critic | None = None
        self.accountant = None
        if self._critic_on:
            base_critic = Critic(self.codec.dim + (self.cond_dim if self._conditioned else 0), cfg.critic_dims)
            init_uniform_(base_critic, run.gens.init)
            self._trainer = run.private(
                base_critic, mechanism="dp-sgd-critic", lr=self._critic_lr, what="critic", clipping=cfg.clipping
            )
            # Opacus' own accountant runs beside our ledger as a cross-check (tests compare them).
            self.accountant = self._trainer.accountant
            self._critic = base_critic
        self._targets = self._marginal_targets()
        measured = self.measured
        self._pair_loss = (
            PairLoss(measured, dev, target=self.contract.target)
            if measured is not None and measured.cliques() and cfg.pair_weight
            else None
        )
        self._bg = max(2, run.expected_batch)
        run.keep(generator=self.generator, opt_g=self._opt_g)

    def _train_step(self, run: Run, i: int) -> tuple[torch.Tensor, Any]:
        if not self._critic_on:
            return self._generator_step(run), math.nan
        cfg = self.config
        gen, trainer, base_critic, bg = self.generator, self._trainer, self._critic, self._bg
        assert gen is not None and trainer is not None and base_critic is not None
        per_sample, g_dev = run.gens.per_sample, run.gens.device
        conditioned = self._conditioned
        # ---- critic: one step over a Poisson batch (DP-SGD unless non-DP) -----------
        real = run.real_batch()
        b = real.shape[0]
        if conditioned:
            # [row, its own condition] vs [fake | same condition]: one clipped sample per pair.
            loss_d = None
            if b > 0:
                cond_r = self._own_cond(real, per_sample)
                # Eval mode: BatchNorm uses its running statistics (made by generator steps on
                # fakes only), so partner i depends on its own condition and on no other real row.
                gen.eval()
                with torch.no_grad():
                    fake = self._activate(self._generate_given(cond_r, per_sample), per_sample)
                gen.train()
                pair = torch.stack([torch.cat([real, cond_r], 1), torch.cat([fake, cond_r], 1)], dim=1)
                loss_d = pair_losses(trainer.module(pair))
            trainer.step(loss_d, b)
        else:
            fake = self._partners(b, per_sample)
            loss_d = pair_losses(trainer.module(torch.stack([real, fake], dim=1))) if fake is not None else None
            trainer.step(loss_d, b)

        # ---- generator: post-processing of the (DP) critic ----------------------
        gen.train()
        with trainer.hooks_off():
            logits, cond, which, cats = self._generate(bg, g_dev, log_frequency=cfg.log_frequency)
            fake = self._activate(logits, g_dev)
            score = base_critic(torch.cat([fake, cond], 1) if conditioned else fake)
            loss_g = F.softplus(-score).mean()
            if cfg.cond_weight:
                loss_g = loss_g + cfg.cond_weight * self._cond_loss(logits, which, cats)
            if cfg.marginal_weight:
                loss_g = loss_g + cfg.marginal_weight * self._marginal_loss(logits, self._targets)
            if self._pair_loss is not None:  # the measured pair marginals (post-processing)
                loss_g = loss_g + cfg.pair_weight * self._pair_loss(logits)
            self._update(self._opt_g, loss_g, list(gen.parameters()))
        return loss_g, score

    def _partners(self, b: int, g: torch.Generator) -> torch.Tensor | None:
        """``b`` fake partners for a critic step (None for ``b = 0``), drawn as a release draws rows:
        the generator in eval mode, so BatchNorm uses its running statistics (made by generator steps
        on fakes only) and each partner is a function of its own draws alone, whatever ``b`` is.

        ``b`` is private (the realised Poisson batch), so ``g`` must be the private per-sample stream
        (``gens.per_sample``), which the generator's own steps never use, and nothing here may change
        the generator: eval mode updates no running statistic. Exactly ``b`` rows through the
        inference path (BatchNorm folded, no autograd graph), where train-mode chunks of the expected
        batch made 1.5·B rows a step on average (``Synthesizer._fake_partners``).
        """
        if b == 0:
            return None
        gen = self.generator
        assert gen is not None
        gen.eval()
        try:
            with torch.no_grad():
                return self._activate(self._generate(b, g)[0], g)
        finally:
            gen.train()

    def _generator_step(self, run: Run) -> torch.Tensor:
        """One generator update from the released statistics alone (no critic): the condition's
        cross-entropy, the DP 1-way histograms and the measured pair marginals. Reads no real row."""
        cfg, gen = self.config, self.generator
        assert gen is not None
        gen.train()
        logits, _, which, cats = self._generate(self._bg, run.gens.device, log_frequency=cfg.log_frequency)
        loss_g = logits.new_zeros(())
        if cfg.cond_weight:
            loss_g = loss_g + cfg.cond_weight * self._cond_loss(logits, which, cats)
        if cfg.marginal_weight:
            loss_g = loss_g + cfg.marginal_weight * self._marginal_loss(logits, self._targets)
        if self._pair_loss is not None:
            loss_g = loss_g + cfg.pair_weight * self._pair_loss(logits)
        self._update(self._opt_g, loss_g, list(gen.parameters()))
        return loss_g

    def _summary(self, run: Run) -> dict[str, Any]:
        off = {} if self._critic_on else {"noise_multiplier": None, "max_grad_norm": None}
        return {
            **off,
            "critic": "on" if self._critic_on else "off",
            "generator_dims": list(self.generator_dims()),
            "critic_snr": self._critic_snr,
            "zoomed": list(self.codec.zoomed),
            "numeric_encoding": self.config.numeric_encoding,
            "critic_conditioning": self._conditioned,
            "schedule": self._training_plan.source,
            "critic_lr": self._critic_lr,
            "measured_pairs": self.measured.labels() if self.measured is not None else [],
            "measured_triples": len(self.measured.triples) if self.measured is not None else 0,
        }

    def _fit_codec_statistics(
        self, train: pl.DataFrame, *, ledger: PrivacyLedger, dp: bool, rng: np.random.Generator, epsilon: float
    ) -> None:
        """The codec's DP histograms, then (``numeric_refine="auto"``) a coarse re-measurement of the numeric
        columns whose fine bins its noise swamps, chosen and sized from public quantities only: the codec's
        noise std, its DP row count n̂, the contract's bins and ε (``refine_plan``)."""
        super()._fit_codec_statistics(train, ledger=ledger, dp=dp, rng=rng, epsilon=epsilon)
        if self.config.numeric_zoom == "auto" and self.codec.numeric_encoding == "quantile":
            zoom = self.codec.zoom_plan()
            if zoom and dp:
                zoom, noise = self.zoom_noise_plan(zoom, ledger=ledger, epsilon=epsilon)
                if zoom and noise is not None:
                    self.codec.zoom(train, zoom, ledger=ledger, noise_multiplier=noise, rng=rng)
            elif zoom:
                self.codec.zoom(train, zoom, ledger=ledger, noise_multiplier=None, rng=rng)
        if not dp or self.config.numeric_refine == "off" or self.codec.numeric_encoding != "quantile":
            return
        plan = self.refine_plan(ledger=ledger, epsilon=epsilon)
        if plan is None:
            return
        columns, groups, noise = plan
        self.codec.refine_dp(train, columns, groups, ledger=ledger, noise_multiplier=noise, rng=rng)

    def zoom_noise_plan(
        self, plan: dict[str, list[int]], *, ledger: PrivacyLedger, epsilon: float
    ) -> tuple[dict[str, list[int]], float | None]:
        """``plan`` less the columns whose zoomed bins hold too few rows to show above the zoom's noise
        (DP rows, n̂ times their released mass, under ``ZOOM_MIN_ROWS_PER_NOISE`` noise stds: even all in one
        sub-bin they would be read as noise), and the noise multiplier for what is left (``zoom_noise``;
        fewer columns, less noise, so it is planned again until nothing more drops). Public: n̂ and the
        released masses (DP), ε, δ and the ledger. A table of a few hundred rows and hundreds of wide
        columns (modeldata::pd_speech) so spends nothing on a zoom that could find nothing."""
        n_hat = float(self.codec.n_estimate or 0.0)
        while plan:
            noise = self.zoom_noise(len(plan), ledger=ledger, epsilon=epsilon)
            if noise is None:
                return {}, None
            sigma = noise * math.sqrt(len(plan))
            kept = {
                c: bins
                for c, bins in plan.items()
                if n_hat * float(np.sum(self.codec.bin_mass[c][bins])) >= ZOOM_MIN_ROWS_PER_NOISE * sigma
            }
            if kept == plan:
                return plan, noise
            plan = kept
        return {}, None

    def zoom_noise(self, columns: int, *, ledger: PrivacyLedger, epsilon: float) -> float | None:
        """The zoom's noise multiplier for ``columns`` zoomed columns (None: no ε left): the one that gives
        its sub-bins the codec's noise std (σ_codec / √columns), or the one that spends ``ZOOM_SHARE`` of
        the ε left after the codec, whichever is larger (spends less). Public: ε, δ, the ledger, the
        contract's width and how many columns ``Codec.zoom_plan`` named."""
        spent = ledger.epsilon
        if spent >= epsilon:
            return None
        codec_noise = self.config.codec_noise_multiplier or codec_noise_for(
            epsilon, ledger.delta, self.codec_share, self.codec_noise_floor
        )
        cap = calibrate_noise(
            target_epsilon=spent + ZOOM_SHARE * (epsilon - spent), ledger=ledger, sample_rate=1.0, steps=1
        )
        return max(codec_noise * self.codec.sensitivity / math.sqrt(columns), cap)

    def refine_plan(self, *, ledger: PrivacyLedger, epsilon: float) -> tuple[list[str], dict[str, int], float] | None:
        """(columns, coarse groups per column, noise multiplier) of the numeric refinement, or None.

        Columns: ``Codec.noise_bound_columns`` at the codec's noise std. Budget: ``REFINE_SHARE`` of the ε
        left after the codec (the marginals and critic share the rest). Groups: as many as keep an even
        share of n̂ at ``REFINE_ROWS_PER_NOISE`` noise stds or more, within [4, 16] and the column's bins.
        """
        codec_noise = self.config.codec_noise_multiplier or codec_noise_for(
            epsilon, ledger.delta, self.codec_share, self.codec_noise_floor
        )
        # a zoomed column (``zoom``) was measured again already, on bins finer than the contract's
        columns = [
            c
            for c in self.codec.noise_bound_columns(codec_noise * self.codec.sensitivity)
            if c not in self.codec.zoomed
        ]
        if not columns:
            return None
        spent = ledger.epsilon
        if spent >= epsilon:
            return None
        noise = calibrate_noise(
            target_epsilon=spent + REFINE_SHARE * (epsilon - spent), ledger=ledger, sample_rate=1.0, steps=1
        )
        sigma = noise * math.sqrt(len(columns))
        n_hat = float(self.codec.n_estimate or 1.0)
        groups = {}
        for name in columns:
            spec = next(s for s in self.codec.numeric if s.name == name)
            bins = len(spec.edges_lo) - len(spec.point_bins)
            k = int(n_hat // (REFINE_ROWS_PER_NOISE * sigma))
            groups[name] = max(1, min(bins, MAX_REFINE_GROUPS, max(MIN_REFINE_GROUPS, k)))
        return columns, groups, noise

    def _measure_marginals(
        self, encoded: np.ndarray, *, ledger: PrivacyLedger, dp: bool, epsilon: float, rng: np.random.Generator
    ) -> Measured | None:
        """The DP pair marginals (models/marginals.py), charged so that the ledger has spent the codec's
        share plus ``marginal_share`` of what is left; None when ``marginals="off"``."""
        if self.config.marginals == "off":
            self._critic_on = True
            return None
        self._critic_on = self._plan_critic(ledger=ledger, dp=dp, epsilon=epsilon)
        target = None
        if dp:
            spent = ledger.epsilon
            # without a critic the marginals spend all that is left
            target = spent + self.config.marginal_share * (epsilon - spent) if self._critic_on else epsilon
        return measure_marginals(
            encoded,
            self.codec,
            ledger=ledger,
            target_epsilon=target,
            rng=rng,
            extra=self.config.extra_pairs,
            triples=self.config.extra_triples,
        )

    def _plan_critic(self, *, ledger: PrivacyLedger, dp: bool, epsilon: float) -> bool:
        """Whether the DP-SGD critic trains (``CTGANConfig.critic``), from public quantities only.

        "auto" under DP with the default schedule: plan the critic as if the marginals took their
        ``marginal_share`` (their charges are Gaussian at rate 1, so one Gaussian entry with the same
        ε stands for them), and keep it when ``schedule.critic_snr`` of that plan is at least
        ``schedule.MIN_CRITIC_SNR``. Explicit epochs / batch size, or no DP, keep it.
        """
        cfg = self.config
        self._critic_snr = None
        if cfg.critic != "auto":
            return cfg.critic == "on"
        if not dp or cfg.epochs is not None or cfg.batch_size is not None:
            return True
        spent = ledger.epsilon
        planned = PrivacyLedger(ledger.delta)
        planned.entries = list(ledger.entries)
        target = spent + cfg.marginal_share * (epsilon - spent)
        sigma_m = calibrate_noise(target_epsilon=target, ledger=ledger, sample_rate=1.0, steps=1)
        planned.charge("planned-marginals", noise_multiplier=sigma_m, sample_rate=1.0, steps=1)
        n_hat = float(self.codec.n_estimate or 1.0)
        plan = self._schedule(ledger=planned, dp=True, epsilon=epsilon, n_hat=n_hat)
        in_dim = self.codec.dim + (self.cond_dim if cfg.critic_conditioning and self._cond_blocks else 0)
        with torch.device("meta"):  # shapes only: no memory, no draw from any random stream
            parameters = sum(p.numel() for p in Critic(in_dim, cfg.critic_dims).parameters())
        self._critic_snr = training_schedule.critic_snr(plan, parameters)
        return self._critic_snr >= training_schedule.MIN_CRITIC_SNR

    def _schedule(self, *, ledger: PrivacyLedger, dp: bool, epsilon: float, n_hat: float) -> training_schedule.Schedule:
        """models/schedule.py's plan, or the user's epochs / batch size when either is set."""
        cfg = self.config
        if cfg.epochs is None and cfg.batch_size is None:
            return training_schedule.schedule(epsilon=epsilon, ledger=ledger, n_hat=n_hat, width=self.codec.dim, dp=dp)
        return training_schedule.from_options(
            epsilon=epsilon,
            ledger=ledger,
            n_hat=n_hat,
            dp=dp,
            lr=cfg.critic_lr,
            epochs=cfg.epochs if cfg.epochs is not None else training_schedule.EPOCHS,
            batch_size=cfg.batch_size if cfg.batch_size is not None else round(training_schedule.expected_batch(n_hat)),
        )

    # ------------------------------------------------------------------ sampling / persistence
    def _sample_block(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        logits, *_ = self._generate(n, g, conditions)
        return self._activate(logits, g, hard=True)

    def _extra_state(self) -> dict[str, Any]:
        # the released pair marginals (DP outputs) that sampling calibrates to
        # and whether the DP-SGD critic trained (public: set from public quantities before any row is read)
        return {"marginals": self.measured.state() if self.measured is not None else None, "critic": self._critic_on}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        saved = state.get("marginals")
        self.measured = Measured.from_state(variables(self.codec), saved) if saved is not None else None
        self._critic_on = bool(state.get("critic", True))

    def generator_dims(self) -> tuple[int, ...]:
        """The generator's layer widths: the config's, or by default ``GENERATOR_DIMS[critic on?]``
        (decided from public quantities before any row is read; a loaded model keeps its decision)."""
        if self.config.generator_dims is not None:
            return tuple(self.config.generator_dims)
        return GENERATOR_DIMS[self._critic_on]

    def _calibrator(self) -> Calibrator | None:
        if self.config.calibration == "off":
            return None
        # without the critic the generator learnt the released marginals alone: what they leave
        # independent given the target is drawn so (calibrate.independent_groups). With it, the columns
        # that no measured table ties at all (a wide table: caravan measures 170 of 3,655 pairs) are
        # drawn independent given the target too: the critic's noisy signal did not hold the one
        # latent's dependence there to the data's (BENCHMARKS.md, "Round 2 session 13")
        return Calibrator(self.codec, self.measured, factorise=True, measured_ties=self._critic_on)

    def _networks(self) -> dict[str, nn.Module]:
        if self.generator is None:
            raise RuntimeError("the model has no generator yet: fit() or load() it first.")
        return {"generator": self.generator}

    def _build(self) -> None:
        cfg = self.config
        self.generator = Generator(cfg.z_dim + self.cond_dim, self.generator_dims(), self.codec.dim)
        self._set_logit_bias()
