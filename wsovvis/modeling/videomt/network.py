"""The VidEoMT network: a plain ViT whose last blocks also process object queries, with queries
propagated from frame to frame (Norouzi et al., "VidEoMT", CVPR 2026; built on EoMT).

Token order in the query blocks is ``[queries, CLS, registers, patches]``; queries carry no
positional embedding (DINOv2: none added; DINOv3: RoPE rotates the patch tokens only) and
attention is never masked. Frame 0 starts from the learned queries
``q.weight``; frame t >= 1 from ``query_updater(Q_out[t-1]) + q.weight`` where ``Q_out`` are the
un-normalised last-block query tokens. Gradients flow through the propagation.

Attribute names follow the official checkpoints (``encoder.backbone``, ``q``, ``query_updater``,
``class_head``, ``mask_head.{0,2,4}``, ``upscale.{i}``, ``attn_mask_probs``).
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .scale_block import ScaleBlock
from .vit import ViTEncoder

__all__ = ["VidEoMTNetwork"]


class VidEoMTNetwork(nn.Module):
    """ViT encoder-only video segmenter with query propagation.

    Args:
        encoder: :class:`~wsovvis.modeling.videomt.vit.ViTEncoder`.
        segmenter_blocks: indices of the last ViT blocks, contiguous and ending at the last block,
            that process the queries (e.g. ``[9, 10, 11]`` for ViT-S/B, ``[20..23]`` for ViT-L).
        num_queries: number of object queries Q.
        num_classes: foreground classes K (class head has K + 1 outputs, last = no object).
        norm_queries: apply the final LayerNorm to the queries before propagating them and to the
            tokens used for auxiliary predictions (upstream VPS/VSS option; False for VIS).
    """

    def __init__(
        self,
        encoder: ViTEncoder,
        segmenter_blocks: Sequence[int],
        num_queries: int,
        num_classes: int,
        norm_queries: bool = False,
    ):
        super().__init__()
        depth = len(encoder.backbone.blocks)
        blocks = list(segmenter_blocks)
        if not blocks or blocks != list(range(blocks[0], depth)):
            raise ValueError(
                f"SEGMENTER_BLOCKS must be the contiguous last blocks of the {depth}-block ViT, "
                f"got {blocks}"
            )
        dim = encoder.embed_dim
        self.encoder = encoder
        encoder.add_query_prefix(encoder.backbone.blocks[blocks[0] :], num_queries)
        self.first_query_block = blocks[0]
        self.num_blocks = len(blocks)
        self.num_queries = num_queries
        self.num_classes = num_classes
        self.norm_queries = norm_queries
        self.q = nn.Embedding(num_queries, dim)
        self.query_updater = nn.Linear(dim, dim)
        self.class_head = nn.Linear(dim, num_classes + 1)
        self.mask_head = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim)
        )
        patch = max(encoder.backbone.patch_embed.patch_size)
        num_upscale = max(1, int(math.log2(patch)) - 2)
        self.upscale = nn.Sequential(*[ScaleBlock(dim) for _ in range(num_upscale)])
        self.mask_stride = patch // (2**num_upscale)
        # unused by VidEoMT (EoMT mask-annealing leftover), kept so official checkpoints load
        self.register_buffer("attn_mask_probs", torch.ones(self.num_blocks))

    @property
    def final_norm(self) -> nn.Module:
        """The ViT's final LayerNorm, applied before the heads."""
        return self.encoder.backbone.norm

    def predict(self, x: torch.Tensor, grid: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Class and mask logits from a token sequence ``[queries, prefix, patches]``.

        Args:
            x: (N, Q + prefix + H_g * W_g, C) tokens.
            grid: (H_g, W_g).

        Returns:
            ``(mask_logits (N, Q, 4 H_g, 4 W_g) for patch 16, class_logits (N, Q, K + 1))``.
        """
        q = x[:, : self.num_queries]
        class_logits = self.class_head(q)
        feats = x[:, self.num_queries + self.encoder.num_prefix_tokens :]
        feats = feats.transpose(1, 2).reshape(x.shape[0], -1, grid[0], grid[1])
        mask_logits = torch.einsum("nqc,nchw->nqhw", self.mask_head(q), self.upscale(feats))
        return mask_logits, class_logits

    def initial_queries(self, batch_size: int) -> torch.Tensor:
        """Frame-0 queries.

        Args:
            batch_size: B.

        Returns:
            ``q.weight`` broadcast to (B, Q, C) (a view).
        """
        return self.q.weight[None].expand(batch_size, -1, -1)

    def propagate(self, last_block_tokens: torch.Tensor) -> torch.Tensor:
        """Next frame's queries: ``query_updater(q) + q.weight`` (q normed if ``norm_queries``).

        Args:
            last_block_tokens: (B, Q + prefix + patches, C) tokens after the last block.

        Returns:
            (B, Q, C) queries for the next frame.
        """
        q = last_block_tokens[:, : self.num_queries]
        if self.norm_queries:
            q = self.final_norm(q)
        return self.query_updater(q) + self.q.weight[None]

    def forward(
        self,
        images: torch.Tensor,
        num_frames: int,
        memory: Optional[torch.Tensor] = None,
        num_aux: int = 0,
    ) -> Dict[str, object]:
        """Run ``B`` clips of ``T`` frames.

        Args:
            images: (B * T, 3, H, W) normalised RGB, clip-major (frame t of clip b at
                ``b * T + t``), H and W multiples of the patch size.
            num_frames: T.
            memory: (B, Q, C) queries propagated from the previous frame (streaming), or None to
                start a new clip.
            num_aux: number of auxiliary predictions to return, made before segmenter blocks
                ``0 .. num_aux - 1`` (training only; at most ``num_blocks``).

        Returns:
            dict with ``pred_logits`` (B, T, Q, K + 1), ``pred_masks`` (B, T, Q, h, w) at 1/4
            input resolution, ``memory`` (B, Q, C) for the next frame, and ``aux_outputs``
            (list of ``num_aux`` dicts with the same two keys, predicted without the final norm
            unless ``norm_queries``).
        """
        if images.shape[0] % num_frames:
            raise ValueError(
                f"{images.shape[0]} images are not a whole number of {num_frames}-frame clips"
            )
        if num_aux > self.num_blocks:
            raise ValueError(f"num_aux={num_aux} > {self.num_blocks} segmenter blocks")
        blocks = self.encoder.backbone.blocks
        x, h_g, w_g = self.encoder.embed(images)
        rope = self.encoder.rope(h_g, w_g)
        kw = {} if rope is None else {"rope": rope}  # DINOv3: RoPE on the patch tokens
        for blk in blocks[: self.first_query_block]:
            x = blk(x, **kw)
        bsz = x.shape[0] // num_frames
        x = x.reshape(bsz, num_frames, *x.shape[1:])
        queries = self.initial_queries(bsz) if memory is None else memory
        outs: List[torch.Tensor] = []
        aux: List[List[Tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(num_aux)]
        for t in range(num_frames):
            z = torch.cat([queries, x[:, t]], dim=1)
            for j, blk in enumerate(blocks[self.first_query_block :]):
                if j < num_aux:
                    aux[j].append(
                        self.predict(self.final_norm(z) if self.norm_queries else z, (h_g, w_g))
                    )
                z = blk(z, **kw)
            outs.append(z)
            queries = self.propagate(z)
        # stack clip-major: (B, T, N, C) -> (B * T, N, C)
        out = torch.stack(outs, dim=1).flatten(0, 1)
        mask_logits, class_logits = self.predict(self.final_norm(out), (h_g, w_g))
        return {
            "pred_logits": class_logits.reshape(bsz, num_frames, *class_logits.shape[1:]),
            "pred_masks": mask_logits.reshape(bsz, num_frames, *mask_logits.shape[1:]),
            "memory": queries,
            "aux_outputs": [
                {
                    "pred_logits": torch.stack([p[1] for p in preds], dim=1),
                    "pred_masks": torch.stack([p[0] for p in preds], dim=1),
                }
                for preds in aux
            ],
        }
