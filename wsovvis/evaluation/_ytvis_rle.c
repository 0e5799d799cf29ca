/* Two small helpers of the YTVIS scorer (wsovvis/evaluation/ytvis_masks.py), own code.
 *
 * decode(fragments, heights, allow_arrays) -> (runs, starts, status, stats)
 *     Each fragment is the JSON text of an RLE "counts" value (msgspec.Raw): a compressed string
 *     decoded exactly as pycocotools' rleFrString (JSON escapes \\ and \/), or an array of
 *     non-negative integers. Fragment i owns runs[starts[i]:starts[i+1]] (uint32 / int64).
 *     status[i] (int8): 0 decoded, 1 not a valid RLE, 2 another JSON escape (the caller
 *     re-serialises and retries), 3 an array while allow_arrays is 0. stats[i] (int64 x 7): sum
 *     of all runs, of the odd (foreground) runs, foreground box x0, x1, y0, y1 (end-exclusive;
 *     column-major, heights[i] rows), whether a run after the first is 0.
 *
 * merge_areas(runs_a, starts_a, runs_b, starts_b, a, b, lo, hi, pair, bound, limit)
 *     -> (inter, union)
 *     For frames a[k] of table A and b[k] of table B, of the same size and with run lengths
 *     summing to h * w (checked by the caller): the areas pycocotools' rleMerge gives for
 *     intersect=1 and 0, with its loop, unsigned arithmetic and early stop (int64). Where
 *     lo[k] >= 0 the caller knows rleMerge gives the plain intersection (no zero run after the
 *     first) and that the foregrounds can only meet in positions [lo, hi): only runs there are
 *     visited and union[k] is -1 (it is |a| + |b| - inter). The frames of a pair of tracks are
 *     contiguous (same pair[k]); once 3 * sum(bound[k] - inter[k]) over its frames so far
 *     exceeds limit[k], its IoU is certainly below 0.5 and its other frames get -2, -2.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct { uint32_t *v; Py_ssize_t n, cap; } Runs;  /* output run lengths (fixed size) */

/* at most how many runs a fragment decodes to: a compressed number takes a character, an
   array number a digit and a separator (unused room is returned to the allocator at the end) */
static Py_ssize_t runs_bound(const char *s, Py_ssize_t len) {
    return (len && s[0] == '[') ? len / 2 + 1 : len;
}

/* pycocotools rleFrString on s[0:len] (JSON-escaped); 0 ok, 1 invalid, 2 other escape, -1 memory */
static int decode_string(const char *s, Py_ssize_t len, Runs *r) {
    uint32_t *cnts = r->v + r->n;
    Py_ssize_t p = 0, m = 0, room = r->cap - r->n;
    uint32_t back2 = 0, back1 = 0;  /* cnts[m - 2], cnts[m - 1] */
    while (p < len) {
        long long x;
        unsigned c = (unsigned char)s[p] - 48u;
        if (c < 64 && !(c & 0x20)) {  /* a one-character number (most of them) */
            x = (c & 0x10) ? (long long)c - 32 : (long long)c;
            p++;
        } else {
            int k = 0, more = 1;
            x = 0;
            while (more) {
                if (p >= len || k > 6) return 1;  /* unterminated, or wider than 35 bits */
                char ch = s[p++];
                if (ch == '\\') {
                    if (p >= len) return 1;
                    ch = s[p++];
                    if (ch != '\\' && ch != '/') return 2;
                }
                c = (unsigned char)ch - 48u;
                if (c > 63) return 1;  /* outside the RLE alphabet */
                x |= (long long)(c & 0x1f) << (5 * k);
                more = c & 0x20;
                k++;
                if (!more && (c & 0x10)) x |= (long long)(~0ULL << (5 * k));  /* sign bit */
            }
        }
        if (m > 2) x += back2;
        if (m == room) return -1;  /* cannot happen: runs_bound */
        cnts[m++] = (uint32_t)x;
        back2 = back1;
        back1 = (uint32_t)x;
    }
    r->n += m;
    return 0;
}

#define IS_SPACE(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

/* "[1, 2, 3]" -> runs; 0 ok, 1 not an array of non-negative 32-bit integers, -1 memory */
static int decode_array(const char *s, Py_ssize_t len, Runs *r) {
    uint32_t *out = r->v + r->n;
    Py_ssize_t room = r->cap - r->n, m = 0;
    const char *p = s + 1, *last = s + len - 1;
    if (*last != ']') return 1;  /* the final ']' ends every scan below */
    for (;;) {
        while (IS_SPACE(*p)) p++;
        const char *q = p;
        uint64_t x = 0;
        while ((unsigned)(*p - '0') < 10 && p - q < 11) x = 10 * x + (uint64_t)(*p++ - '0');
        if (p == q || x > 0xFFFFFFFFULL) return 1;
        if (m == room) return -1;  /* cannot happen: runs_bound */
        out[m++] = (uint32_t)x;
        while (IS_SPACE(*p)) p++;
        if (*p == ',') { p++; continue; }
        if (p == last) break;
        return 1;
    }
    r->n += m;
    return 0;
}

/* f[0..6]: total, area, foreground box x0, x1, y0, y1 of column-major runs v[0:m] with h rows,
   whether a run after the first is 0 */
static void frame_stats(const uint32_t *v, Py_ssize_t m, int64_t h, int64_t *f) {
    int64_t total = 0, area = 0, zero = 0, col = 0, col_start = 0;
    int64_t x0 = INT64_MAX, x1 = 0, y0 = INT64_MAX, y1 = 0;
    for (Py_ssize_t j = 0; j < m; j++) {
        int64_t run = v[j];
        if ((j & 1) && run) {  /* foreground pixels total .. total + run - 1 */
            if (total - col_start >= h) {  /* the column of `total`, mostly with no division */
                col = total - col_start < 2 * h ? col + 1 : total / h;
                col_start = col * h;
            }
            int64_t r0 = total - col_start, r1 = r0 + run;  /* its rows, if in one column */
            if (r1 > h) {
                r0 = 0;
                r1 = h;
            }
            area += run;
            x0 = col < x0 ? col : x0;
            x1 = (total + run - 1) / h + 1;
            y0 = r0 < y0 ? r0 : y0;
            y1 = r1 > y1 ? r1 : y1;
        }
        zero |= (j > 0 && run == 0);
        total += run;
    }
    f[0] = total;
    f[1] = area;
    f[2] = area ? x0 : 0;
    f[3] = x1;
    f[4] = area ? y0 : 0;
    f[5] = y1;
    f[6] = zero;
}

static PyObject *decode(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *items;
    Py_buffer heights;
    int allow_arrays;
    if (!PyArg_ParseTuple(args, "Oy*p", &items, &heights, &allow_arrays)) return NULL;
    const int64_t *hs = heights.buf;
    PyObject *seq = PySequence_Fast(items, "decode() takes a sequence of buffers");
    if (!seq) { PyBuffer_Release(&heights); return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (heights.len != n * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "one height per fragment expected");
        PyBuffer_Release(&heights);
        Py_DECREF(seq);
        return NULL;
    }
    Runs r = {NULL, 0, 0};
    PyObject *runs = NULL, *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {  /* pass 1: size the output once */
        Py_buffer view;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &view, PyBUF_SIMPLE)) goto fail;
        r.cap += runs_bound(view.buf, view.len);
        PyBuffer_Release(&view);
    }
    runs = PyByteArray_FromStringAndSize(NULL, r.cap * sizeof(uint32_t));
    if (!runs) goto fail;
    r.v = (uint32_t *)PyByteArray_AS_STRING(runs);
    PyObject *starts = PyBytes_FromStringAndSize(NULL, (n + 1) * sizeof(int64_t));
    PyObject *status = PyBytes_FromStringAndSize(NULL, n);
    PyObject *stats = PyBytes_FromStringAndSize(NULL, 7 * n * sizeof(int64_t));
    if (!starts || !status || !stats) goto done;
    int64_t *fs = (int64_t *)PyBytes_AS_STRING(stats);
    int64_t *st = (int64_t *)PyBytes_AS_STRING(starts);
    char *ok = PyBytes_AS_STRING(status);
    st[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &view, PyBUF_SIMPLE)) goto done;
        const char *s = view.buf;
        Py_ssize_t len = view.len, first = r.n;
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\n')) len--;
        int rc = 1;
        if (len >= 2 && s[0] == '"' && s[len - 1] == '"')
            rc = decode_string(s + 1, len - 2, &r);
        else if (len >= 2 && s[0] == '[')
            rc = allow_arrays ? decode_array(s, len, &r) : 3;
        PyBuffer_Release(&view);
        if (rc < 0) { PyErr_SetString(PyExc_RuntimeError, "run bound exceeded"); goto done; }
        if (rc) r.n = first;
        ok[i] = (char)rc;
        st[i + 1] = r.n;
        frame_stats(r.v + first, r.n - first, hs[i] > 0 ? hs[i] : 1, fs + 7 * i);
    }
    if (PyByteArray_Resize(runs, r.n * sizeof(uint32_t)) == 0)
        out = Py_BuildValue("(OOOO)", runs, starts, status, stats);
done:
    Py_XDECREF(starts);
    Py_XDECREF(status);
    Py_XDECREF(stats);
fail:
    Py_XDECREF(runs);
    Py_DECREF(seq);
    PyBuffer_Release(&heights);
    return out;
}

/* |A & B| for foregrounds that can only meet in positions [lo, hi) */
static int64_t intersect_span(const uint32_t *A, Py_ssize_t ma, const uint32_t *B, Py_ssize_t mb,
                              int64_t lo, int64_t hi) {
    Py_ssize_t a = 0, b = 0;
    int64_t pa = 0, pb = 0, inter = 0;  /* run a covers [pa, pa + A[a]) */
    while (a < ma && pa + A[a] <= lo) pa += A[a++];
    while (b < mb && pb + B[b] <= lo) pb += B[b++];
    while (a < ma && b < mb && pa < hi && pb < hi) {
        int64_t ea = pa + A[a], eb = pb + B[b];
        if ((a & 1) && (b & 1)) inter += (ea < eb ? ea : eb) - (pa > pb ? pa : pb);
        if (ea <= eb) { pa = ea; a++; } else { pb = eb; b++; }
    }
    return inter;
}

static PyObject *merge_areas(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer ra_b, sa_b, rb_b, sb_b, a_b, b_b, lo_b, hi_b, pair_b, bound_b, limit_b;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*y*", &ra_b, &sa_b, &rb_b, &sb_b, &a_b, &b_b,
                          &lo_b, &hi_b, &pair_b, &bound_b, &limit_b))
        return NULL;
    const uint32_t *ra = ra_b.buf, *rb = rb_b.buf;
    const int64_t *sa = sa_b.buf, *sb = sb_b.buf, *fa = a_b.buf, *fb = b_b.buf;
    const int64_t *lo = lo_b.buf, *hi = hi_b.buf, *pair = pair_b.buf, *bound = bound_b.buf;
    const int64_t *limit = limit_b.buf;
    Py_ssize_t na = sa_b.len / 8 - 1, nb = sb_b.len / 8 - 1, n = a_b.len / 8;
    PyObject *inter = NULL, *uni = NULL, *out = NULL;
    if (b_b.len / 8 != n || lo_b.len / 8 != n || hi_b.len / 8 != n || pair_b.len / 8 != n ||
        bound_b.len / 8 != n || limit_b.len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "per-frame arrays differ in length");
        goto done;
    }
    int64_t current = -1, slack = 0;
    int certainly_below = 0;
    inter = PyBytes_FromStringAndSize(NULL, n * 8);
    uni = PyBytes_FromStringAndSize(NULL, n * 8);
    if (!inter || !uni) goto done;
    int64_t *oi = (int64_t *)PyBytes_AS_STRING(inter), *ou = (int64_t *)PyBytes_AS_STRING(uni);
    for (Py_ssize_t k = 0; k < n; k++) {
        int64_t x = fa[k], y = fb[k];
        if (x < 0 || y < 0 || x >= na || y >= nb || sa[x] < 0 || sa[x] > sa[x + 1] ||
            sb[y] < 0 || sb[y] > sb[y + 1] || sa[x + 1] > ra_b.len / 4 ||
            sb[y + 1] > rb_b.len / 4) {
            PyErr_SetString(PyExc_IndexError, "frame index or run slice out of range");
            goto done;
        }
        if (pair[k] != current) { current = pair[k]; slack = 0; certainly_below = 0; }
        if (certainly_below) { oi[k] = ou[k] = -2; continue; }
        const uint32_t *A = ra + sa[x], *B = rb + sb[y];
        Py_ssize_t ma = sa[x + 1] - sa[x], mb = sb[y + 1] - sb[y], a = 1, b = 1;
        if (lo[k] >= 0) {
            oi[k] = intersect_span(A, ma, B, mb, lo[k], hi[k]);
            ou[k] = -1;
            slack += bound[k] - oi[k];
            certainly_below = 3 * slack > limit[k];
            continue;
        }
        /* rleMerge's loop; ca/cb/ct are uint32 as in pycocotools */
        uint32_t ca = ma ? A[0] : 0, cb = mb ? B[0] : 0, c, ct = 1;
        int va = 0, vb = 0;
        uint64_t i = 0, u = 0;
        while (ct > 0) {
            c = ca < cb ? ca : cb;
            if (va && vb) i += c;
            if (va || vb) u += c;
            ct = 0;
            ca -= c;
            if (!ca && a < ma) { ca = A[a++]; va = !va; }
            ct += ca;
            cb -= c;
            if (!cb && b < mb) { cb = B[b++]; vb = !vb; }
            ct += cb;
            /* a list ran out before the other: pycocotools loops forever here (the caller's
               run-total check makes this unreachable) */
            if (c == 0 && ((ca == 0 && a >= ma) || (cb == 0 && b >= mb))) break;
        }
        oi[k] = (int64_t)(uint32_t)i;  /* rleArea sums in uint32 */
        ou[k] = (int64_t)(uint32_t)u;
    }
    out = Py_BuildValue("(OO)", inter, uni);
done:
    Py_XDECREF(inter);
    Py_XDECREF(uni);
    PyBuffer_Release(&ra_b);
    PyBuffer_Release(&sa_b);
    PyBuffer_Release(&rb_b);
    PyBuffer_Release(&sb_b);
    PyBuffer_Release(&a_b);
    PyBuffer_Release(&b_b);
    PyBuffer_Release(&lo_b);
    PyBuffer_Release(&hi_b);
    PyBuffer_Release(&pair_b);
    PyBuffer_Release(&bound_b);
    PyBuffer_Release(&limit_b);
    return out;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS, "Run lengths of JSON RLE counts fragments."},
    {"merge_areas", merge_areas, METH_VARARGS, "rleMerge intersection and union areas."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ytvis_rle", NULL, -1, methods};

PyMODINIT_FUNC PyInit__ytvis_rle(void) { return PyModule_Create(&module); }
