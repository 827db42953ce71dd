"""What every synthesizer shares: the interface, the config base, seeding, output activation, save/load.

A synthesizer is built from the contract (``Model(contract, config, device=...)``), learns under a
ledger (``fit(train, ledger=..., epsilon=..., seed=...)``) and samples anywhere
(``sample(n, seed=..., conditions=None)``). ``fit`` is ONE loop for every family
(``Synthesizer.fit``): the codec and its ledger entry, σ calibrated over the family's phases,
Poisson batches, the private trainers, progress, checkpoints and resume, the training summary.
A family supplies hooks: ``_build_training`` (networks, optimizers, ``run.private`` trainers),
``_train_step`` or ``_phases`` (its steps), optionally ``_measure`` / ``_summary``; and for
sampling ``_networks`` (what is saved: only what sampling needs), ``_build`` (empty networks for
``load``) and ``_sample_block`` (a batch of generated codec-space rows). docs/models.md shows a
family written this way.

Rules every subclass follows (DESIGN.md, "Differential privacy, end to end"):
- the codec comes from the contract; its statistics from the charged DP histogram step
  (``_fit_codec_statistics``), or exact ones recorded as non-DP when ``epsilon = math.inf``;
- every network that reads a real row trains through ``models.dp.PrivateTrainer`` on
  Poisson-sampled batches; no BatchNorm, dropout or minibatch statistics over real rows in it;
- networks that never read a real row (generators) are post-processing;
- no early stopping or model selection on real data;
- randomness through explicit generators (``make_generators``): the public ones from ``seed``,
  the DP mechanisms' own (noise, Poisson sampling, codec noise) and every draw that touches a
  private sample (``Generators.per_sample``: fake partners, condition choices, interpolation
  weights, VAE noise) from secret entropy (``private_entropy``), never from the seed a report shows.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import math
import numbers
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Self

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from synthgate.errors import CheckpointRefused
from synthgate.models.calibrate import POOL_FACTOR, Calibrator
from synthgate.models.codec import Codec
from synthgate.models.device import resolve_device
from synthgate.models.dp import PrivateTrainer, poisson_sample
from synthgate.models.ledger import PrivacyLedger, calibrate_noise
from synthgate.validation.contract import Contract

FORMAT_VERSION = 2


class SynthConfig(BaseModel):
    """Options every model has; each model's config subclasses it (frozen, unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float = Field(8.0, gt=0, description="Passes over the data (1/q Poisson steps each).")
    batch_size: int = Field(1000, ge=2, description="Expected Poisson batch size of the private network(s).")
    max_grad_norm: float = Field(1.0, gt=0, description="Per-sample clipping norm C.")
    codec_noise_multiplier: float | None = Field(
        None,
        gt=0,
        description=(
            "σ/Δ of the codec's histogram step; larger spends less ε there. None: 8, or more when "
            "8 would take over a fifth of ε (ε below about 2.7 at δ = 1e-6)."
        ),
    )


@dataclass(frozen=True)
class ModelInfo:
    """What `synthgate models` shows: where a model comes from and where it is (not) good."""

    family: str
    paper: str
    good_for: str
    caveats: str


@dataclass
class TrainingProgress:
    epoch: float
    epochs: float
    step: int
    steps: int
    generator_loss: float
    critic_fake_score: float
    epsilon: float


def check_epsilon(epsilon: Any) -> tuple[float, bool]:
    """(ε, dp?) for a fit's budget: a number > 0, or math.inf for a non-DP baseline."""
    is_number = isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool)
    eps = float(epsilon) if is_number else math.nan
    if math.isnan(eps) or eps <= 0:
        raise ValueError(
            f"epsilon must be a number > 0 (the DP budget of this fit), or math.inf for a "
            f"non-DP baseline. Got {epsilon!r}. Pass the contract's privacy.epsilon."
        )
    return eps, math.isfinite(eps)


#: the codec's default noise multiplier, and the largest share of ε its histogram step may take
CODEC_NOISE = 8.0
CODEC_SHARE = 0.2


def codec_noise_for(epsilon: float, delta: float, share: float = CODEC_SHARE, floor: float = CODEC_NOISE) -> float:
    """The codec's default σ/Δ: the noise at which its one Gaussian release costs share·ε (a family's
    ``codec_share``; CODEC_SHARE by default), never below ``floor`` (a family's ``codec_noise_floor``).

    At δ = 1e-6, σ/Δ = 8 costs ε ≈ 0.55: a fifth of ε = 2.7, but more than half of ε = 1, and all of
    ε = 0.5, which left the critic little or nothing. With the floor at 8, a family's codec spends
    share·ε up to ε ≈ 0.55 / share and no more at any larger ε; ctgan sets no floor (see
    ``DPCTGAN.codec_noise_floor``). Depends on ε and δ only (public).
    """
    noise = calibrate_noise(target_epsilon=share * epsilon, ledger=PrivacyLedger(delta), sample_rate=1.0, steps=1)
    return max(floor, noise)


NOISE_SEED_ENV = "SYNTHGATE_NOISE_SEED"


def private_entropy() -> int:
    """Entropy for the DP mechanisms' own randomness: Gaussian noise, Poisson sampling, codec noise.

    A DP guarantee holds only while the noise is unknown to the adversary. Noise derived from the
    run's seed, which every report shows, could be regenerated and subtracted, and a fully seeded
    pipeline is a deterministic function of the data: no privacy at all. So by default these
    streams come from the operating system's CSPRNG (``secrets``), 128 bits, never written
    anywhere, and a DP fit does not repeat. Setting ``SYNTHGATE_NOISE_SEED`` (tests, benchmarks,
    an operator who must reproduce a run) makes them repeatable; that value is then a secret key:
    whoever holds it together with the seed can remove the noise, so it never goes into a report,
    log or artifact (see ``private_randomness_source``).
    """
    raw = os.environ.get(NOISE_SEED_ENV)
    if raw is None or raw == "":
        return secrets.randbits(128)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{NOISE_SEED_ENV} must be a non-negative integer (a secret key for the DP noise); its "
            "value is not shown here. Unset it to draw the noise from the OS."
        ) from None
    if value < 0:
        raise ValueError(f"{NOISE_SEED_ENV} must be a non-negative integer; unset it to draw the noise from the OS.")
    return value


def private_randomness_source() -> str:
    """Where the DP noise came from, for the report (never the value)."""
    if os.environ.get(NOISE_SEED_ENV):
        return (
            f"secret key from ${NOISE_SEED_ENV} (repeatable: whoever holds it and the seed can "
            "regenerate the noise; keep it as secret as the data)"
        )
    return "operating-system entropy (secrets module, 128 bits; never recorded, not repeatable)"


@dataclass
class Generators:
    """Independent streams for one fit (the global RNGs are never touched).

    Public streams come from the fit's ``seed``; the private ones (marked) from
    ``private_entropy()`` mixed with the seed, so they never follow from a value a report shows.
    Each stream is its own child of a ``SeedSequence`` (domain separation): no stream's draws
    say anything about another's.

    ``per_sample`` is for every draw that is paired with a real row inside a private step: the
    critic's fake partners (their latent noise, conditions and Gumbel noise), the condition column
    chosen for a real row, WGAN-GP's interpolation weight α, the VAE's reparameterisation noise.
    DP-SGD's per-sample sensitivity argument treats the partner of row i as part of sample i: a
    draw independent of every other row and unknown to the adversary. Assigned by batch position
    from a public stream, adding one row would shift every later row's (known) partner.
    The generator's own steps never use it, so the realised (private) batch size, which decides
    how much of it a step consumes, leaves no mark on the released networks.
    """

    numpy: np.random.Generator  # PRIVATE: codec noise, integer dequantisation
    init: torch.Generator  # weight initialisation (CPU)
    batches: torch.Generator  # PRIVATE: Poisson sampling (CPU); amplification needs it secret
    device: torch.Generator  # latent noise, Gumbel noise of the generator's own steps (model's device)
    noise: torch.Generator  # PRIVATE: DP-SGD noise (on the model's device)
    extra: torch.Generator  # anything else a model needs that touches no real row (model's device)
    per_sample: torch.Generator  # PRIVATE: draws paired with real rows (see above; model's device)


#: the torch streams of ``Generators``, in checkpoint order (``numpy`` is saved apart)
TORCH_STREAMS = ("init", "batches", "device", "noise", "extra", "per_sample")
#: the streams drawn from ``private_entropy()``
PRIVATE_STREAMS = frozenset({"numpy", "batches", "noise", "per_sample"})


def make_generators(seed: int, device: torch.device) -> Generators:
    public = np.random.SeedSequence(seed).spawn(3)
    # spawn(4): children 0-2 are those of the former spawn(3), so the existing streams are unchanged
    private = np.random.SeedSequence([private_entropy(), seed]).spawn(4)
    t = lambda s: int(s.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))  # noqa: E731  (63-bit seed)
    return Generators(
        numpy=np.random.default_rng(private[0]),
        init=torch.Generator().manual_seed(t(public[0])),
        batches=torch.Generator().manual_seed(t(private[1])),
        device=torch.Generator(device=device).manual_seed(t(public[1])),
        noise=torch.Generator(device=device).manual_seed(t(private[2])),
        extra=torch.Generator(device=device).manual_seed(t(public[2])),
        per_sample=torch.Generator(device=device).manual_seed(t(private[3])),
    )


def generators_state(g: Generators) -> dict[str, Any]:
    """Every stream's position, for a checkpoint (it then holds the private streams: keep it secret)."""
    return {
        "numpy": g.numpy.bit_generator.state,
        **{name: getattr(g, name).get_state() for name in TORCH_STREAMS},
    }


def restore_generators(g: Generators, state: dict[str, Any]) -> None:
    missing = [name for name in ("numpy", *TORCH_STREAMS) if name not in state]
    if missing:
        raise ValueError(
            f"checkpoint lacks the random streams {missing} (written by an older synthgate); it cannot be "
            "resumed exactly. Delete it to start the run over."
        )
    g.numpy.bit_generator.state = state["numpy"]
    for name in TORCH_STREAMS:
        getattr(g, name).set_state(state[name])


@contextmanager
def private_file(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` atomically, readable by its owner only (mode 0600): for files that hold private
    random streams or keys. The bytes go to a temporary name beside it, renamed in when the block ends;
    a kill meanwhile leaves any previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        yield fh
    os.replace(tmp, path)


@contextmanager
def buffers_kept(*modules: nn.Module | None) -> Iterator[None]:
    """Restore the modules' buffers (BatchNorm running statistics) when the block ends."""
    saved = [[b.detach().clone() for b in m.buffers()] for m in modules if m is not None]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, kept in zip([m for m in modules if m is not None], saved, strict=True):
                for b, old in zip(m.buffers(), kept, strict=True):
                    b.copy_(old)


@dataclass(frozen=True)
class Checkpoint:
    """Where a fit saves its whole training state every ``every_epochs``, and resumes from.

    A fit given a checkpoint whose file exists continues from it: same weights, optimizer
    moments, random streams and ledger step counts, so the resumed fit ends exactly where an
    uninterrupted one would, with the same ε. The file holds the private random streams' state
    (with it the remaining DP noise is predictable) and a critic that saw real rows: it is written
    mode 0600, is never part of a release, and the release flow deletes it when the run ends.

    Tamper evidence: ``on_save`` gets each new file's SHA-256 *before* the file is renamed in (the
    release flow records it in the registry), and a checkpoint given ``trusted`` hashes loads only a
    file whose SHA-256 is one of them; ``trusted=None`` (standalone fits) skips that check.
    """

    path: Path
    every_epochs: float = 1.0
    trusted: tuple[str, ...] | None = None
    on_save: Callable[[str], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.every_epochs > 0:
            raise ValueError(f"checkpoint every_epochs must be > 0. Got {self.every_epochs!r}.")

    def every_steps(self, sample_rate: float) -> int:
        return max(1, round(self.every_epochs / sample_rate))

    @staticmethod
    def key(model: Synthesizer, n_rows: int, seed: int) -> str:
        """What a checkpoint must match to be resumed: model, options, contract, seed, row count."""
        import json

        blob = json.dumps(
            [model.name, model.config.model_dump(mode="json"), model.contract.fingerprint(), seed, n_rows],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def load(self, key: str) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        if self.trusted is not None:
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
            if digest not in self.trusted:
                raise CheckpointRefused(
                    f"checkpoint {self.path} is not the file this run wrote: its SHA-256 is not among those the "
                    f"registry recorded ({len(self.trusted)} on record); refused. Delete it to start the run over."
                )
        try:
            # weights_only: tensors and plain containers only; a planted pickle payload is never run.
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  (torch raises UnpicklingError, RuntimeError, EOFError...)
            raise CheckpointRefused(
                f"checkpoint {self.path} is not a synthgate checkpoint (it holds objects other than tensors, or "
                f"is damaged: {type(err).__name__}); refused. Delete it to start the run over."
            ) from None
        if not isinstance(state, dict) or state.get("key") != key:
            raise CheckpointRefused(
                f"checkpoint {self.path} belongs to a different fit (model, options, contract, seed or "
                "row count differ). Delete it to start over, or resume with the run that wrote it."
            )
        return state

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Atomic: a kill while saving leaves the previous checkpoint intact."""
        buffer = io.BytesIO()
        torch.save({**state, "key": key}, buffer)
        data = buffer.getvalue()
        if self.on_save is not None:  # recorded first: a kill before the rename leaves a recorded file
            self.on_save(hashlib.sha256(data).hexdigest())
        with private_file(self.path) as fh:
            fh.write(data)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_name(f".{self.path.name}.tmp").unlink(missing_ok=True)


def activate(
    codec: Codec, logits: torch.Tensor, g: torch.Generator | None, *, tau: float = 0.2, hard: bool = False
) -> torch.Tensor:
    """Raw generator output -> codec space: tanh on numeric slots, Gumbel-softmax per one-hot block.

    ``hard=True`` (sampling) returns exact one-hots (the argmax of the Gumbel-perturbed logits,
    i.e. a draw from the block's softmax; ``tau`` does not change an argmax).
    """
    if hard:
        return _hard_draw(codec, logits, g)
    # one uniform draw and one Gumbel transform for the whole matrix (the tanh slots' share is
    # unused), not one per block: fewer, larger kernels in the training loop's hottest helper
    u = torch.rand(logits.shape, generator=g, device=logits.device).clamp_(1e-10, 1.0 - 1e-10)
    noisy = (logits - torch.log(-torch.log(u))) / tau
    parts = []
    for b in codec.blocks:
        cols = slice(b.start, b.start + b.width)
        parts.append(torch.tanh(logits[:, cols]) if b.kind == "tanh" else F.softmax(noisy[:, cols], dim=1))
    return torch.cat(parts, dim=1)


def _hard_draw(codec: Codec, logits: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """``activate(hard=True)``, the sampling hot path: each one-hot block drawn by inverting its CDF.

    One uniform per block and row (the Gumbel-max trick needs one per slot, and two logarithms
    each), ``softmax`` and a running sum per block, and the one-hot written in place with
    ``scatter_`` instead of built and concatenated. The same distribution as Gumbel-max: category
    k is drawn with probability softmax(logits)_k. About 1.6x faster than the per-block Gumbel-max
    version it replaced (BENCHMARKS.md, "Speed").
    """
    out = torch.zeros_like(logits)
    soft = [b for b in codec.blocks if b.kind != "tanh"]
    u = torch.rand((logits.shape[0], len(soft)), generator=g, device=logits.device)
    j = 0
    for b in codec.blocks:
        cols = slice(b.start, b.start + b.width)
        if b.kind == "tanh":
            out[:, cols] = torch.tanh(logits[:, cols])
            continue
        cdf = torch.softmax(logits[:, cols], dim=1).cumsum_(1)
        # count of CDF steps below u·total: the drawn index (clamped against rounding at the top)
        idx = (cdf < u[:, j : j + 1] * cdf[:, -1:]).sum(1, keepdim=True).clamp_(max=b.width - 1)
        out[:, cols].scatter_(1, idx, 1.0)
        j += 1
    return out


# ---------------------------------------------------------------------------- generator losses towards DP marginals
def marginal_targets(codec: Codec, device: torch.device | str) -> dict[tuple[str, str], torch.Tensor]:
    """Per one-hot block, keyed (column, role), its DP target marginal: the codec's DP category
    frequencies (value blocks), (1 − r, r) with r the DP null rate (null blocks), the mixture's DP
    weights (mode blocks). Post-processing of the charged histogram step."""
    out = {}
    for b in codec.blocks:
        if b.kind != "softmax":
            continue
        if b.role == "mode":
            t = codec.modes[b.column].weight
        elif b.role == "value":
            t = codec.frequencies[b.column]
        else:
            r = codec.null_rate.get(b.column, 0.0)
            t = np.array([1.0 - r, r])
        out[(b.column, b.role)] = torch.as_tensor(t, dtype=torch.float32, device=device)
    return out


def marginal_loss(
    codec: Codec, logits: torch.Tensor, targets: dict[tuple[str, str], torch.Tensor], *, numeric: bool = True
) -> torch.Tensor:
    """A generator's pull towards DP marginals (post-processing: generated input, DP targets).

    Per one-hot block KL(target ‖ the batch's mean softmax), ``targets`` from ``marginal_targets``;
    per tanh slot (``numeric``) the squared distance of its sorted values to the target quantiles:
    ``targets[(column, "alpha")]`` when given (mode-specific normalisation: α's DP-implied quantiles),
    else an even grid on (-1, 1) (a quantile-normalised column is uniform there).
    """
    total = logits.new_zeros(())
    n = logits.shape[0]
    grid = (torch.arange(n, device=logits.device, dtype=logits.dtype) + 0.5) / n * 2 - 1
    for b in codec.blocks:
        x = logits[:, b.start : b.start + b.width]
        if b.kind == "tanh":
            if numeric:
                t_alpha = targets.get((b.column, "alpha"))
                target = grid if t_alpha is None else interp_quantiles(t_alpha, n)
                total = total + ((torch.sort(torch.tanh(x[:, 0])).values - target) ** 2).mean()
        else:
            t = targets[(b.column, b.role)]
            p = F.softmax(x, dim=1).mean(0).clamp_min(1e-8)
            total = total + (t * (torch.log(t.clamp_min(1e-8)) - torch.log(p))).sum()
    return total


def interp_quantiles(q: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` evenly spaced quantiles ((i + ½)/n) read off ``m`` sorted quantiles by linear interpolation."""
    m = q.shape[0]
    pos = ((torch.arange(n, device=q.device, dtype=q.dtype) + 0.5) / n * m - 0.5).clamp(0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = pos - lo.to(q.dtype)
    return q[lo] * (1 - frac) + q[hi] * frac


# ---------------------------------------------------------------------------- the training loop's pieces
@dataclass
class Phase:
    """One stage of a fit: ``steps`` iterations of ``step`` on Poisson batches at ``sample_rate``.

    ``accounted``: the subsampled mechanisms one iteration runs, each one accounted step at this rate
    (table-GAN's discriminator, feature moments and classifier: 3); σ is calibrated over every
    phase's ``steps × accounted`` before the first one starts. ``epochs``: what progress reports
    call this phase's length. ``start(run)``: called when the phase begins, also when a fit resumes
    inside it (medGAN's GAN phase takes over the autoencoder's decoder there). ``step(run, i)``:
    iteration ``i`` (from 1 within the phase); returns (generator loss, critic's mean score of
    fakes) for progress, or None to repeat the last ones. Only model-side figures: never a figure
    computed on real rows.
    """

    name: str
    steps: int
    sample_rate: float
    epochs: float
    step: Callable[[Run, int], tuple[Any, Any] | None]
    accounted: int = 1
    start: Callable[[Run], None] | None = None


@dataclass
class Run:
    """One fit in progress, as the loop hands it to a family's hooks.

    ``X``: the encoded training rows (on the model's device; private). ``n_hat``: the codec's DP
    row count. ``sigma``: the noise multiplier every private phase shares (0 when non-DP).
    Private networks are made with :meth:`private` and anything else a resumed fit needs
    (generators, their optimizers, moving averages: objects with ``state_dict`` /
    ``load_state_dict``) is registered with :meth:`keep`; the loop checkpoints both. ``phases``:
    the fit's phases (set before ``_build_training``).
    """

    model: Synthesizer
    X: torch.Tensor
    ledger: PrivacyLedger
    dp: bool
    epsilon: float
    gens: Generators
    n_hat: float
    sample_rate: float = 1.0
    sigma: float = 0.0
    phases: list[Phase] = field(default_factory=list)
    trainers: dict[str, PrivateTrainer] = field(default_factory=dict)
    kept: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The exact row count: private. Only ``real_batch`` may use it (Poisson sampling)."""
        return int(self.X.shape[0])

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def expected_batch(self) -> int:
        """The expected Poisson batch size from the DP row count (public), rounded."""
        return round(self.sample_rate * self.n_hat)

    def real_batch(self) -> torch.Tensor:
        """A Poisson-sampled batch of real rows (each row in it independently, at ``sample_rate``),
        drawn from the private ``gens.batches`` stream."""
        idx = poisson_sample(self.n, self.sample_rate, self.gens.batches)
        return self.X[idx.to(self.X.device)]

    def private(self, net: nn.Module, *, mechanism: str, lr: float, what: str, **options: Any) -> PrivateTrainer:
        """The DP-SGD trainer of a network that reads real rows (``Synthesizer._private_trainer``),
        charged to this fit's ledger as ``mechanism`` and checkpointed by the loop."""
        if mechanism in self.trainers:
            raise ValueError(f"a fit has one trainer per mechanism; {mechanism!r} exists already.")
        trainer = self.model._private_trainer(
            net,
            ledger=self.ledger,
            dp=self.dp,
            sigma=self.sigma,
            sample_rate=self.sample_rate,
            gens=self.gens,
            mechanism=mechanism,
            lr=lr,
            what=what,
            **options,
        )
        self.trainers[mechanism] = trainer
        return trainer

    def keep(self, **objects: Any) -> None:
        """Checkpoint these objects (``state_dict`` / ``load_state_dict``) with the fit."""
        self.kept.update(objects)

    def state(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            if isinstance(obj, nn.Module):
                return {k: v.detach().cpu().clone() for k, v in obj.state_dict().items()}
            return obj.state_dict()

        return {
            "trainers": {name: t.state() for name, t in self.trainers.items()},
            "kept": {name: plain(obj) for name, obj in self.kept.items()},
        }

    def load_trainers(self, state: dict[str, Any]) -> None:
        saved = state["trainers"]
        if set(saved) != set(self.trainers):
            raise CheckpointRefused(
                f"checkpoint holds trainers {sorted(saved)}, this fit has {sorted(self.trainers)}; it was written "
                "by another synthgate. Delete it to start the run over."
            )
        for name, trainer in self.trainers.items():
            trainer.load_state(saved[name])

    def load_kept(self, state: dict[str, Any]) -> None:
        """Objects saved under their name come back; one kept only after the checkpoint (a phase that
        had not started yet) keeps its fresh state."""
        for name, obj in self.kept.items():
            if name in state["kept"]:
                obj.load_state_dict(state["kept"][name])


def _as_float(v: Any) -> float:
    """A progress figure as a number (a tensor's mean)."""
    return float(v.detach().mean()) if isinstance(v, torch.Tensor) else float(v)


#: version of the loop's checkpoint layout (a file without it was written by a per-model loop)
CHECKPOINT_LAYOUT = 1


class Synthesizer(ABC):
    """Base of every registered model. See the module docstring for the contract subclasses keep."""

    name: ClassVar[str]
    config_class: ClassVar[type[SynthConfig]]
    info: ClassVar[ModelInfo]
    #: True when ``sample(conditions=...)`` generates matching rows directly (no rejection).
    conditional: ClassVar[bool] = False
    #: True when ``fit`` takes ``checkpoint=Checkpoint(...)`` (saves and resumes training state).
    supports_checkpoints: ClassVar[bool] = True

    def __init__(self, contract: Contract, config: SynthConfig | None = None, *, device: str = "auto") -> None:
        cfg = config if config is not None else self.config_class()
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"{self.name} needs a {self.config_class.__name__}; got {type(cfg).__name__}.")
        self.contract = contract
        self.config = cfg
        self.device = resolve_device(device)
        self.codec = Codec(contract)
        self.training_summary: dict[str, Any] = {}
        self._fitted = False

    # ------------------------------------------------------------------ subclass API
    @abstractmethod
    def _networks(self) -> dict[str, nn.Module]:
        """The networks sampling needs (saved by ``save``); none of them may hold a private value."""

    @abstractmethod
    def _build(self) -> None:
        """Construct the (untrained) networks of ``_networks`` from config + codec, for ``load``."""

    @abstractmethod
    def _sample_block(self, n: int, g: torch.Generator, conditions: dict[str, Any] | None) -> torch.Tensor:
        """``n`` generated rows in codec space (one-hot blocks exact), shape (n, codec.dim)."""

    def _extra_state(self) -> dict[str, Any]:
        """JSON-able state beyond the networks and the codec (override when sampling needs it)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        return None

    # ------------------------------------------------------------------ training: the one loop
    def fit(
        self,
        train: pl.DataFrame,
        *,
        ledger: PrivacyLedger,
        epsilon: float,
        seed: int,
        progress: Callable[[TrainingProgress], None] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Self:
        """Learn from ``train`` under (epsilon, ledger.delta)-DP, charging every data-dependent step to ``ledger``.

        The loop every family shares, in order: the codec's charged histogram step (and a family's
        own charged measurements, ``_measure``), the phases (``_phases``) and one noise multiplier
        calibrated over all of them before any network reads a row (``_noise_multiplier``), the
        networks and their private trainers (``_build_training``), then each phase's steps with
        progress about 50 times per fit and a checkpoint every ``checkpoint.every_epochs``, and the
        training summary. A family supplies those hooks and its step; the loop owns the rest.

        ``checkpoint``: save the whole training state every ``checkpoint.every_epochs``; when its
        file exists, continue from it (same ε and, on the same device, the same model as a fit that
        was never interrupted).

        ``epsilon=math.inf`` trains WITHOUT differential privacy (non-DP baselines, attack
        oracles): exact codec histograms, plain Adam with no clipping and no noise, on the same
        Poisson batches and step counts, recorded in ``ledger`` as non-DP entries, so
        ``ledger.epsilon`` is ``math.inf`` and no budget gate can pass the model.
        """
        eps, dp = check_epsilon(epsilon)
        self._check_train(train)
        t0 = time.perf_counter()
        gens = make_generators(seed, self.device)
        key = Checkpoint.key(self, train.height, seed) if checkpoint is not None else ""
        resume = checkpoint.load(key) if checkpoint is not None else None
        if resume is not None and resume.get("layout") != CHECKPOINT_LAYOUT:
            raise CheckpointRefused(
                f"checkpoint {checkpoint.path} was written by an older synthgate (checkpoint layout "  # type: ignore[union-attr]
                f"{resume.get('layout')!r}, this one reads {CHECKPOINT_LAYOUT}); it cannot be resumed. Delete it to "
                "start the run over."
            )
        if resume is None:
            first = len(ledger.entries)
            self._fit_codec_statistics(train, ledger=ledger, dp=dp, rng=gens.numpy, epsilon=eps)
            # a measurement's noise gets its own private stream, split off before the encoding draws one
            # jitter per row: after it, the shared stream's position would depend on the row count
            measure_rng = np.random.default_rng(gens.numpy.integers(0, 2**63)) if self.measures else None
            encode_rng = copy.deepcopy(gens.numpy.bit_generator.state)
            encoded = self.codec.encode(train, rng=gens.numpy)
            if measure_rng is not None:
                self._measure(encoded, ledger=ledger, dp=dp, epsilon=eps, rng=measure_rng)
            before = PrivacyLedger(ledger.delta)
            before.entries = [dataclasses.replace(e) for e in ledger.entries[first:]]
            ledger_before = before.to_dict()
        else:
            ledger_before, encode_rng = resume["ledger_before_training"], resume["encode_rng"]
            encoded = self._resume_codec(train, resume, ledger=ledger, gens=gens)
            self._load_measured_state(resume["measured"])
        run = Run(
            self,
            torch.as_tensor(encoded, device=self.device),
            ledger,
            dp,
            eps,
            gens,
            n_hat=float(self.codec.n_estimate or 1.0),
        )
        del encoded
        phases = self._phases(run)
        rates = {p.sample_rate for p in phases}
        if len(rates) != 1:
            raise ValueError(f"{self.name}: every phase of a fit shares one Poisson rate; got {sorted(rates)}.")
        run.sample_rate, run.phases = phases[0].sample_rate, phases
        run.sigma = float(resume["sigma"]) if resume is not None else self._noise_multiplier(run, phases)
        training_from = len(ledger.entries)
        self._build_training(run)
        total = sum(p.steps for p in phases)
        epochs = sum(p.epochs for p in phases)
        done = 0
        last: tuple[Any, Any] = (math.nan, math.nan)
        if resume is not None:
            done = int(resume["step"])
            run.load_trainers(resume["run"])
            for entry, steps in zip(ledger.entries[training_from:], resume["ledger_steps"], strict=True):
                entry.steps = int(steps)
        every = checkpoint.every_steps(run.sample_rate) if checkpoint is not None else 0
        offset = 0
        for phase in phases:
            if offset + phase.steps <= done:  # finished before the checkpoint was written
                offset += phase.steps
                continue
            if phase.start is not None:
                phase.start(run)
            if resume is not None and offset <= done:  # the checkpoint was written inside this phase
                run.load_kept(resume["run"])
                restore_generators(gens, resume["rng"])
                last = (float(resume["last"][0]), float(resume["last"][1]))
            for i in range(max(1, done - offset + 1), phase.steps + 1):
                out = phase.step(run, i)
                if out is not None:
                    last = out
                step = offset + i
                if checkpoint is not None and step % every == 0 and step < total:
                    checkpoint.save(
                        key,
                        {
                            "layout": CHECKPOINT_LAYOUT,
                            "step": step,
                            "sigma": run.sigma,
                            "codec": self.codec.state(),
                            "ledger_before_training": ledger_before,
                            "encode_rng": encode_rng,
                            "measured": self._measured_state(),
                            "ledger_steps": [int(e.steps) for e in ledger.entries[training_from:]],
                            "run": run.state(),
                            "rng": generators_state(gens),
                            "last": [_as_float(v) for v in last],
                        },
                    )
                self._report(
                    progress,
                    step=step,
                    steps=total,
                    sample_rate=run.sample_rate,
                    epochs=epochs,
                    generator_loss=last[0],
                    critic_fake_score=last[1],
                    ledger=ledger,
                )
            offset += phase.steps
        self._finish_training(run)
        self.training_summary = {
            "differential_privacy": dp,
            "steps": phases[-1].steps,
            "sample_rate": run.sample_rate,
            "noise_multiplier": run.sigma,
            "max_grad_norm": self.config.max_grad_norm if dp else None,
            "expected_batch_size": run.sample_rate * run.n_hat,
            **self._summary(run),
            "seconds": time.perf_counter() - t0,
            "device": str(self.device),
            "resumed_at_step": done + 1 if resume is not None else None,
        }
        self._fitted = True
        return self

    # ------------------------------------------------------------------ training hooks (a family's part)
    #: True when the family charges measurements of its own after the codec's (``_measure``)
    measures: ClassVar[bool] = False
    #: the share of ε the codec's histograms cost by default (below ε ≈ 2.7 / share, where σ/Δ = 8 costs less)
    codec_share: ClassVar[float] = CODEC_SHARE
    #: the least σ/Δ of the codec's release by default (``codec_noise_for``): a cap on what it spends
    codec_noise_floor: ClassVar[float] = CODEC_NOISE

    def _check_train(self, train: pl.DataFrame) -> None:
        """Refuse a training table this family cannot read (before anything is charged)."""
        return None

    def _measure(
        self, encoded: np.ndarray, *, ledger: PrivacyLedger, dp: bool, epsilon: float, rng: np.random.Generator
    ) -> None:
        """Charged measurements beyond the codec's (``measures = True``): ``rng`` is their private stream."""
        raise NotImplementedError(f"{self.name} sets measures = True but has no _measure.")

    def _measured_state(self) -> Any:
        """What ``_measure`` learned, for a checkpoint (tensors, numbers, lists, dicts; or None)."""
        return None

    def _load_measured_state(self, state: Any) -> None:
        return None

    def _phases(self, run: Run) -> list[Phase]:
        """The fit's phases. Default: one, ``config.epochs`` passes of ``_train_step``."""
        q, steps = self._plan(run.n)
        return [Phase("train", steps, q, epochs=self.config.epochs, step=self._train_step)]

    def _noise_multiplier(self, run: Run, phases: list[Phase]) -> float:
        """σ shared by every private phase: the smallest that keeps the ledger within ε (0 when non-DP)."""
        if not run.dp:
            return 0.0
        return calibrate_noise(
            target_epsilon=run.epsilon,
            ledger=run.ledger,
            phases=[(p.sample_rate, p.steps * p.accounted) for p in phases],
        )

    @abstractmethod
    def _build_training(self, run: Run) -> None:
        """Build and initialise (from ``run.gens.init``) the networks, their optimizers and private
        trainers (``run.private``), and register with ``run.keep`` what a resumed fit needs."""

    def _train_step(self, run: Run, i: int) -> tuple[Any, Any] | None:
        """One iteration of the default phase (see ``Phase.step``)."""
        raise NotImplementedError(f"{self.name} has no _train_step.")

    def _finish_training(self, run: Run) -> None:
        """After the last step. Default: the released networks go to eval mode."""
        for net in self._networks().values():
            net.eval()

    def _summary(self, run: Run) -> dict[str, Any]:
        """The family's own entries of ``training_summary`` (public or DP figures only)."""
        return {}

    @staticmethod
    def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter]) -> None:
        """One post-processing update (a generator's; medGAN's decoder's): gradients into ``params``
        only. Inside ``trainer.hooks_off()`` when ``loss`` went through a private network, so that its
        per-sample hooks record nothing."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        optimizer.step()

    def _require_modelled_columns(self, train: pl.DataFrame) -> None:
        """``_check_train`` of families that read the table by position: exactly the modelled columns."""
        if not isinstance(train, pl.DataFrame):
            raise TypeError(f"train must be a polars DataFrame; got {type(train).__name__}.")
        expected = list(self.contract.modelled_columns)
        if list(train.columns) != expected:
            missing = [c for c in expected if c not in train.columns]
            extra = [c for c in train.columns if c not in expected]
            raise ValueError(
                f"train must hold exactly the contract's modelled columns {expected}, in that order; "
                f"missing {missing}, unexpected {extra}. Select them with train.select(contract.modelled_columns)."
            )
        if train.height < 1:
            raise ValueError("train has no rows: a model needs at least one row to fit.")

    def _calibrator(self) -> Calibrator | None:
        """The released marginals ``sample`` draws its output to match (models/calibrate.py), or
        None to take the generator's rows as they come (the default)."""
        return None

    # ------------------------------------------------------------------ shared helpers
    def _report(
        self,
        progress: Callable[[TrainingProgress], None] | None,
        *,
        step: int,
        steps: int,
        sample_rate: float,
        generator_loss: torch.Tensor | float,
        critic_fake_score: torch.Tensor | float,
        ledger: PrivacyLedger,
        epochs: float | None = None,
    ) -> None:
        """Tell ``progress`` where training is, about 50 times per fit and at the last step.

        Only model-side figures (losses, the critic's mean score on fakes) and ε: never a figure
        computed on real rows.
        """
        if progress is None or (step % max(1, steps // 50) and step != steps):
            return
        if epochs is None:
            epochs = self.config.epochs if self.config.epochs is not None else steps * sample_rate
        progress(
            TrainingProgress(
                # the share of the planned passes done: steps is ceil(epochs / q), so step * q would
                # end a little past the plan ("ep 16.0/16.0078")
                epoch=epochs * step / steps,
                step=step,
                steps=steps,
                epochs=epochs,
                generator_loss=_as_float(generator_loss),
                critic_fake_score=_as_float(critic_fake_score),
                epsilon=ledger.epsilon,
            )
        )

    def _private_trainer(
        self,
        net: nn.Module,
        *,
        ledger: PrivacyLedger,
        dp: bool,
        sigma: float,
        sample_rate: float,
        gens: Generators,
        mechanism: str,
        lr: float,
        what: str,
        **options: Any,
    ) -> PrivateTrainer:
        """The trainer of one network that reads real rows, with what every fit shares: the fit's
        noise multiplier and Poisson rate, the expected batch size from the DP row count, the
        config's clipping norm and Adam betas, and the private noise stream. ``options``:
        PrivateTrainer's own (``per_sample``, ``weight_decay``)."""
        n_hat = float(self.codec.n_estimate or 1.0)
        return PrivateTrainer(
            net.to(self.device),
            ledger=ledger,
            mechanism=mechanism,
            dp=dp,
            noise_multiplier=sigma,
            sample_rate=sample_rate,
            expected_batch_size=max(1, round(sample_rate * n_hat)),
            max_grad_norm=self.config.max_grad_norm,
            lr=lr,
            betas=self.config.betas,  # type: ignore[attr-defined]  # every model's config sets its Adam betas
            noise_generator=gens.noise,
            what=what,
            **options,
        )

    @staticmethod
    def _fake_partners(
        b: int, chunk: int, make: Callable[[int], torch.Tensor], *, keep: nn.Module | None = None
    ) -> torch.Tensor | None:
        """``b`` fake partners for a Poisson batch of ``b`` real rows, made in chunks of ``chunk`` rows.

        A generator with BatchNorm in train mode normalises over the rows it generates together.
        Generating exactly ``b`` rows would make every partner's distribution depend on ``b``, i.e.
        on whether one more person was sampled, which breaks the per-sample sensitivity argument of
        DP-SGD. ``chunk`` is public (the expected batch size from the DP row count), so fixed-size
        chunks keep each partner independent of ``b`` and of every real row. None for ``b = 0``.

        ``b`` itself is private, so nothing that shapes the released generator may depend on it:
        ``make`` must draw from a stream the generator's own steps never use (``gens.per_sample``,
        private: a partner is paired with a real row), and
        ``keep`` (the generator) gets its BatchNorm running statistics back afterwards, since the
        number of chunks would otherwise leave its mark on them (found by the taint test).
        """
        if b == 0:
            return None
        with torch.no_grad(), buffers_kept(keep):  # partners carry no gradient to the generator
            return torch.cat([make(chunk) for _ in range(math.ceil(b / chunk))])[:b]

    def _fit_codec_statistics(
        self, train: pl.DataFrame, *, ledger: PrivacyLedger, dp: bool, rng: np.random.Generator, epsilon: float
    ) -> None:
        if dp:
            noise = self.config.codec_noise_multiplier or codec_noise_for(
                epsilon, ledger.delta, self.codec_share, self.codec_noise_floor
            )
            self.codec.fit_dp(train, ledger=ledger, noise_multiplier=noise, rng=rng)
        else:
            self.codec.fit_non_dp(train, ledger=ledger)

    def _resume_codec(
        self, train: pl.DataFrame, state: dict[str, Any], *, ledger: PrivacyLedger, gens: Generators
    ) -> np.ndarray:
        """From a checkpoint: the codec's (already charged) statistics and their ledger entries come
        back instead of being drawn again, and the encoding repeats the original draw."""
        self.codec.load_state(state["codec"])
        restored = PrivacyLedger.from_dict(state["ledger_before_training"])
        ledger.entries.extend(restored.entries)
        gens.numpy.bit_generator.state = state["encode_rng"]
        return self.codec.encode(train, rng=gens.numpy)

    def _plan(self, n_rows: int) -> tuple[float, int]:
        """(Poisson rate q, steps) for ``config.epochs`` over the DP row-count estimate."""
        n_hat = float(self.codec.n_estimate or n_rows or 1.0)
        q = min(1.0, self.config.batch_size / n_hat)
        return q, max(1, math.ceil(self.config.epochs / q))

    def default_sample_size(self) -> int:
        """How many rows a release samples when nobody asked for a number: the codec's DP estimate of
        the training row count, rounded (at least 1).

        Never the exact count: the synthetic table's length is published, and the exact number of
        training rows is a private count (one more person, one more row). The estimate is
        post-processing of the charged histogram step (for a non-DP fit, ``epsilon = math.inf``, it is
        the exact count, but such a model never passes a budget gate).
        """
        if not self._fitted or self.codec.n_estimate is None:
            raise RuntimeError("default_sample_size() needs a fitted or loaded model: call fit() or load() first.")
        return max(1, round(float(self.codec.n_estimate)))

    def conditionable_columns(self) -> list[str]:
        """Columns ``sample(conditions=...)`` can fix without rejection (override when conditional)."""
        return []

    def _check_conditions(self, conditions: dict[str, Any] | None) -> dict[str, Any] | None:
        if not conditions:
            return None
        allowed = self.conditionable_columns()
        bad = [c for c in conditions if c not in allowed]
        if bad:
            raise ValueError(
                f"model {self.name!r} cannot generate conditionally on {bad}; it can condition on "
                f"{allowed or 'no column'}. Use models.synthesizers.sample_where (rejection "
                "sampling) for other conditions, or a conditional model (`synthgate models`)."
            )
        return conditions

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self, n: int, *, seed: int, conditions: dict[str, Any] | None = None, batch: int = 50_000
    ) -> pl.DataFrame:
        """``n`` synthetic rows (post-processing of the DP model: reads no private row)."""
        if not self._fitted:
            raise RuntimeError("sample() needs a fitted or loaded model: call fit() or load() first.")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be an integer >= 0. Got {n!r}.")
        conditions = self._check_conditions(conditions)
        g = torch.Generator(device=self.device).manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        for net in self._networks().values():
            net.eval()
        parts = []
        # A conditional sample keeps the generator's own rows: the released marginals are not conditional.
        calibrator = None if conditions else self._calibrator()
        step = batch if calibrator is None else max(1, batch // POOL_FACTOR)
        for start in range(0, int(n), step):
            m = min(step, int(n) - start)
            if calibrator is None:
                parts.append(self._sample_block(m, g, conditions).float().cpu().numpy())
                continue
            pool = self._sample_block(POOL_FACTOR * m, g, None).float().cpu().numpy()
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g, device=g.device)))
            parts.append(calibrator.select(pool, m, rng))
        x = np.concatenate(parts) if parts else np.zeros((0, self.codec.dim), dtype=np.float32)
        if conditions:
            self._impose(x, conditions)
        grid_rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g, device=g.device)))
        return self.codec.decode(x, rng=grid_rng)

    def _impose(self, x: np.ndarray, conditions: dict[str, Any]) -> None:
        """Set each conditioned column's one-hot block to the condition (in place).

        The model generated the other columns given the condition; its own output for the
        conditioned column usually agrees but is a Gumbel draw, and a sample that asked for
        ``income = '>50K'`` must contain nothing else.
        """
        for column, value in conditions.items():
            spec = next((s for s in self.codec.discrete if s.name == column), None)
            if spec is None or value not in spec.categories:
                domain = spec.categories if spec is not None else "(not a categorical or boolean column)"
                raise ValueError(f"{value!r} is not in the contract's domain of {column!r}: {domain}.")
            block = next(b for b in self.codec.blocks if b.column == column and b.role == "value")
            x[:, block.start : block.start + block.width] = 0.0
            x[:, block.start + spec.categories.index(value)] = 1.0

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Networks + codec state (DP outputs only); loadable with ``torch.load(weights_only=True)``."""
        if not self._fitted:
            raise RuntimeError("nothing to save: the model is not fitted.")
        torch.save(
            {
                "format_version": FORMAT_VERSION,
                "model": self.name,
                "config": self.config.model_dump(mode="json"),
                "contract_fingerprint": self.contract.fingerprint(),
                "codec": self.codec.state(),
                "extra": self._extra_state(),
                "networks": {
                    name: {k: v.detach().cpu() for k, v in net.state_dict().items()}
                    for name, net in self._networks().items()
                },
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, contract: Contract, *, device: str = "auto") -> Self:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("model") != cls.name:
            raise ValueError(
                f"{path} holds a {blob.get('model')!r} model, not {cls.name!r}. Load it with "
                "synthgate.models.synthesizers.load_synthesizer, which reads the name from the file."
            )
        if blob.get("contract_fingerprint") != contract.fingerprint():
            raise ValueError(
                f"{path} was trained under a different contract (fingerprint mismatch). Load it "
                "with the contract saved beside it in the release folder."
            )
        model = cls(contract, cls.config_class.model_validate(blob["config"]), device=device)
        model.codec.load_state(blob["codec"])
        model._load_extra_state(blob.get("extra", {}))
        model._build()
        nets = model._networks()
        if set(nets) != set(blob["networks"]):
            raise ValueError(f"{path}: networks {sorted(blob['networks'])} do not match {sorted(nets)}.")
        for name, net in nets.items():
            net.load_state_dict(blob["networks"][name])
            net.to(model.device).eval()
        model._fitted = True
        return model
