"""SeqFormer's deformable video transformer.

Encoder: Deformable-DETR encoder applied to every frame independently (frames are folded into the
batch). Decoder: each instance query owns one box query per frame; box queries attend to their own
frame with multi-scale deformable attention around their own (iteratively refined) reference box,
and the instance query receives a softmax-over-frames weighted sum of the per-frame attention
outputs (SeqFormer, Wu et al., ECCV 2022).
"""
import copy
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import MSDeformAttn

__all__ = [
    "MLP", "inverse_sigmoid", "DeformableEncoder", "SeqFormerDecoder", "SeqFormerTransformer",
]


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Numerically safe logit of values in [0, 1]."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class MLP(nn.Module):
    """Simple multi-layer perceptron with ReLU between layers."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class _FFN(nn.Module):
    """Post-norm feed-forward block: ``norm(x + dropout(W2 dropout(relu(W1 x))))``."""

    def __init__(self, d_model, d_ffn, dropout):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d_model, d_ffn), nn.Linear(d_ffn, d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x):
        return self.norm(x + self.dropout2(self.linear2(self.dropout1(F.relu(self.linear1(x))))))


class DeformableEncoderLayer(nn.Module):
    """Deformable self-attention over all levels of one frame + FFN (post-norm)."""

    def __init__(self, d_model, d_ffn, dropout, n_levels, n_heads, n_points):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.ffn = _FFN(d_model, d_ffn, dropout)

    def forward(self, src, pos, reference_points, spatial_shapes, padding_mask):
        out = self.self_attn(src + pos, reference_points, src, spatial_shapes, None, padding_mask)
        src = self.norm(src + self.dropout(out.to(src.dtype)))
        return self.ffn(src)


class DeformableEncoder(nn.Module):
    """Stack of :class:`DeformableEncoderLayer` with per-pixel reference points."""

    def __init__(self, layer: nn.Module, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    @staticmethod
    def reference_points(spatial_shapes, valid_ratios):
        """Pixel centres of every level normalised by the valid extent -> ``[N, S, L, 2]``."""
        refs = []
        for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
            ys, xs = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, device=valid_ratios.device),
                torch.linspace(0.5, w - 0.5, w, device=valid_ratios.device),
                indexing="ij",
            )
            ys = ys.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
            xs = xs.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
            refs.append(torch.stack((xs, ys), -1))
        refs = torch.cat(refs, 1)
        return refs[:, :, None] * valid_ratios[:, None]

    def forward(self, src, spatial_shapes, valid_ratios, pos, padding_mask):
        ref = self.reference_points(spatial_shapes, valid_ratios)
        for layer in self.layers:
            src = layer(src, pos, ref, spatial_shapes, padding_mask)
        return src


class SeqFormerDecoderLayer(nn.Module):
    """One SeqFormer decoder layer (instance query + per-frame box queries)."""

    def __init__(self, d_model, d_ffn, dropout, n_levels, n_heads, n_points):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.output_proj_box = nn.Linear(d_model, d_model)  # box branch of the cross-attention
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.self_attn_box = nn.MultiheadAttention(d_model, n_heads, dropout=dropout,
                                                   batch_first=True)
        self.dropout_sa, self.norm_sa = nn.Dropout(dropout), nn.LayerNorm(d_model)
        self.dropout_sa_box, self.norm_sa_box = nn.Dropout(dropout), nn.LayerNorm(d_model)
        self.dropout_ca, self.norm_ca = nn.Dropout(dropout), nn.LayerNorm(d_model)
        self.dropout_ca_box, self.norm_ca_box = nn.Dropout(dropout), nn.LayerNorm(d_model)
        self.ffn = _FFN(d_model, d_ffn, dropout)
        self.ffn_box = _FFN(d_model, d_ffn, dropout)
        self.time_attention_weights = nn.Linear(d_model, 1)

    def forward(self, tgt, tgt_box, query_pos, reference_points, memory, spatial_shapes,
                padding_mask):
        """
        Args:
            tgt: ``[B, Q, C]`` instance queries.
            tgt_box: ``[B, T, Q, C]`` box queries.
            query_pos: ``[B, Q, C]`` query position embedding (shared by all frames).
            reference_points: ``[B, T, Q, L, 2|4]`` normalised to each padded level map.
            memory: ``[B*T, S, C]`` encoder output.
            spatial_shapes: ``[L, 2]``.
            padding_mask: ``[B*T, S]`` or None.

        Returns:
            Updated ``(tgt, tgt_box)``.
        """
        b, t, q, c = tgt_box.shape
        x = tgt + query_pos
        tgt = self.norm_sa(tgt + self.dropout_sa(self.self_attn(x, x, tgt, need_weights=False)[0]))

        box = tgt_box.reshape(b * t, q, c)
        pos = query_pos.repeat_interleave(t, dim=0)
        x = box + pos
        box = self.norm_sa_box(box + self.dropout_sa_box(
            self.self_attn_box(x, x, box, need_weights=False)[0]))

        # per-frame deformable sampling driven by the box queries (frames folded into the batch)
        sampled = self.cross_attn.attend(box + pos, reference_points.flatten(0, 1), memory,
                                         spatial_shapes, padding_mask)
        with torch.autocast(device_type=sampled.device.type, enabled=False):
            out_inst = self.cross_attn.output_proj(sampled).to(tgt.dtype)
            out_box = self.output_proj_box(sampled).to(tgt.dtype)
        box = self.ffn_box(self.norm_ca_box(box + self.dropout_ca_box(out_box)))
        tgt_box = box.view(b, t, q, c)

        # temporal aggregation: softmax over frames of a per-frame score of the box query
        weights = self.time_attention_weights(tgt_box).softmax(dim=1)
        agg = (out_inst.view(b, t, q, c) * weights).sum(1)
        tgt = self.ffn(self.norm_ca(tgt + self.dropout_ca(agg)))
        return tgt, tgt_box


class SeqFormerDecoder(nn.Module):
    """Decoder with iterative per-frame box refinement (``bbox_embed`` cloned per layer)."""

    def __init__(self, layer: nn.Module, num_layers: int, d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        bbox_embed = MLP(d_model, d_model, 4, 3)
        nn.init.constant_(bbox_embed.layers[-1].weight, 0.0)
        nn.init.constant_(bbox_embed.layers[-1].bias, 0.0)
        self.bbox_embed = nn.ModuleList(copy.deepcopy(bbox_embed) for _ in range(num_layers))
        nn.init.constant_(self.bbox_embed[0].layers[-1].bias[2:], -2.0)

    def forward(self, tgt, query_pos, reference_points, memory, spatial_shapes, valid_ratios,
                padding_mask) -> Dict[str, List[torch.Tensor]]:
        """
        Args:
            tgt: ``[B, Q, C]`` initial instance queries (box queries start as per-frame copies).
            query_pos: ``[B, Q, C]``.
            reference_points: ``[B, T, Q, 2]`` initial reference points in [0, 1] of the valid area.
            memory: ``[B*T, S, C]``.
            spatial_shapes: ``[L, 2]``.
            valid_ratios: ``[B, T, L, 2]`` valid (unpadded) fraction of every level map.
            padding_mask: ``[B*T, S]`` or None.

        Returns:
            dict with per-layer lists: ``hs`` ``[B, Q, C]``, ``hs_box`` ``[B, T, Q, C]``,
            ``boxes`` ``[B, T, Q, 4]`` (sigmoid, with gradient) and ``references``
            ``[B, T, Q, 2|4]`` (the detached reference each layer attended around).
        """
        b, t = reference_points.shape[:2]
        tgt_box = tgt[:, None].expand(-1, t, -1, -1).contiguous()
        out = {"hs": [], "hs_box": [], "boxes": [], "references": []}
        for lid, layer in enumerate(self.layers):
            ratios = valid_ratios if reference_points.shape[-1] == 2 else torch.cat(
                [valid_ratios, valid_ratios], -1)
            ref_input = reference_points[:, :, :, None] * ratios[:, :, None]
            tgt, tgt_box = layer(tgt, tgt_box, query_pos, ref_input, memory, spatial_shapes,
                                 padding_mask)
            delta = self.bbox_embed[lid](tgt_box)
            if reference_points.shape[-1] == 4:
                boxes = (delta + inverse_sigmoid(reference_points)).sigmoid()
            else:
                boxes = torch.cat([delta[..., :2] + inverse_sigmoid(reference_points),
                                   delta[..., 2:]], -1).sigmoid()
            out["hs"].append(tgt)
            out["hs_box"].append(tgt_box)
            out["boxes"].append(boxes)
            out["references"].append(reference_points)
            reference_points = boxes.detach()
        return out


class SeqFormerTransformer(nn.Module):
    """Per-frame deformable encoder + SeqFormer decoder.

    Args:
        d_model: width. nhead: heads. num_encoder_layers / num_decoder_layers: depths.
        dim_feedforward: FFN width. dropout: dropout. num_feature_levels: levels L.
        dec_n_points / enc_n_points: sampling points per head and level.
    """

    def __init__(self, d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=1024, dropout=0.1, num_feature_levels=4, dec_n_points=4,
                 enc_n_points=4):
        super().__init__()
        self.d_model, self.nhead = d_model, nhead
        self.encoder = DeformableEncoder(
            DeformableEncoderLayer(d_model, dim_feedforward, dropout, num_feature_levels, nhead,
                                   enc_n_points), num_encoder_layers)
        self.decoder = SeqFormerDecoder(
            SeqFormerDecoderLayer(d_model, dim_feedforward, dropout, num_feature_levels, nhead,
                                  dec_n_points), num_decoder_layers, d_model)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.reference_points = nn.Linear(d_model, 2)
        self._reset_parameters()

    def _reset_parameters(self):
        for name, p in self.named_parameters():
            if p.dim() > 1 and not name.startswith("decoder.bbox_embed"):
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
        nn.init.constant_(self.reference_points.bias, 0.0)
        nn.init.normal_(self.level_embed)

    @staticmethod
    def valid_ratio(mask: torch.Tensor) -> torch.Tensor:
        """``[N, H, W]`` padding mask -> ``[N, 2]`` valid (w, h) fraction."""
        _, h, w = mask.shape
        valid_h = (~mask[:, :, 0]).sum(1).float() / h
        valid_w = (~mask[:, 0, :]).sum(1).float() / w
        return torch.stack([valid_w, valid_h], -1)

    def encode(self, srcs: List[torch.Tensor], masks: List[torch.Tensor], pos: List[torch.Tensor]):
        """Encode frames independently.

        Args:
            srcs / pos: per level ``[N, C, H_l, W_l]`` (N = frames of all videos).
            masks: per level ``[N, H_l, W_l]`` bool padding masks.

        Returns:
            ``(memory [N, S, C], spatial_shapes [L, 2], valid_ratios [N, L, 2], mask_flat [N, S])``
        """
        shapes = torch.as_tensor([s.shape[-2:] for s in srcs], dtype=torch.long,
                                 device=srcs[0].device)
        src_flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        mask_flat = torch.cat([m.flatten(1) for m in masks], 1)
        pos_flat = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1)
                              for lvl, p in enumerate(pos)], 1)
        valid_ratios = torch.stack([self.valid_ratio(m) for m in masks], 1)
        memory = self.encoder(src_flat, shapes, valid_ratios, pos_flat, mask_flat)
        return memory, shapes, valid_ratios, mask_flat

    def decode(self, memory, spatial_shapes, valid_ratios, mask_flat, query_embed: torch.Tensor,
               batch_size: int):
        """Decode ``batch_size`` videos of ``T = N / batch_size`` frames each.

        Args:
            memory: ``[B*T, S, C]``; valid_ratios: ``[B*T, L, 2]``; mask_flat: ``[B*T, S]``.
            query_embed: ``[Q, 2C]`` (position half, content half).

        Returns:
            the dict of :meth:`SeqFormerDecoder.forward` (``references[0]`` is the initial
            reference predicted from the query position embedding).
        """
        t = memory.shape[0] // batch_size
        query_pos, tgt = torch.split(query_embed, self.d_model, dim=1)
        query_pos = query_pos.unsqueeze(0).expand(batch_size, -1, -1)
        tgt = tgt.unsqueeze(0).expand(batch_size, -1, -1)
        ref = self.reference_points(query_pos).sigmoid()
        ref = ref[:, None].expand(-1, t, -1, -1)
        out = self.decoder(tgt, query_pos, ref, memory, spatial_shapes,
                           valid_ratios.view(batch_size, t, *valid_ratios.shape[1:]), mask_flat)
        return out
