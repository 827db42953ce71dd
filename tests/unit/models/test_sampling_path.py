"""The sampling hot path: activate(hard=True) draws exact one-hots with softmax(logits) probabilities;
ctgan's generator in eval mode without gradients takes a fused forward equal to the plain one."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from synthgate.models.codec import Codec
from synthgate.models.synthesizers.base import activate
from synthgate.models.synthesizers.ctgan import Generator
from synthgate.validation.contract import Contract


def test_hard_draw_is_one_hot_with_softmax_frequencies(adult_contract: Contract) -> None:
    codec = Codec(adult_contract)
    g = torch.Generator().manual_seed(0)
    row = torch.randn(1, codec.dim, generator=g) * 2.0
    n = 40_000
    out = activate(codec, row.repeat(n, 1), torch.Generator().manual_seed(1), hard=True)
    for b in codec.blocks:
        block = out[:, b.start : b.start + b.width]
        if b.kind == "tanh":
            assert torch.allclose(block, torch.tanh(row[:, b.start : b.start + b.width]).expand(n, -1))
            continue
        assert torch.all(block.sum(1) == 1.0) and torch.all((block == 0) | (block == 1)), b.column
        expected = torch.softmax(row[0, b.start : b.start + b.width].double(), 0).numpy() * n
        observed = block.sum(0).double().numpy()
        keep = expected >= 5  # chi-square's validity rule; the rest pooled into one cell
        obs = np.append(observed[keep], observed[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        obs, exp = obs[exp > 0], exp[exp > 0]
        # a fixed seed; a wrong sampler (e.g. an off-by-one in the CDF search) gives p ~ 0
        assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-4, b.column


def test_hard_draw_is_repeatable_and_never_out_of_range(adult_contract: Contract) -> None:
    codec = Codec(adult_contract)
    # extreme logits: one category certain, the CDF's top within rounding of u·total
    logits = torch.full((1000, codec.dim), -50.0)
    for b in codec.blocks:
        if b.kind != "tanh":
            logits[:, b.start + b.width - 1] = 50.0
    a = activate(codec, logits, torch.Generator().manual_seed(3), hard=True)
    b2 = activate(codec, logits, torch.Generator().manual_seed(3), hard=True)
    assert torch.equal(a, b2)
    for b in codec.blocks:
        if b.kind != "tanh":
            assert torch.all(a[:, b.start + b.width - 1] == 1.0), b.column


def test_ctgan_generator_inference_path_equals_the_plain_forward() -> None:
    torch.manual_seed(0)
    gen = Generator(40, (32, 48), 17)
    gen.train()
    for _ in range(3):  # BatchNorm running statistics away from their initial (0, 1)
        gen(torch.randn(64, 40) * 3 + 1)
    gen.eval()
    x = torch.randn(500, 40)
    with torch.no_grad():
        fused = gen(x)  # eval + no grad: the buffer / folded-BatchNorm path
        plain = gen.out(gen.body(x))
    with torch.enable_grad():
        graded = gen(x)  # gradients on: the plain path, unchanged
    assert torch.allclose(fused, plain, atol=1e-5, rtol=1e-5)
    assert torch.equal(graded.detach(), plain)


def test_ctgan_condition_vectors_follow_the_dp_frequencies(adult_contract: Contract, adult_small) -> None:
    from synthgate.models.ledger import PrivacyLedger
    from synthgate.models.synthesizers.ctgan import DPCTGAN

    model = DPCTGAN(adult_contract, device="cpu")
    model.codec.fit_non_dp(adult_small.select(adult_contract.modelled_columns), ledger=PrivacyLedger(1e-6))
    model._set_logit_bias()
    n = 60_000
    for log_frequency in (False, True):
        cond, which, cats = model._sample_cond(n, torch.Generator().manual_seed(5), log_frequency=log_frequency)
        assert torch.all(cond.sum(1) == 1.0)
        blocks = model._cond_blocks
        # the block is uniform over the discrete columns
        counts = torch.bincount(which, minlength=len(blocks)).double().numpy()
        assert stats.chisquare(counts).pvalue > 1e-4
        offset = 0
        for j, b in enumerate(blocks):
            rows = which == j
            assert torch.all(cats[rows] < b.width)
            assert torch.all(cond[rows, offset : offset + b.width].argmax(1) == cats[rows]), b.column
            f = np.asarray(model.codec.frequencies[b.column], dtype=np.float64)
            if log_frequency:
                f = np.log1p(f * float(model.codec.n_estimate))
            expected = f / f.sum() * int(rows.sum())
            observed = torch.bincount(cats[rows], minlength=b.width).double().numpy()
            keep = expected >= 5
            assert observed[expected == 0].sum() == 0, b.column  # a category of frequency 0 never drawn
            obs = np.append(observed[keep], observed[~keep].sum())
            exp = np.append(expected[keep], expected[~keep].sum())
            obs, exp = obs[exp > 0], exp[exp > 0]
            assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-4, (b.column, log_frequency)
            offset += b.width
