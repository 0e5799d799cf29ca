/*
 * video_iou: the per-video IoU kernel of _ytvis_kernels.c (included there; not a public header).
 *
 * Official semantics (youtubevos/cocoapi YTVOSeval.computeIoU) for a pair (d, g):
 *   I = U = 0;  for t < min(len d, len g):
 *       both present: I += |d_t & g_t|;  U += |d_t | g_t|
 *       one present:  U += its area
 *   IoU = I / U (float64 division of the integer sums), 0 when U == 0.
 * Masks are decoded as pycocotools' rleFrString does (6-bit chars 48..111, 0x20 continuation,
 * sign bit 0x10, deltas against counts[m - 2] for m > 2, uint32 wrap-around). A video is flagged
 * (status 1) instead of scored when any mask is one pycocotools would read differently or not at
 * all: a character outside 48..111, a value longer than 6 characters, an empty run after the
 * first, a frame whose size is not the video's, a canvas of 2**29 pixels or more. A mask whose
 * run lengths do not sum to h * w is corrupt (status 2; pycocotools can loop forever on it).
 * Frame kinds: kind & 3 is 0 null, 1 string, 2 run lengths; kind & 4 records the key order.
 */

typedef struct {
    const int64_t *track_start;
    const int8_t *kind;
    const int32_t *h, *w;
    const int64_t *off, *len;
    const unsigned char *str;
    const uint32_t *runs;
    Py_ssize_t n_tracks, n_frames, n_str, n_runs;
    Py_buffer views[8];
    int n_views;
} Tabs;

static void tabs_release(Tabs *t) {
    for (int k = 0; k < t->n_views; k++) PyBuffer_Release(&t->views[k]);
    t->n_views = 0;
}

/* Whether an int64 / float64 buffer is 8-byte aligned (sets ValueError if not). */
static int aligned8(const Py_buffer *b) {
    if (((uintptr_t)b->buf & 7u) == 0) return 1;
    PyErr_SetString(PyExc_ValueError, "expected 8-byte aligned int64/float64 buffers");
    return 0;
}

/* (track_start, kind, h, w, off, len, str, runs) buffers -> Tabs; -1 with an exception set. */
static int tabs_from_tuple(PyObject *tup, Tabs *t) {
    memset(t, 0, sizeof(*t));
    if (!PyTuple_Check(tup) || PyTuple_GET_SIZE(tup) != 8) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of 8 table buffers");
        return -1;
    }
    for (int k = 0; k < 8; k++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tup, k), &t->views[k], PyBUF_SIMPLE)) {
            tabs_release(t);
            return -1;
        }
        t->n_views++;
    }
    t->track_start = t->views[0].buf;
    t->kind = t->views[1].buf;
    t->h = t->views[2].buf;
    t->w = t->views[3].buf;
    t->off = t->views[4].buf;
    t->len = t->views[5].buf;
    t->str = t->views[6].buf;
    t->runs = t->views[7].buf;
    if (((uintptr_t)t->views[0].buf | (uintptr_t)t->views[4].buf | (uintptr_t)t->views[5].buf) &
            7u ||
        ((uintptr_t)t->views[2].buf | (uintptr_t)t->views[3].buf | (uintptr_t)t->views[7].buf) &
            3u) {
        PyErr_SetString(PyExc_ValueError, "misaligned table buffers");
        tabs_release(t);
        return -1;
    }
    t->n_tracks = t->views[0].len / 8 - 1;
    t->n_frames = t->views[1].len;
    t->n_str = t->views[6].len;
    t->n_runs = t->views[7].len / 4;
    if (t->n_tracks < 0 || t->views[2].len != 4 * t->n_frames ||
        t->views[3].len != 4 * t->n_frames || t->views[4].len != 8 * t->n_frames ||
        t->views[5].len != 8 * t->n_frames) {
        PyErr_SetString(PyExc_ValueError, "inconsistent table sizes");
        tabs_release(t);
        return -1;
    }
    /* frame rows of every track must lie in the frame table */
    for (Py_ssize_t k = 0; k < t->n_tracks; k++)
        if (t->track_start[k] < 0 || t->track_start[k] > t->track_start[k + 1] ||
            t->track_start[k + 1] > t->n_frames) {
            PyErr_SetString(PyExc_ValueError, "track_start is not a monotone frame index");
            tabs_release(t);
            return -1;
        }
    return 0;
}

typedef struct {
    uint32_t *iv; /* [start, end) pairs of foreground pixels (column-major index) */
    size_t n, cap;
} Ivs;

static int ivs_reserve(Ivs *s, size_t pairs) {
    if (pairs > ((size_t)PY_SSIZE_T_MAX / 8) - s->n) return -1; /* no size_t wrap-around */
    if (s->n + 2 * pairs <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 1 << 16;
    while (cap < s->n + 2 * pairs) cap *= 2;
    uint32_t *p = realloc(s->iv, cap * sizeof(uint32_t));
    if (!p) return -1;
    s->iv = p;
    s->cap = cap;
    return 0;
}

/* Frame f of a table: area, and foreground intervals appended to s when want_iv.
 * Returns 0; 1 when the frame must be left to pycocotools (another size, a character outside
 * the alphabet, a value longer than 6 characters, an empty run after the first: pycocotools
 * stops merging there); 2 when the run lengths do not sum to h * w (a corrupt mask, on which
 * pycocotools can loop forever); -1 when out of memory. */
static int decode_frame(const Tabs *t, int64_t f, uint64_t hw, int32_t h, int32_t w,
                        int want_iv, Ivs *s, int64_t *area) {
    /* a frame of another size is checked against its own size, then left to pycocotools */
    int other_size = t->h[f] != h || t->w[f] != w;
    if (other_size) {
        hw = (uint64_t)(uint32_t)t->h[f] * (uint64_t)(uint32_t)t->w[f];
        want_iv = 0;
    }
    int64_t off = t->off[f], len = t->len[f];
    uint64_t pos = 0;
    int64_t a = 0;
    int zero_run = 0;
    int64_t avail = (t->kind[f] & 3) == 2 ? t->n_runs : t->n_str;
    if (off < 0 || len < 0 || off > avail || len > avail - off) return 1; /* not from pack_json */
    /* every run length takes >= 1 character / list entry: len / 2 + 1 foreground intervals */
    if (want_iv && ivs_reserve(s, (size_t)len / 2 + 1)) return -1;
    uint32_t *iv = want_iv ? s->iv + s->n : NULL;
    if ((t->kind[f] & 3) == 2) {
        const uint32_t *r = t->runs + off;
        /* (foreground, background) pairs after the first background run; sums are checked at
         * the end (a corrupt mask's intervals are never used) */
        int64_t k = 1;
        pos = len ? r[0] : 0;
        for (; k + 1 < len; k += 2) {
            uint32_t c = r[k], b = r[k + 1];
            zero_run |= (c == 0) | (b == 0);
            if (iv) {
                iv[0] = (uint32_t)pos;
                iv[1] = (uint32_t)(pos + c);
                iv += 2;
            }
            a += c;
            pos += (uint64_t)c + b;
        }
        if (k < len) {
            uint32_t c = r[k];
            zero_run |= c == 0;
            if (iv) {
                iv[0] = (uint32_t)pos;
                iv[1] = (uint32_t)(pos + c);
                iv += 2;
            }
            a += c;
            pos += c;
        }
    } else {
        const unsigned char *p = t->str + off, *e = p + len;
        uint32_t prev1 = 0, prev2 = 0; /* counts[m - 1], counts[m - 2] */
        int64_t m = 0;
        while (p < e) {
            unsigned c = (unsigned)*p++ - 48u;
            if (c > 63u) return 1;
            int64_t x = c & 0x1f;
            int k = 1;
            while (c & 0x20) {
                if (p >= e || k >= 6) return 1;
                c = (unsigned)*p++ - 48u;
                if (c > 63u) return 1;
                x |= (int64_t)(c & 0x1f) << (5 * k);
                k++;
            }
            if (c & 0x10) x |= -((int64_t)1 << (5 * k));
            if (m > 2) x += (int64_t)prev2;
            uint32_t cnt = (uint32_t)x;
            zero_run |= cnt == 0 && m > 0;
            if ((m & 1) && cnt) {
                a += cnt;
                if (iv) {
                    *iv++ = (uint32_t)pos;
                    *iv++ = (uint32_t)(pos + cnt);
                }
            }
            pos += cnt;
            prev2 = prev1;
            prev1 = cnt;
            m++;
        }
    }
    if (pos != hw) return 2;
    if (zero_run || other_size) return 1;
    if (iv) s->n = (size_t)(iv - s->iv);
    *area = a;
    return 0;
}

/* First interval of a (n intervals) whose end is > x. */
static size_t first_ending_after(const uint32_t *a, size_t n, uint32_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[2 * mid + 1] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* |A & B| of two sorted interval lists (n* = number of intervals). Intervals entirely before
 * the other list's first start are skipped by binary search; the walk stops at the first list's
 * end. */
static int64_t intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    if (!na || !nb || a[2 * na - 1] <= b[0] || b[2 * nb - 1] <= a[0]) return 0;
    size_t i = first_ending_after(a, na, b[0]), j = first_ending_after(b, nb, a[0]);
    int64_t s = 0;
    while (i < na && j < nb) {
        uint32_t ae = a[2 * i + 1], be = b[2 * j + 1];
        uint32_t lo = a[2 * i] > b[2 * j] ? a[2 * i] : b[2 * j];
        uint32_t hi = ae < be ? ae : be;
        if (hi > lo) s += hi - lo;
        if (ae < be)
            i++;
        else
            j++;
    }
    return s;
}

typedef struct {
    int64_t track, frames, iv_off, iv_n, area;
    int present, partner;
} Item;

/* Decode frame t of an item into s (want: also its intervals, for intersections); present is
 * set when the frame exists and decoded (rc 0). Returns decode_frame's rc, 0 for no frame. */
static int decode_item(const Tabs *tb, Item *it, int64_t t, uint64_t hw, int32_t h, int32_t w,
                       int want, Ivs *s) {
    it->present = 0;
    if (t >= it->frames) return 0;
    int64_t f = tb->track_start[it->track] + t;
    if ((tb->kind[f] & 3) == 0) return 0;
    it->iv_off = (int64_t)s->n;
    int rc = decode_frame(tb, f, hw, h, w, want, s, &it->area);
    if (rc) return rc;
    it->iv_n = ((int64_t)s->n - it->iv_off) / 2;
    it->present = 1;
    return 0;
}

/* One video; returns 0 scored, 1 left to Python, 2 corrupt mask (bad = {item, frame}: item i
 * >= 0 the i-th detection, -(j + 1) the j-th GT track), -1 out of memory. Unless scored, iou and
 * mean_area are zeros; bad is zeros unless corrupt. asum: 2 * nd scratch integers. */
static int one_video(const Tabs *dt, const Tabs *gt, int32_t h, int32_t w, Item *di, int64_t nd,
                     const int64_t *dg, Item *gi, int64_t ng, const int64_t *gg, Ivs *s,
                     int64_t *inter, int64_t *uni, int64_t *asum, double *iou, double *mean_area,
                     int64_t *bad) {
    uint64_t hw = (uint64_t)h * (uint64_t)w; /* h, w in [0, INT32_MAX]: checked by the caller */
    int64_t *acnt = asum + nd;
    int64_t max_t = 0;
    for (int64_t i = 0; i < nd; i++) {
        di[i].frames = dt->track_start[di[i].track + 1] - dt->track_start[di[i].track];
        di[i].partner = 0;
        if (di[i].frames > max_t) max_t = di[i].frames;
    }
    for (int64_t j = 0; j < ng; j++) {
        gi[j].frames = gt->track_start[gi[j].track + 1] - gt->track_start[gi[j].track];
        gi[j].partner = 0;
        for (int64_t i = 0; i < nd; i++)
            if (dg[i] == gg[j]) di[i].partner = gi[j].partner = 1;
        if (gi[j].partner && gi[j].frames > max_t) max_t = gi[j].frames; /* checked to the end */
    }
    memset(inter, 0, sizeof(int64_t) * nd * ng);
    memset(uni, 0, sizeof(int64_t) * nd * ng);
    memset(asum, 0, sizeof(int64_t) * 2 * nd);
    bad[0] = bad[1] = 0;
    int rc = 1;
    if (hw >= (1ull << 29)) goto unscored;
    /* a video with a frame for pycocotools (status 1) is still read to the end, so that a
     * corrupt mask anywhere is reported (status 2): the first GT track by (track, frame), as the
     * Python path converts them, else the first detection by (detection, frame) */
    int flagged = 0;
    int64_t bad_g = -1, bad_gt = 0, bad_d = -1, bad_dt = 0;
    for (int64_t t = 0; t < max_t; t++) {
        int scoring = !flagged && bad_g < 0 && bad_d < 0;
        s->n = 0;
        for (int64_t i = 0; i < nd; i++) {
            rc = decode_item(dt, &di[i], t, hw, h, w, scoring && di[i].partner, s);
            if (rc < 0) return -1;
            if (rc == 2 && (bad_d < 0 || i < bad_d)) bad_d = i, bad_dt = t;
            flagged |= rc == 1;
            if (!di[i].present) continue;
            asum[i] += di[i].area;
            acnt[i] += di[i].area > 0;
        }
        scoring = !flagged && bad_g < 0 && bad_d < 0;
        for (int64_t j = 0; j < ng; j++) {
            if (!gi[j].partner) { /* never scored: not decoded */
                gi[j].present = 0;
                continue;
            }
            rc = decode_item(gt, &gi[j], t, hw, h, w, scoring, s);
            if (rc < 0) return -1;
            if (rc == 2 && (bad_g < 0 || j < bad_g)) bad_g = j, bad_gt = t;
            flagged |= rc == 1;
        }
        if (flagged || bad_g >= 0 || bad_d >= 0) continue; /* only checking from here on */
        for (int64_t i = 0; i < nd; i++) {
            Item *a = &di[i];
            if (!a->partner || t >= a->frames) continue;
            for (int64_t j = 0; j < ng; j++) {
                Item *b = &gi[j];
                if (dg[i] != gg[j] || t >= b->frames || (!a->present && !b->present)) continue;
                int64_t x = 0;
                if (a->present && b->present)
                    x = intersect(s->iv + a->iv_off, (size_t)a->iv_n, s->iv + b->iv_off,
                                  (size_t)b->iv_n);
                inter[i * ng + j] += x;
                uni[i * ng + j] += (a->present ? a->area : 0) + (b->present ? b->area : 0) - x;
            }
        }
    }
    if (bad_g >= 0 || bad_d >= 0) {
        bad[0] = bad_g >= 0 ? -(bad_g + 1) : bad_d;
        bad[1] = bad_g >= 0 ? bad_gt : bad_dt;
        rc = 2;
        goto unscored;
    }
    rc = 1;
    if (flagged) goto unscored;
    for (int64_t k = 0; k < nd * ng; k++)
        iou[k] = uni[k] > 0 ? (double)inter[k] / (double)uni[k] : 0.0;
    for (int64_t i = 0; i < nd; i++)
        mean_area[i] = acnt[i] ? (double)asum[i] / (double)acnt[i] : 0.0;
    return 0;
unscored:
    memset(iou, 0, sizeof(double) * nd * ng);
    memset(mean_area, 0, sizeof(double) * nd);
    return rc;
}

#define VIDEO_IOU_DOC                                                                          \
    "video_iou(dt_tabs, gt_tabs, hw, v_d, d_ids, d_grp, v_g, g_ids, g_grp) -> (iou, "         \
    "mean_area, status, bad).\n\nFor video v: detections d_ids[v_d[v]:v_d[v+1]] (tracks of "       \
    "dt_tabs, groups d_grp), GT g_ids[v_g[v]:v_g[v+1]] (gt_tabs, g_grp), size hw[2v], "        \
    "hw[2v+1]. iou: float64, the D x G matrices of the videos concatenated (0 across groups); " \
    "mean_area: float64 per detection (mean of its non-zero frame areas); status: int8 per "   \
    "video, 1 where the video must be scored by pycocotools instead, 2 where a mask's run "   \
    "lengths do not sum to h * w; bad: int64 [V, 2], for status 2 the (item, frame) of that "  \
    "mask, item i >= 0 the i-th detection of the video, -(j + 1) its j-th GT track."

static PyObject *video_iou(PyObject *self, PyObject *args) {
    PyObject *dto, *gto;
    Py_buffer hwb, vdb, dib, dgb, vgb, gib, ggb;
    if (!PyArg_ParseTuple(args, "OOy*y*y*y*y*y*y*", &dto, &gto, &hwb, &vdb, &dib, &dgb, &vgb,
                          &gib, &ggb))
        return NULL;
    Py_buffer *bufs[] = {&hwb, &vdb, &dib, &dgb, &vgb, &gib, &ggb};
    PyObject *result = NULL, *iou_o = NULL, *area_o = NULL, *status_o = NULL, *bad_o = NULL;
    Tabs dt, gt;
    int have_dt = 0, have_gt = 0;
    Item *items = NULL;
    int64_t *scratch = NULL;
    Ivs s = {0};
    if (tabs_from_tuple(dto, &dt)) goto done;
    have_dt = 1;
    if (tabs_from_tuple(gto, &gt)) goto done;
    have_gt = 1;
    int64_t nv = vdb.len / 8 - 1;
    const int64_t *hw = hwb.buf, *vd = vdb.buf, *dids = dib.buf, *dgr = dgb.buf;
    const int64_t *vg = vgb.buf, *gids = gib.buf, *ggr = ggb.buf;
    int64_t ndt = dib.len / 8, ngt = gib.len / 8;
    if (nv < 0 || vgb.len != vdb.len || hwb.len != 16 * nv || dgb.len != dib.len ||
        ggb.len != gib.len || vd[0] != 0 || vg[0] != 0 || vd[nv] != ndt || vg[nv] != ngt) {
        PyErr_SetString(PyExc_ValueError, "video_iou: inconsistent index arrays");
        goto done;
    }
    for (int k = 0; k < 7; k++)
        if (!aligned8(bufs[k])) goto done;
    int64_t total = 0, max_d = 0, max_g = 0, max_dg = 0;
    for (int64_t v = 0; v < nv; v++) {
        if (vd[v] > vd[v + 1] || vg[v] > vg[v + 1]) { /* with vd[0] == 0, vd[nv] == ndt: bounds */
            PyErr_SetString(PyExc_ValueError, "video_iou: decreasing video offsets");
            goto done;
        }
        if (hw[2 * v] < 0 || hw[2 * v] > INT32_MAX || hw[2 * v + 1] < 0 ||
            hw[2 * v + 1] > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "video_iou: video size out of range");
            goto done;
        }
        int64_t d = vd[v + 1] - vd[v], g = vg[v + 1] - vg[v], dg;
        if (__builtin_mul_overflow(d, g, &dg) || __builtin_add_overflow(total, dg, &total) ||
            total > PY_SSIZE_T_MAX / 8) {
            PyErr_SetString(PyExc_ValueError, "video_iou: too many pairs");
            goto done;
        }
        if (d > max_d) max_d = d;
        if (g > max_g) max_g = g;
        if (dg > max_dg) max_dg = dg;
    }
    for (int64_t k = 0; k < ndt; k++)
        if (dids[k] < 0 || dids[k] >= dt.n_tracks) {
            PyErr_SetString(PyExc_IndexError, "video_iou: detection track out of range");
            goto done;
        }
    for (int64_t k = 0; k < ngt; k++)
        if (gids[k] < 0 || gids[k] >= gt.n_tracks) {
            PyErr_SetString(PyExc_IndexError, "video_iou: GT track out of range");
            goto done;
        }
    iou_o = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * 8));
    area_o = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(ndt * 8));
    status_o = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)nv);
    bad_o = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(16 * nv));
    items = malloc(sizeof(Item) * (size_t)(max_d + max_g + 1));
    scratch = malloc(sizeof(int64_t) * (size_t)(2 * max_dg + 2 * max_d + 1));
    if (!iou_o || !area_o || !status_o || !bad_o) goto done;
    if (!items || !scratch) {
        PyErr_NoMemory();
        goto done;
    }
    double *iou = (double *)PyBytes_AS_STRING(iou_o), *area = (double *)PyBytes_AS_STRING(area_o);
    int8_t *status = (int8_t *)PyBytes_AS_STRING(status_o);
    int64_t *bad = (int64_t *)PyBytes_AS_STRING(bad_o);
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS;
    int64_t pos = 0;
    for (int64_t v = 0; v < nv && !oom; v++) {
        int64_t d0 = vd[v], nd = vd[v + 1] - d0, g0 = vg[v], ng = vg[v + 1] - g0;
        Item *di = items, *gi = items + nd;
        for (int64_t i = 0; i < nd; i++) di[i].track = dids[d0 + i];
        for (int64_t j = 0; j < ng; j++) gi[j].track = gids[g0 + j];
        int rc = one_video(&dt, &gt, (int32_t)hw[2 * v], (int32_t)hw[2 * v + 1], di, nd,
                           dgr + d0, gi, ng, ggr + g0, &s, scratch, scratch + max_dg,
                           scratch + 2 * max_dg, iou + pos, area + d0, bad + 2 * v);
        if (rc < 0) oom = 1;
        status[v] = (int8_t)(rc > 0 ? rc : 0);
        pos += nd * ng;
    }
    Py_END_ALLOW_THREADS;
    if (oom) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyTuple_Pack(4, iou_o, area_o, status_o, bad_o);
done:
    Py_XDECREF(iou_o);
    Py_XDECREF(area_o);
    Py_XDECREF(status_o);
    Py_XDECREF(bad_o);
    free(items);
    free(scratch);
    free(s.iv);
    if (have_dt) tabs_release(&dt);
    if (have_gt) tabs_release(&gt);
    for (int k = 0; k < 7; k++) PyBuffer_Release(bufs[k]);
    return result;
}
