"""Slow, readable reference of the YTVIS mask-AP algorithm, written from the official
``ytvoseval.py`` algorithm (youtubevos/cocoapi; loops everywhere, one pair and one frame at a time).

It exists only to check the fast scorer in CI without the official code: same inputs, and the
precision/recall arrays and 12 stats must be identical.
"""

import numpy as np
import pycocotools.mask as mask_util

IOU_T = np.linspace(0.5, 0.95, 10)
REC_T = np.linspace(0.0, 1.0, 101)
MAXDET = [1, 10, 100]
AREAS = [[0, 1e10], [0, 128**2], [128**2, 256**2], [256**2, 1e10]]
AREA_LBL = ["all", "small", "medium", "large"]


def _to_rle(seg, h, w):
    if not seg:
        return None
    if isinstance(seg, list):
        return mask_util.merge(mask_util.frPyObjects(seg, h, w))
    if isinstance(seg["counts"], list):
        return mask_util.frPyObjects(seg, h, w)
    return seg


def _mean_area(areas):
    vals = [a for a in areas if a]
    return np.array(vals).mean() if vals else 0


def _pair_iou(d_seq, g_seq):
    inter = union = 0.0
    for d, g in zip(d_seq, g_seq):
        if d and g:
            inter += mask_util.area(mask_util.merge([d, g], True))
            union += mask_util.area(mask_util.merge([d, g], False))
        elif d:
            union += mask_util.area(d)
        elif g:
            union += mask_util.area(g)
    return inter / union if union > 0 else 0.0


def _match(G, D, ious, rng):
    """MATCH for one block; G in file order, D in score order (<= 100)."""
    ig = [1 if (g["iscrowd"] or not rng[0] <= g["mean_area"] <= rng[1]) else 0 for g in G]
    gorder = sorted(range(len(G)), key=lambda j: ig[j])  # stable: ignored last
    T = len(IOU_T)
    gt_taken = np.zeros((T, len(G)), dtype=bool)
    dt_match = np.zeros((T, len(D)), dtype=bool)
    dt_ig = np.zeros((T, len(D)), dtype=bool)
    for ti, t in enumerate(IOU_T):
        for di in range(len(D)):
            best, m = min(t, 1 - 1e-10), None
            for j in gorder:
                if gt_taken[ti, j] and not G[j]["iscrowd"]:
                    continue
                if m is not None and ig[m] == 0 and ig[j] == 1:
                    break
                if ious[di][j] < best:
                    continue
                best, m = ious[di][j], j
            if m is not None:
                gt_taken[ti, m] = True
                dt_match[ti, di] = True
                dt_ig[ti, di] = bool(ig[m])
    for di, d in enumerate(D):
        if not rng[0] <= d["mean_area"] <= rng[1]:
            dt_ig[~dt_match[:, di], di] = True
    return {
        "scores": [d["score"] for d in D],
        "match": dt_match,
        "ignore": dt_ig,
        "npig": sum(1 for x in ig if x == 0),
    }


def reference_evaluate(gt, results, class_agnostic=False):
    """Return ``(stats[12], precision[T,R,K,A,M], recall[T,K,A,M])``."""
    videos = {v["id"]: v for v in gt["videos"]}
    V = sorted(videos)
    K = sorted(c["id"] for c in gt["categories"])
    buckets_g, buckets_d = {}, {}
    for a in gt["annotations"]:
        if a["video_id"] not in videos or a["category_id"] not in K:
            continue
        v = videos[a["video_id"]]
        tr = {
            "id": a["id"],
            "iscrowd": a.get("iscrowd", 0),
            "mean_area": _mean_area(a["areas"]),
            "segs": [_to_rle(s, v["height"], v["width"]) for s in a["segmentations"]],
        }
        buckets_g.setdefault((a["video_id"], a["category_id"]), []).append(tr)
    for i, r in enumerate(results):
        if r["category_id"] not in K:
            continue
        segs = [s if s else None for s in r["segmentations"]]
        areas = [mask_util.area(s) if s else None for s in segs]
        tr = {"id": i + 1, "score": r["score"], "mean_area": _mean_area(areas), "segs": segs}
        buckets_d.setdefault((r["video_id"], r["category_id"]), []).append(tr)
    cats = [-1] if class_agnostic else K

    def bucket(store, v, c):
        if c == -1:
            return [x for k in K for x in store.get((v, k), [])]
        return list(store.get((v, c), []))

    T, R, A, M = len(IOU_T), len(REC_T), len(AREAS), len(MAXDET)
    precision = -np.ones((T, R, len(cats), A, M))
    recall = -np.ones((T, len(cats), A, M))
    for ki, c in enumerate(cats):
        per_area = [[] for _ in AREAS]
        for v in V:
            G, D = bucket(buckets_g, v, c), bucket(buckets_d, v, c)
            if not G and not D:
                continue
            D = sorted(D, key=lambda d: -d["score"])[:100]
            ious = [[_pair_iou(d["segs"], g["segs"]) for g in G] for d in D]
            for ai, rng in enumerate(AREAS):
                per_area[ai].append(_match(G, D, ious, rng))
        for ai in range(A):
            E = per_area[ai]
            if not E:
                continue
            npig = sum(e["npig"] for e in E)
            if npig == 0:
                continue
            for mi, md in enumerate(MAXDET):
                sc = np.concatenate([e["scores"][:md] for e in E])
                order = sorted(range(len(sc)), key=lambda i: -sc[i])
                mt = np.concatenate([e["match"][:, :md] for e in E], axis=1)[:, order]
                ig = np.concatenate([e["ignore"][:, :md] for e in E], axis=1)[:, order]
                for ti in range(T):
                    tp = np.cumsum(mt[ti] & ~ig[ti]).astype(float)
                    fp = np.cumsum(~mt[ti] & ~ig[ti]).astype(float)
                    rc = tp / npig
                    pr = list(tp / (fp + tp + np.spacing(1)))
                    recall[ti, ki, ai, mi] = rc[-1] if len(tp) else 0
                    for i in range(len(pr) - 1, 0, -1):
                        pr[i - 1] = max(pr[i - 1], pr[i])
                    for ri, r in enumerate(REC_T):
                        idx = next((i for i in range(len(rc)) if rc[i] >= r), len(rc))
                        precision[ti, ri, ki, ai, mi] = pr[idx] if idx < len(rc) else 0.0
    stats = []
    specs = [
        (1, None, "all", 100),
        (1, 0.5, "all", 100),
        (1, 0.75, "all", 100),
        (1, None, "small", 100),
        (1, None, "medium", 100),
        (1, None, "large", 100),
        (0, None, "all", 1),
        (0, None, "all", 10),
        (0, None, "all", 100),
        (0, None, "small", 100),
        (0, None, "medium", 100),
        (0, None, "large", 100),
    ]
    for is_ap, thr, area, md in specs:
        s = precision if is_ap else recall
        if thr is not None:
            s = s[np.where(IOU_T == thr)[0]]
        a, m = AREA_LBL.index(area), MAXDET.index(md)
        s = s[:, :, :, a, m] if is_ap else s[:, :, a, m]
        stats.append(np.mean(s[s > -1]) if (s > -1).any() else -1.0)
    return np.array(stats), precision, recall
