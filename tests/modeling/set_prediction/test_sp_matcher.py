"""Hungarian matcher optimality (vs brute force) and temporally consistent matching semantics."""

import itertools

import pytest
import torch

from wsovvis.modeling.set_prediction import (
    CostTerm,
    HungarianMatcher,
    TemporallyConsistentMatcher,
    build_mask_matcher,
)


def _brute_force(cost):
    q, g = cost.shape
    best = None
    for perm in itertools.permutations(range(q), g):
        total = sum(cost[perm[j], j].item() for j in range(g))
        best = total if best is None or total < best else best
    return best


@pytest.mark.parametrize("seed", range(6))
def test_hungarian_is_optimal_and_weights_compose(seed):
    torch.manual_seed(seed)
    q, g = 5, 3
    logits = torch.randn(1, q, 4)
    masks = torch.randn(1, q, 6, 6)
    tgt = {"labels": torch.randint(0, 3, (g,)), "masks": (torch.rand(g, 6, 6) > 0.5).float()}
    matcher = build_mask_matcher(2.0, 5.0, 5.0, num_points=0)
    src, tgt_idx = matcher({"pred_logits": logits, "pred_masks": masks}, [tgt])[0]
    cost = matcher.cost_matrix({"pred_logits": logits[0], "pred_masks": masks[0]}, tgt)
    assert sorted(tgt_idx.tolist()) == list(range(g)) and len(set(src.tolist())) == g
    assert cost[src, tgt_idx].sum().item() == pytest.approx(_brute_force(cost), rel=1e-6)
    # the cost is the weighted sum of its terms
    one = {
        name: build_mask_matcher(*w, num_points=0).cost_matrix(
            {"pred_logits": logits[0], "pred_masks": masks[0]}, tgt
        )
        for name, w in {"c": (1, 0, 0), "m": (0, 1, 0), "d": (0, 0, 1)}.items()
    }
    torch.testing.assert_close(cost, 2 * one["c"] + 5 * one["m"] + 5 * one["d"])


def test_point_sampled_cost_is_close_to_dense_cost():
    torch.manual_seed(0)
    up = lambda x: x.repeat_interleave(8, -1).repeat_interleave(8, -2)  # noqa: E731
    masks = up(torch.randn(1, 4, 4, 4))  # piecewise constant: sampling ~ pixel values
    tgt = {
        "labels": torch.zeros(2, dtype=torch.long),
        "masks": up((torch.rand(2, 4, 4) > 0.5).float()),
    }
    pred = {"pred_logits": torch.zeros(4, 2), "pred_masks": masks[0]}
    dense = build_mask_matcher(0, 1, 1, num_points=0).cost_matrix(pred, tgt)
    sampled = build_mask_matcher(0, 1, 1, num_points=20000).cost_matrix(pred, tgt)
    torch.testing.assert_close(sampled, dense, atol=0, rtol=0.1)


def test_empty_targets_give_empty_indices():
    matcher = build_mask_matcher(1, 1, 1, num_points=8)
    out = {"pred_logits": torch.randn(1, 3, 2), "pred_masks": torch.randn(1, 3, 4, 4)}
    src, tgt = matcher(
        out, [{"labels": torch.zeros(0, dtype=torch.long), "masks": torch.zeros(0, 4, 4)}]
    )[0]
    assert src.numel() == 0 and tgt.numel() == 0


def _clip_targets(ids_per_frame):
    """Per-frame targets for one clip; ids_per_frame[t][j] = id or -1."""
    g = len(ids_per_frame[0])
    return [
        {
            "labels": torch.zeros(g, dtype=torch.long),
            "ids": torch.tensor(ids)[:, None],
            "frame": t,
            "cols": torch.arange(g),
        }
        for t, ids in enumerate(ids_per_frame)
    ]


def _consistent(tables, ids_per_frame):
    class _Select(HungarianMatcher):
        def cost_matrix(self, pred, tgt):  # map the restricted targets back to table columns
            return tables[int(tgt["frame"])][:, tgt["cols"]]

    matcher = TemporallyConsistentMatcher(
        _Select([CostTerm("dummy", 1.0, None)]), num_frames=len(tables)
    )
    q = tables[0].shape[0]
    outputs = {"pred_logits": torch.zeros(len(tables), q, 2)}
    return matcher(outputs, _clip_targets(ids_per_frame))


def test_consistent_matching_uses_first_appearance_and_blocks_queries():
    # 3 queries, 2 tracks; track 0 visible from frame 0, track 1 from frame 1.
    t0 = torch.tensor([[0.0, 0.0], [5.0, 9.0], [5.0, 9.0]])
    # on frame 1 track 1 is cheapest with query 0, but query 0 is taken -> next best is query 2
    t1 = torch.tensor([[9.0, 0.0], [9.0, 3.0], [0.0, 1.0]])
    t2 = torch.tensor([[9.0, 9.0], [0.0, 0.0], [9.0, 9.0]])  # later frames never re-match
    indices = _consistent([t0, t1, t2], [[1, -1], [1, 2], [-1, 2]])
    assert len(indices) == 3
    for src, tgt in indices:
        assert dict(zip(src.tolist(), tgt.tolist())) == {0: 0, 2: 1}


def test_consistent_matching_joint_assignment_and_invisible_tracks():
    # two tracks first appear on frame 0: jointly optimal assignment, not greedy
    t0 = torch.tensor([[1.0, 2.0, 0.0], [1.5, 10.0, 0.0], [9.0, 9.0, 0.0]])
    indices = _consistent([t0, t0], [[1, 2, -1], [1, 2, -1]])  # track 2 never visible
    src, tgt = indices[0]
    assert dict(zip(src.tolist(), tgt.tolist())) == {1: 0, 0: 1}
    assert indices[1][0].tolist() == src.tolist()


def test_consistent_matching_splits_batch_into_clips():
    t = torch.tensor([[0.0], [1.0]])
    u = torch.tensor([[1.0], [0.0]])

    class _Sel(HungarianMatcher):
        def cost_matrix(self, pred, tgt):
            return pred["table"][:, tgt["cols"]]

    matcher = TemporallyConsistentMatcher(_Sel([CostTerm("d", 1.0, None)]), num_frames=2)
    outputs = {"table": torch.stack([t, t, u, u])}
    tg = {
        "labels": torch.zeros(1, dtype=torch.long),
        "ids": torch.tensor([[3]]),
        "cols": torch.arange(1),
    }
    idx = matcher(outputs, [tg] * 4)
    assert [i[0].tolist() for i in idx] == [[0], [0], [1], [1]]
    with pytest.raises(ValueError):
        matcher(outputs, [tg] * 3)


@pytest.mark.parametrize("seed", range(5))
def test_consistent_matching_is_stagewise_optimal(seed):
    """Each first-appearance frame's assignment is optimal among the still-free queries."""
    g = torch.Generator().manual_seed(seed)
    num_q, num_t, num_g = 5, 3, 4
    tables = [torch.rand(num_q, num_g, generator=g) for _ in range(num_t)]
    first = torch.randint(0, num_t, (num_g,), generator=g).tolist()
    ids = [[j + 1 if t >= first[j] else -1 for j in range(num_g)] for t in range(num_t)]
    src, tgt = _consistent(tables, ids)[0]
    pairs = dict(zip(tgt.tolist(), src.tolist()))
    assert sorted(pairs) == list(range(num_g)) and len(set(pairs.values())) == num_g
    used = set()
    for t in sorted(set(first)):
        new = [j for j in range(num_g) if first[j] == t]
        free = [q for q in range(num_q) if q not in used]
        best = min(
            sum(tables[t][q, j].item() for q, j in zip(perm, new))
            for perm in itertools.permutations(free, len(new))
        )
        got = sum(tables[t][pairs[j], j].item() for j in new)
        assert got == pytest.approx(best, abs=1e-6)
        used |= {pairs[j] for j in new}
