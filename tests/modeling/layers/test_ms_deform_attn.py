"""MSDeformAttn (grid_sample core) against an explicit per-point bilinear reference."""
import math

import torch

from wsovvis.modeling.layers import MSDeformAttn, PositionEmbeddingSine, ms_deform_attn_core


def _bilinear(img, x, y):
    """Sample img [D, H, W] at pixel coords (x, y) with zero padding (align_corners=False)."""
    d, h, w = img.shape
    x0, y0 = math.floor(x), math.floor(y)
    out = torch.zeros(d, dtype=img.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def _naive(value, shapes, ref, offsets, logits, padding_mask):
    """Loops over batch, query, head, level, point; ref is 2-d points or 4-d boxes."""
    n, s, m, d = value.shape
    _, lq, _, num_levels, num_points, _ = offsets.shape
    value = value.masked_fill(padding_mask[..., None, None], 0.0)
    starts = [0]
    for h, w in shapes[:-1]:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(n, lq, m * d, dtype=value.dtype)
    for b in range(n):
        for q in range(lq):
            for head in range(m):
                weights = torch.softmax(logits[b, q, head].flatten(), 0)
                weights = weights.view(num_levels, num_points)
                acc = torch.zeros(d, dtype=value.dtype)
                for lvl, (h, w) in enumerate(shapes):
                    img = value[b, starts[lvl]:starts[lvl] + h * w, head].t().reshape(d, h, w)
                    for p in range(num_points):
                        r = ref[b, q, lvl]
                        off = offsets[b, q, head, lvl, p]
                        if r.numel() == 2:
                            lx, ly = r[0] + off[0] / w, r[1] + off[1] / h
                        else:
                            lx = r[0] + off[0] / num_points * r[2] * 0.5
                            ly = r[1] + off[1] / num_points * r[3] * 0.5
                        px, py = float(lx) * w - 0.5, float(ly) * h - 0.5
                        acc += weights[lvl, p] * _bilinear(img, px, py)
                out[b, q, head * d:(head + 1) * d] = acc
    return out


def _module_vs_naive(ref_dim):
    torch.manual_seed(ref_dim)
    shapes = [(5, 7), (3, 4), (2, 2)]
    c, m, num_points, n, lq = 8, 2, 3, 2, 4
    attn = MSDeformAttn(d_model=c, n_levels=len(shapes), n_heads=m, n_points=num_points).double()
    for p in attn.parameters():  # non-trivial offsets / weights
        torch.nn.init.normal_(p, std=0.7)
    s = sum(h * w for h, w in shapes)
    query = torch.randn(n, lq, c, dtype=torch.float64)
    feats = torch.randn(n, s, c, dtype=torch.float64)
    ref = torch.rand(n, lq, len(shapes), ref_dim, dtype=torch.float64)
    if ref_dim == 4:
        ref[..., 2:] = ref[..., 2:] * 0.5 + 0.1
    pad = torch.zeros(n, s, dtype=torch.bool)
    pad[1, :6] = True
    pad[0, -3:] = True
    shapes_t = torch.tensor(shapes)
    got = attn.attend(query, ref, feats, shapes_t, pad)
    with torch.no_grad():
        value = attn.value_proj(feats).view(n, s, m, c // m)
        offsets = attn.sampling_offsets(query).view(n, lq, m, len(shapes), num_points, 2)
        logits = attn.attention_weights(query).view(n, lq, m, len(shapes), num_points)
        expected = _naive(value, shapes, ref, offsets, logits, pad)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-8)
    out = attn.float()(query.float(), ref.float(), feats.float(), shapes_t, None, pad)
    assert out.shape == (n, lq, c) and out.dtype == torch.float32


def test_matches_naive_reference_points():
    _module_vs_naive(2)


def test_matches_naive_reference_boxes():
    _module_vs_naive(4)


def test_core_gradients_flow_and_autocast_keeps_fp32():
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=2)
    shapes = torch.tensor([(4, 4), (2, 2)])
    feats = torch.randn(1, 20, 16, requires_grad=True)
    query = torch.randn(1, 3, 16)
    ref = torch.rand(1, 3, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(query, ref, feats, shapes)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_core_is_exact_at_pixel_centres():
    value = torch.arange(12.0).view(1, 12, 1, 1)  # one level 3x4
    loc = torch.tensor([[(1.5 / 4, 0.5 / 3), (3.5 / 4, 2.5 / 3)]]).view(1, 2, 1, 1, 1, 2)
    w = torch.ones(1, 2, 1, 1, 1)
    out = ms_deform_attn_core(value, [(3, 4)], loc, w)
    torch.testing.assert_close(out.flatten(), torch.tensor([1.0, 11.0]))


def test_position_embedding_shape():
    mask = torch.zeros(2, 5, 7, dtype=torch.bool)
    mask[1, :, 5:] = True
    pos = PositionEmbeddingSine(8, normalize=True)(mask)
    assert pos.shape == (2, 16, 5, 7) and torch.isfinite(pos).all()
