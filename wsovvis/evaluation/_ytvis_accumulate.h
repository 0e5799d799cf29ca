/*
 * accumulate: the precision / recall / score arrays of YTVOSeval.accumulate (included by
 * _ytvis_kernels.c; not a public header).
 *
 * Detections come sorted by (category, score desc, video, rank in block), the official order
 * (per category the first maxDet detections of each video concatenated in video order, then a
 * stable sort by descending score). For each maxDet m, category k with npig[k, a] > 0 and
 * threshold t, exactly as the official loop:
 *   tp, fp = cumulative sums of (matched & !ignored), (!matched & !ignored) over the detections
 *            with rank < maxDet (ignored ones stay in the arrays, adding nothing);
 *   rc = tp / npig;  pr = tp / ((fp + tp) + eps);  recall = rc[-1] (0 without detections);
 *   pr = running maximum from the right;  for each recall threshold r: i = first index with
 *   rc[i] >= r; precision = pr[i], score = score[i] if i < n, else 0 (and 0 for all later r).
 * Every operation is the same IEEE double operation, in the same order, as numpy's.
 */

#define ACCUMULATE_DOC                                                                         \
    "accumulate(K, A, T, k, rank, score, matched, ignored, npig, rec_thr, max_dets, precision, " \
    "recall, scores) -> None.\n\nk, rank: int64 [N]; score: float64 [N] (sorted by category, " \
    "score desc, video, rank); matched, ignored: uint8 [A, T, N]; npig: int64 [K, A]; "         \
    "rec_thr: float64 [R] ascending; max_dets: int64 [M]. Writes precision [M, A, K, T, R], "   \
    "recall [M, A, K, T] and scores (like precision, or None) for the (k, a) with npig > 0."

static PyObject *accumulate(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t num_k, num_a, num_t;
    Py_buffer kb, rb, sb, mb, ib, nb, tb, db, pb, cb, qb;
    PyObject *scores_o;
    if (!PyArg_ParseTuple(args, "nnny*y*y*y*y*y*y*y*w*w*O", &num_k, &num_a, &num_t, &kb, &rb,
                          &sb, &mb, &ib, &nb, &tb, &db, &pb, &cb, &scores_o))
        return NULL;
    Py_buffer *bufs[] = {&kb, &rb, &sb, &mb, &ib, &nb, &tb, &db, &pb, &cb};
    int have_q = 0;
    PyObject *ret = NULL;
    double *pr = NULL; /* precision, then recall (n + 1 each) */
    int64_t *sel = NULL;
    if (scores_o != Py_None) {
        if (PyObject_GetBuffer(scores_o, &qb, PyBUF_WRITABLE)) goto done;
        have_q = 1;
    }
    int64_t n = kb.len / 8, num_r = tb.len / 8, num_m = db.len / 8;
    const int64_t *k = kb.buf, *rank = rb.buf, *npig = nb.buf, *max_dets = db.buf;
    const double *score = sb.buf, *rec = tb.buf;
    const uint8_t *matched = mb.buf, *ignored = ib.buf;
    int64_t cells, flags, planes, prec_len, ka;
    if (num_k < 0 || num_a < 0 || num_t < 0 || __builtin_mul_overflow(num_m, num_a, &cells) ||
        __builtin_mul_overflow(cells, (int64_t)num_k, &cells) ||
        __builtin_mul_overflow(cells, (int64_t)num_t, &cells) ||
        __builtin_mul_overflow((int64_t)num_a, (int64_t)num_t, &planes) ||
        __builtin_mul_overflow(planes, n, &flags) ||
        __builtin_mul_overflow(cells, num_r, &prec_len) ||
        __builtin_mul_overflow((int64_t)num_k, (int64_t)num_a, &ka) ||
        prec_len > PY_SSIZE_T_MAX / 8 || ka > PY_SSIZE_T_MAX / 8)
        goto bad;
    if (rb.len != 8 * n || sb.len != 8 * n || mb.len != flags || ib.len != mb.len ||
        nb.len != 8 * ka || cb.len != 8 * cells || pb.len != 8 * prec_len ||
        (have_q && qb.len != pb.len))
        goto bad;
    if (!aligned8(&kb) || !aligned8(&rb) || !aligned8(&sb) || !aligned8(&nb) || !aligned8(&tb) ||
        !aligned8(&db) || !aligned8(&pb) || !aligned8(&cb) || (have_q && !aligned8(&qb)))
        goto done;
    for (int64_t r = 1; r < num_r; r++)
        if (!(rec[r] >= rec[r - 1])) goto bad; /* the threshold walk needs ascending thresholds */
    for (int64_t i = 0; i < n; i++)
        if (k[i] < 0 || k[i] >= num_k || (i && k[i] < k[i - 1])) goto bad;
    pr = malloc(sizeof(double) * 2 * (size_t)(n + 1));
    if (!pr) {
        PyErr_NoMemory();
        goto done;
    }
    double *rc = pr + n + 1;
    sel = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!sel) {
        PyErr_NoMemory();
        goto done;
    }
    double *prec = pb.buf, *recl = cb.buf, *scs = have_q ? qb.buf : NULL;
    const double eps = 2.220446049250313e-16; /* np.spacing(1) */
    Py_BEGIN_ALLOW_THREADS;
    for (int64_t mi = 0; mi < num_m; mi++) {
        for (int64_t s0 = 0; s0 < n;) {
            int64_t kk = k[s0], s1 = s0;
            int64_t cnt = 0;
            while (s1 < n && k[s1] == kk) {
                if (rank[s1] < max_dets[mi]) sel[cnt++] = s1;
                s1++;
            }
            for (int64_t a = 0; a < num_a; a++) {
                int64_t np_ = npig[kk * num_a + a];
                if (np_ <= 0 || cnt == 0) continue;
                for (int64_t t = 0; t < num_t; t++) {
                    const uint8_t *mt = matched + (a * num_t + t) * n;
                    const uint8_t *ig = ignored + (a * num_t + t) * n;
                    int64_t tpc = 0, fpc = 0;
                    for (int64_t c = 0; c < cnt; c++) {
                        int64_t d = sel[c];
                        if (!ig[d]) {
                            if (mt[d])
                                tpc++;
                            else
                                fpc++;
                        }
                        double tpf = (double)tpc, fpf = (double)fpc;
                        rc[c] = tpf / (double)np_;
                        pr[c] = tpf / ((fpf + tpf) + eps);
                    }
                    int64_t cell = ((mi * num_a + a) * num_k + kk) * num_t + t;
                    recl[cell] = rc[cnt - 1];
                    for (int64_t c = cnt - 1; c > 0; c--)
                        if (pr[c] > pr[c - 1]) pr[c - 1] = pr[c];
                    double *q = prec + cell * num_r, *qs = scs ? scs + cell * num_r : NULL;
                    int64_t c = 0;
                    for (int64_t r = 0; r < num_r; r++) {
                        while (c < cnt && rc[c] < rec[r]) c++;
                        if (c >= cnt) {
                            for (; r < num_r; r++) {
                                q[r] = 0.0;
                                if (qs) qs[r] = 0.0;
                            }
                            break;
                        }
                        q[r] = pr[c];
                        if (qs) qs[r] = score[sel[c]];
                    }
                }
            }
            s0 = s1;
        }
    }
    Py_END_ALLOW_THREADS;
    Py_INCREF(Py_None);
    ret = Py_None;
    goto done;
bad:
    PyErr_SetString(PyExc_ValueError, "accumulate: inconsistent array sizes");
done:
    free(pr);
    free(sel);
    for (int i = 0; i < 10; i++) PyBuffer_Release(bufs[i]);
    if (have_q) PyBuffer_Release(&qb);
    return ret;
}
