"""MoCE-IR: a Restormer-style encoder-decoder whose decoder routes each image to one of several "complexity experts".

The encoder, the latent and the refinement are Restormer stages. The decoder's blocks split their normalised input
into a *shared* branch (transposed self-attention) and an *adapter* branch; a router picks, per image, the top-k of
``num_experts`` experts for the adapter branch from the branch's mean and a frequency embedding of the latent, and a
channel cross-attention (queries from the adapter, keys and values from the shared branch) joins the two. Expert
``e`` works at rank ``C / 2**(E-1-e)`` on FFT patches of side ``2**(e+2)``: the larger experts see more and cost more.

Zamfir et al., "Complexity Experts are Task-Discriminative Learners for Any Image Restoration", CVPR 2025
(arXiv 2411.18466); published as ``MoCEIR`` in github.com/eduardzamfir/MoCE-IR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pip_model.networks.backbone import SkipBackbone
from pip_model.networks.layers import (
    ChannelLayerNorm,
    CrossAttention,
    Downsample,
    GatedDconvFeedForward,
    LayerNormType,
    TransposedSelfAttention,
    Upsample,
    transformer_stage,
)

RoutingMode = Literal["per_image", "published"]
RankType = Literal["spread", "constant"]


def _depthwise(channels: int, kernel_size: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel_size=kernel_size, padding=kernel_size // 2, groups=channels, bias=bias)


class FourierAttention(nn.Module):
    """An expert's body: q and k multiplied in the frequency domain patch by patch, normalised, gating v.

    q (1x1, depthwise 3x3) and k (1x1, depthwise 7x7) are zero-padded on the bottom and right to a multiple of
    ``patch_size`` and cut into patches; each patch of the output is the circular convolution of q and k,
    ``irfft2(rfft2(q) * rfft2(k))``, cropped back, layer-normalised over channels, multiplied by v and projected.

    Args:
        channels: C, the expert's rank.
        patch_size: side of the FFT patches.

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.q = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.q_dwconv = _depthwise(channels, 3, bias=True)
        self.kv = nn.Conv2d(channels, channels * 2, kernel_size=1, bias=False)
        self.kv_dwconv = _depthwise(channels * 2, 7, bias=True)
        self.norm = ChannelLayerNorm(channels=channels, kind="with_bias")
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1, bias=True)

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p))
        return rearrange(x, "b c (h p1) (w p2) -> b c h w p1 p2", p1=p, p2=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(x)).chunk(2, dim=1)
        # The FFT in at least float32: half-precision FFTs are slow or missing, and the published code casts too.
        working = torch.promote_types(q.dtype, torch.float32)
        product = torch.fft.rfft2(self._patches(q).to(working)) * torch.fft.rfft2(self._patches(k).to(working))
        out = torch.fft.irfft2(product, s=(self.patch_size, self.patch_size)).to(q.dtype)
        out = rearrange(out, "b c h w p1 p2 -> b c (h p1) (w p2)")[..., :height, :width]
        return self.project_out(self.norm(out) * v)


class ComplexityExpert(nn.Module):
    """One expert: ``x + up(FourierAttention(down(x)) * silu(gate(shared)))`` at a reduced rank.

    Args:
        channels: C of the adapter branch.
        rank: channels the expert works at.
        patch_size: side of its FFT patches.

    Shape:
        x (B, C, H, W), shared (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, rank: int, patch_size: int) -> None:
        super().__init__()
        self.project_in = nn.Conv2d(channels, rank, kernel_size=1, bias=False)
        self.project_gate = nn.Conv2d(channels, rank, kernel_size=1, bias=False)
        self.project_out = nn.Conv2d(rank, channels, kernel_size=1, bias=False)
        self.attention = FourierAttention(channels=rank, patch_size=patch_size)

    def forward(self, x: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        body = self.attention(self.project_in(x)) * F.silu(self.project_gate(shared))
        return x + self.project_out(body)


@dataclass(frozen=True)
class RoutingDecision:
    """What a router decided for a batch, kept for inspection and for a training-time balance loss.

    Attributes:
        logits: the router's logits before noise, (B, E); in training they carry the graph to the router.
        noise: the noise added to the logits, (B, E), or None when none was.
        experts: the chosen experts of each image, best first, (B, k).
        weights: their probabilities under the noisy softmax, (B, k); the chosen outputs are scaled by them.
    """

    logits: torch.Tensor
    noise: torch.Tensor | None
    experts: torch.Tensor
    weights: torch.Tensor

    @property
    def noisy_logits(self) -> torch.Tensor:
        """The logits the choice was made on."""
        return self.logits if self.noise is None else self.logits + self.noise


class ExpertRouter(nn.Module):
    """Scores the experts for each image from the adapter branch's mean and the frequency embedding.

    ``logits = gate(mean_hw(x)) + frequency_gate(frequency)``; with noise on, ``noise_std * N(0, 1)`` from torch's
    global generator is added (one ``randn_like(logits)`` per call); the top-k of the softmax are chosen.

    Args:
        channels: C of the adapter branch.
        frequency_channels: width of the frequency embedding.
        num_experts: E.
        top_k: experts chosen per image.
        complexity: each expert's parameter count divided by the largest, (E,). Kept as a buffer because the
            published balance loss can weigh the experts by it (and the released checkpoints hold it); the forward
            pass never reads it.

    Attributes:
        noise_std: scale of the logit noise, ``1 / E`` as published.
        last: the decision of the last forward pass, or None before the first.

    Shape:
        x (B, C, H, W), frequency (B, F) -> experts (B, k) long, weights (B, k)
    """

    def __init__(self, *, channels: int, frequency_channels: int, num_experts: int, top_k: int,
                 complexity: torch.Tensor) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be between 1 and num_experts ({num_experts}), got {top_k}")
        self.top_k = top_k
        self.noise_std = 1.0 / num_experts
        self.gate = nn.Linear(channels, num_experts, bias=False)
        self.frequency_gate = nn.Linear(frequency_channels, num_experts, bias=False)
        self.register_buffer("complexity", complexity)
        self.last: RoutingDecision | None = None

    def forward(self, x: torch.Tensor, frequency: torch.Tensor, *, noisy: bool) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.gate(x.mean(dim=(-2, -1))) + self.frequency_gate(frequency)
        noise = torch.randn_like(logits) * self.noise_std if noisy else None
        scores = (logits if noise is None else logits + noise).softmax(dim=-1)
        weights, experts = scores.topk(self.top_k, dim=-1)
        self.last = RoutingDecision(logits=logits, noise=noise, experts=experts, weights=weights)
        return experts, weights


def expert_ranks(*, channels: int, num_experts: int, rank_type: RankType, rank: int) -> list[int]:
    """Each expert's rank: ``spread`` halves C for each smaller expert (C/8, C/4, C/2, C for four), ``constant``
    gives every expert ``rank``."""
    if rank_type == "spread":
        return [channels // 2 ** (num_experts - 1 - index) for index in range(num_experts)]
    if rank_type == "constant":
        return [rank] * num_experts
    raise ValueError(f"rank_type must be 'spread' or 'constant', got {rank_type!r}")


class ExpertAdapter(nn.Module):
    """The adapter branch of a decoder block: the router, the experts and a 1x1 projection of their output.

    Each image's output is the sum of its chosen experts' outputs, each scaled by its routing probability, computed
    on that image alone (``per_image``), in training as in evaluation. ``published`` routing in evaluation does what
    the published code does there: noisy logits, and for a batch of several images every image's chosen expert run
    on the whole batch and the outputs summed (see :class:`MoCEIR`).

    Args:
        channels: C of the adapter branch.
        frequency_channels: width of the frequency embedding.
        num_experts: E; expert ``e`` uses FFT patches of side ``2**(e+2)``.
        top_k: experts chosen per image.
        rank_type: how the experts' ranks grow (:func:`expert_ranks`).
        rank: every expert's rank for ``rank_type="constant"``.
        routing: ``per_image`` or ``published``.

    Shape:
        x (B, C, H, W), frequency (B, F), shared (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, frequency_channels: int, num_experts: int, top_k: int, rank_type: RankType,
                 rank: int, routing: RoutingMode) -> None:
        super().__init__()
        if routing not in ("per_image", "published"):
            raise ValueError(f"routing must be 'per_image' or 'published', got {routing!r}")
        self.routing = routing
        ranks = expert_ranks(channels=channels, num_experts=num_experts, rank_type=rank_type, rank=rank)
        self.experts = nn.ModuleList(
            ComplexityExpert(channels=channels, rank=expert_rank, patch_size=2 ** (index + 2))
            for index, expert_rank in enumerate(ranks)
        )
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        sizes = torch.tensor([sum(p.numel() for p in expert.parameters()) for expert in self.experts],
                             dtype=torch.float32)
        self.router = ExpertRouter(channels=channels, frequency_channels=frequency_channels, num_experts=num_experts,
                                   top_k=top_k, complexity=sizes / sizes.max())

    def forward(self, x: torch.Tensor, frequency: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        coupled = self.routing == "published" and not self.training
        experts, weights = self.router(x, frequency, noisy=self.training or coupled)
        out = self._coupled(x, shared, experts, weights) if coupled else self._per_image(x, shared, experts, weights)
        return self.project_out(out)

    def _per_image(self, x: torch.Tensor, shared: torch.Tensor, experts: torch.Tensor,
                   weights: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        for index, expert in enumerate(self.experts):
            images, slots = (experts == index).nonzero(as_tuple=True)
            if images.numel():  # an expert no image chose is not run: its weights get no gradient, as published
                result = expert(x[images], shared[images]) * weights[images, slots][:, None, None, None]
                out = out.index_add(0, images, result.to(out.dtype))
        return out

    def _coupled(self, x: torch.Tensor, shared: torch.Tensor, experts: torch.Tensor,
                 weights: torch.Tensor) -> torch.Tensor:
        batch, top_k = experts.shape
        if batch == 1:
            chosen = [(int(experts[0, slot]), weights[:, slot]) for slot in range(top_k)]
        elif top_k == 1:
            # The published code runs the choice of every image on the whole batch, a repeated choice once per image.
            chosen = [(int(expert), weights[:, 0]) for expert in experts[:, 0]]
        else:
            raise ValueError("published routing of a batch of several images needs top_k=1 (the published code "
                             f"fails otherwise); got a batch of {batch} with top_k={top_k}")
        outputs = [weight[:, None, None, None] * self.experts[index](x, shared) for index, weight in chosen]
        return torch.stack(outputs).sum(dim=0)


class ExpertCrossAttention(CrossAttention):
    """:class:`~pip_model.networks.layers.CrossAttention` with a 7x7 depthwise convolution on the keys and values.

    Shape:
        query (B, C, H, W), context (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, heads: int, bias: bool) -> None:
        super().__init__(channels=channels, heads=heads, bias=bias)
        self.kv_dwconv = _depthwise(channels * 2, 7, bias)


class MoCEBlock(nn.Module):
    """A decoder block: shared attention and routed experts on two projections of the input, joined by
    cross-attention, then the gated feed-forward.

    Args:
        channels: C.
        heads: attention heads.
        ffn_expansion: hidden-width factor of the feed-forward.
        bias: whether the attentions and the feed-forward carry biases (the two input projections always do).
        norm: layer-norm kind.
        frequency_channels, num_experts, top_k, rank_type, rank, routing: as :class:`ExpertAdapter`.

    Shape:
        x (B, C, H, W), frequency (B, F) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, heads: int, ffn_expansion: float, bias: bool, norm: LayerNormType,
                 frequency_channels: int, num_experts: int, top_k: int, rank_type: RankType, rank: int,
                 routing: RoutingMode) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels=channels, kind=norm)
        self.to_shared = nn.Conv2d(channels, channels, kernel_size=1, bias=True)
        self.to_adapter = nn.Conv2d(channels, channels, kernel_size=1, bias=True)
        self.shared = TransposedSelfAttention(channels=channels, heads=heads, bias=bias)
        self.adapter = ExpertAdapter(channels=channels, frequency_channels=frequency_channels,
                                     num_experts=num_experts, top_k=top_k, rank_type=rank_type, rank=rank,
                                     routing=routing)
        self.mixer = ExpertCrossAttention(channels=channels, heads=heads, bias=bias)
        self.norm2 = ChannelLayerNorm(channels=channels, kind=norm)
        self.ffn = GatedDconvFeedForward(channels=channels, expansion=ffn_expansion, bias=bias)

    def forward(self, x: torch.Tensor, frequency: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x)
        shared = self.shared(self.to_shared(normed))
        x = x + self.mixer(self.adapter(self.to_adapter(normed), frequency, shared), shared)
        return x + self.ffn(self.norm2(x))


class FrequencyEmbedding(nn.Module):
    """One vector per image from the latent: a depthwise high-pass, GELU, the spatial mean and an MLP.

    The depthwise 3x3 starts as the Laplacian (8 at the centre, -1 around) and is trained like any weight.

    Shape:
        (B, C, H, W) -> (B, C)
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.high_pass = _depthwise(channels, 3, bias=False)
        laplacian = torch.full((3, 3), -1.0)
        laplacian[1, 1] = 8.0
        with torch.no_grad():
            self.high_pass.weight.copy_(laplacian.expand_as(self.high_pass.weight))
        self.mlp = nn.Sequential(nn.Linear(channels, channels * 2), nn.GELU(), nn.Linear(channels * 2, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(F.gelu(self.high_pass(x)).mean(dim=(-2, -1)))


class DecoderLevel(nn.Module):
    """One decoder level: upsample, concatenate the skip, fuse with a 1x1 convolution, then the blocks.

    Args:
        channels: C of the level (its skip's).
        bias: whether the fusion convolution carries a bias.
        blocks: the level's :class:`MoCEBlock` s, of C channels.

    Shape:
        x (B, 2C, H/2, W/2), skip (B, C, H, W), frequency (B, F) -> (B, C, H, W)
    """

    def __init__(self, *, channels: int, bias: bool, blocks: Iterable[MoCEBlock]) -> None:
        super().__init__()
        self.upsample = Upsample(channels=channels * 2)
        self.fuse = nn.Conv2d(channels * 2, channels, kernel_size=1, bias=bias)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, frequency: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([self.upsample(x), skip], dim=1))
        for block in self.blocks:
            x = block(x, frequency)
        return x


class MoCEIR(SkipBackbone):
    """MoCE-IR, blind: ``model(images)``; a second argument is ignored.

    Routing. With ``routing="per_image"`` (the default) every image of a batch gets its own top-k experts, computed
    on that image alone, so a batch gives what its images give one by one. In evaluation the choice is
    deterministic (no logit noise); in training it is the published training routing: logit noise of std
    ``1 / num_experts``, the top-k of the noisy softmax, each chosen expert's output scaled by its probability.
    ``routing="published"`` reproduces the published evaluation, which adds the training noise in evaluation too
    (drawn from torch's global generator, one ``randn_like`` per router in router order, so ``torch.manual_seed``
    replays it) and, for a batch of several images, runs every image's chosen expert on the whole batch and sums
    them. We do not default to it because its output is random (an image restores differently from run to run)
    and couples the images of a batch (differently beside another image). Training is the same in both modes, and
    the same weights serve both.

    After each forward pass every router keeps its decision (:meth:`routers`, :attr:`ExpertRouter.last`,
    :meth:`chosen_experts`): the logits, the noise and the chosen experts with their probabilities, all that the
    published balance loss (importance and load terms, optionally weighted by ``complexity``) reads.

    The parameter names are ours; the published ones map onto them by renames alone, with the same shapes. The
    output convolution starts at zero, as in every restorer of the project (the published one keeps PyTorch's
    initialisation); a loaded checkpoint is unaffected.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images (the input is added back).
        dim: channels of level 1; level k has ``dim * 2**(k-1)``.
        num_blocks: encoder blocks per level, the last entry the latent's; its length is the number of levels.
        num_dec_blocks: decoder blocks per level, level 1 first (one fewer entry than ``num_blocks``).
        heads: attention heads per level.
        num_refinement_blocks: blocks after the decoder, at full resolution.
        ffn_expansion: hidden-width factor of the feed-forward networks.
        bias: whether the decoder's attentions, feed-forwards and fusion convolutions, and the output, carry biases.
        encoder_bias: the same for the encoder, latent and refinement blocks.
        norm: layer-norm kind.
        num_experts: experts per decoder block.
        top_k: experts chosen per image.
        rank_type: ``spread`` (expert ``e`` at rank ``C / 2**(E-1-e)``) or ``constant`` (all at ``rank``).
        rank: the experts' rank for ``constant``.
        routing: ``per_image`` or ``published``.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W)
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: tuple[int, ...] = (4, 6, 6, 8),
        num_dec_blocks: tuple[int, ...] = (2, 4, 4),
        heads: tuple[int, ...] = (1, 2, 4, 8),
        num_refinement_blocks: int = 4,
        ffn_expansion: float = 2.0,
        bias: bool = False,
        encoder_bias: bool = True,
        norm: LayerNormType = "with_bias",
        num_experts: int = 4,
        top_k: int = 1,
        rank_type: RankType = "spread",
        rank: int = 2,
        routing: RoutingMode = "per_image",
    ) -> None:
        levels = len(num_blocks)
        if levels < 2 or len(heads) != levels or len(num_dec_blocks) != levels - 1:
            raise ValueError(f"num_blocks (one per level, the latent last), heads (one per level) and num_dec_blocks "
                             f"(one fewer) disagree: {num_blocks}, {heads}, {num_dec_blocks}")
        widths = [dim * 2**level for level in range(levels)]
        super().__init__(size_multiple=2 ** (levels - 1), skip_channels=tuple(widths[:-1]), pip=None)

        def stage(depth: int, level: int) -> nn.Sequential:
            return transformer_stage(depth=depth, channels=widths[level], heads=heads[level],
                                     ffn_expansion=ffn_expansion, bias=encoder_bias, norm=norm)

        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=False)
        self.encoder = nn.ModuleList(stage(num_blocks[level], level) for level in range(levels - 1))
        self.downsample = nn.ModuleList(Downsample(channels=widths[level]) for level in range(levels - 1))
        self.latent = stage(num_blocks[-1], levels - 1)
        self.frequency = FrequencyEmbedding(channels=widths[-1])

        def block(level: int) -> MoCEBlock:
            return MoCEBlock(channels=widths[level], heads=heads[level], ffn_expansion=ffn_expansion, bias=bias,
                             norm=norm, frequency_channels=widths[-1], num_experts=num_experts, top_k=top_k,
                             rank_type=rank_type, rank=rank, routing=routing)

        # Deepest level first, the order the decoder runs in (and the routers are numbered in).
        self.decoder = nn.ModuleList(
            DecoderLevel(channels=widths[level], bias=bias,
                         blocks=(block(level) for _ in range(num_dec_blocks[level])))
            for level in reversed(range(levels - 1))
        )
        self.refinement = stage(num_refinement_blocks, 0)
        self.output = nn.Conv2d(dim, out_channels, kernel_size=3, padding=1, bias=bias)
        # A zero residual at the start: a new network returns its input, as every restorer of the project.
        nn.init.zeros_(self.output.weight)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, skips = self.patch_embed(images), []
        for stage, downsample in zip(self.encoder, self.downsample):
            x = stage(x)
            skips.append(x)
            x = downsample(x)
        return self.latent(x), skips

    def decode(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        frequency = self.frequency(bottleneck)
        x = bottleneck
        for level, skip in zip(self.decoder, reversed(skips)):
            x = level(x, skip, frequency)
        return self.output(self.refinement(x)) + images

    def routers(self) -> list[ExpertRouter]:
        """Every router, in the order the decoder runs them (deepest level first)."""
        return [block.adapter.router for level in self.decoder for block in level.blocks]

    def chosen_experts(self) -> torch.Tensor:
        """The experts each router chose in the last forward pass, best first.

        Shape:
            (B, routers, top_k), long
        """
        decisions = [router.last for router in self.routers()]
        if any(decision is None for decision in decisions):
            raise RuntimeError("no forward pass has been run yet")
        return torch.stack([decision.experts for decision in decisions], dim=1)

    def idle_expert_parameters(self) -> list[str]:
        """Names of the parameters of the experts no image was routed to in the last forward pass: they take no
        part in it and get no gradient (an all-parameters-used check, or DDP, must allow for them)."""
        names = []
        for prefix, module in self.named_modules():
            if isinstance(module, ExpertAdapter):
                if module.router.last is None:
                    raise RuntimeError("no forward pass has been run yet")
                used = set(module.router.last.experts.flatten().tolist())
                names += [f"{prefix}.experts.{index}.{name}" for index, expert in enumerate(module.experts)
                          if index not in used for name, _ in expert.named_parameters()]
        return names
