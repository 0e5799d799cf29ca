/*
 * Compiled kernels of the wsovvis YouTube-VIS scorer (see ytvis_packed.py for the Python side).
 *
 * pack_json(data)  scans the raw bytes of a YTVIS JSON document once. Every
 *     "segmentations": [ null | {"size": [h, w], "counts": "<compressed>" | [run, ...]}, ... ]
 *   value becomes the string "#<track>", its frames rows of flat tables (kind: 0 null, 1 string,
 *   2 run lengths, + 4 when "counts" was written before "size"; h, w, offset, length) and its
 *   masks bytes (compressed strings, unescaped) or uint32 runs (uncompressed lists). Every
 *   "areas": [int | null, ...] value becomes "#<list>" with its values in an int64 table.
 *   Anything else (polygons, floats, extra keys, escapes other than \\ and \/, invalid syntax)
 *   keeps its original text, so the JSON parser sees and reports it unchanged. Returns
 *   None when such a key already holds a string (a marker would be ambiguous).
 *
 * video_iou(...)  computes, for a batch of videos, the official video IoU of every
 *   (detection, GT) pair of the same group: integer intersections and unions summed over the
 *   zip of the two frame lists, one float64 division. Masks are decoded one frame at a time,
 *   exactly as pycocotools' rleFrString does. A video whose masks pycocotools would treat in an
 *   unusual way (run lengths not summing to h * w, a frame of another size, characters outside
 *   the RLE alphabet, values needing more than 6 characters) is flagged and scored by the Python
 *   path instead, so results are always those of the official code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ growable buffers */

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (extra > ((size_t)PY_SSIZE_T_MAX >> 1) - b->n) return -1; /* no size_t wrap-around */
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *src, size_t len) {
    if (len == 0) return 0;
    if (buf_reserve(b, len)) return -1;
    memcpy(b->p + b->n, src, len);
    b->n += len;
    return 0;
}

/* A read-only Python buffer that owns malloc'd memory (wrapped by numpy.frombuffer). */
typedef struct {
    PyObject_HEAD char *p;
    Py_ssize_t n;
} Owned;

static void owned_dealloc(Owned *self) {
    free(self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int owned_getbuffer(Owned *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->n ? self->p : (char *)"", self->n, 1,
                             flags);
}

static PyBufferProcs owned_as_buffer = {(getbufferproc)owned_getbuffer, NULL};

static PyTypeObject OwnedType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "wsovvis.evaluation._ytvis_kernels.Owned",
    .tp_basicsize = sizeof(Owned),
    .tp_dealloc = (destructor)owned_dealloc,
    .tp_as_buffer = &owned_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only buffer owning a table built by pack_json.",
};

static PyObject *owned_from_buf(Buf *b) {
    Owned *o = PyObject_New(Owned, &OwnedType);
    if (!o) return NULL;
    o->p = b->p;
    o->n = (Py_ssize_t)b->n;
    b->p = NULL;
    b->n = b->cap = 0;
    return (PyObject *)o;
}

/* ------------------------------------------------------------------ JSON scanning */

#define MAX_DEPTH 1000 /* below orjson's nesting limit (1024) */

typedef struct {
    const unsigned char *d;
    size_t n;
    Buf track_start, kind, fh, fw, foff, flen, str, runs, area_start, area_vals;
} Pack;

#define PACK_TABLES 10

/* The tables of a Pack, in the order pack_json returns them. */
static void pack_tables(Pack *p, Buf *all[PACK_TABLES]) {
    Buf *t[PACK_TABLES] = {&p->track_start, &p->kind, &p->fh,   &p->fw,         &p->foff,
                           &p->flen,        &p->str,  &p->runs, &p->area_start, &p->area_vals};
    memcpy(all, t, sizeof(t));
}

static size_t skip_ws(const unsigned char *d, size_t n, size_t i) {
    while (i < n && (d[i] == ' ' || d[i] == '\n' || d[i] == '\r' || d[i] == '\t')) i++;
    return i;
}

/* Strict JSON non-negative integer <= max; returns the end position or 0 on failure. */
static size_t parse_uint(const unsigned char *d, size_t n, size_t i, uint64_t max, uint64_t *out) {
    if (i >= n || d[i] < '0' || d[i] > '9') return 0;
    uint64_t v = 0;
    size_t s = i;
    while (i < n && d[i] >= '0' && d[i] <= '9') {
        v = v * 10 + (uint64_t)(d[i] - '0');
        if (v > max) return 0;
        i++;
    }
    if (d[s] == '0' && i - s > 1) return 0; /* leading zero: not JSON */
    if (i < n && (d[i] == '.' || d[i] == 'e' || d[i] == 'E')) return 0;
    *out = v;
    return i;
}

/* A key without escapes: returns the position after the closing quote or 0. */
static size_t parse_key(const unsigned char *d, size_t n, size_t i, const char *key, size_t len) {
    if (i + len + 2 > n || d[i] != '"' || memcmp(d + i + 1, key, len) || d[i + len + 1] != '"')
        return 0;
    return i + len + 2;
}

/* Compressed RLE string: appended (unescaped) to p->str; returns the end position or 0. */
static size_t parse_rle_string(Pack *p, size_t i, int64_t *off, int64_t *len) {
    const unsigned char *d = p->d;
    size_t n = p->n, start = p->str.n;
    if (i >= n || d[i] != '"') return 0;
    i++;
    size_t run = i;
    while (i < n && d[i] != '"') {
        unsigned char c = d[i];
        if (c < 0x20 || c >= 0x80) return 0;
        if (c == '\\') {
            if (i + 1 >= n || (d[i + 1] != '\\' && d[i + 1] != '/')) return 0;
            if (buf_put(&p->str, d + run, i - run) || buf_put(&p->str, d + i + 1, 1)) return 0;
            i += 2;
            run = i;
            continue;
        }
        i++;
    }
    if (i >= n || buf_put(&p->str, d + run, i - run)) return 0;
    *off = (int64_t)start;
    *len = (int64_t)(p->str.n - start);
    return i + 1;
}

/* Uncompressed run lengths [a, b, ...] appended to p->runs; returns the end position or 0.
 * The hot loop of a YTVIS GT file: strict JSON integers < 2**32, stored as uint32. */
static size_t parse_runs(Pack *p, size_t i, int64_t *off, int64_t *len) {
    const unsigned char *d = p->d;
    size_t n = p->n, start = p->runs.n / 4;
    if (i >= n || d[i] != '[') return 0;
    i = skip_ws(d, n, i + 1);
    if (i < n && d[i] == ']') goto done;
    for (;;) {
        if (buf_reserve(&p->runs, 4)) return 0;
        if (i >= n) return 0;
        size_t s = i;
        unsigned c = (unsigned)d[i] - '0';
        if (c > 9) return 0;
        uint64_t v = c;
        i++;
        while (i < n && (c = (unsigned)d[i] - '0') <= 9) {
            v = v * 10 + c;
            i++;
            if (i - s > 10) return 0;
        }
        if (v > 0xFFFFFFFFull || (d[s] == '0' && i - s > 1)) return 0;
        uint32_t u = (uint32_t)v;
        memcpy(p->runs.p + p->runs.n, &u, 4);
        p->runs.n += 4;
        if (i < n && d[i] == ',') {
            i++;
            if (i < n && d[i] == ' ') i++;
            if (i < n && (unsigned)d[i] - '0' > 9) i = skip_ws(d, n, i);
            continue;
        }
        i = skip_ws(d, n, i);
        if (i < n && d[i] == ',') {
            i = skip_ws(d, n, i + 1);
            continue;
        }
        if (i < n && d[i] == ']') break;
        return 0; /* '.', 'e', '-', anything else: not a plain uint32 list */
    }
done:
    *off = (int64_t)start;
    *len = (int64_t)(p->runs.n / 4 - start);
    return i + 1;
}

/* One frame row: kind, size, and the span of its counts in str (kind 1) or runs (kind 2);
 * returns nonzero when out of memory. */
static int push_frame(Pack *p, int8_t kind, int32_t h, int32_t w, int64_t off, int64_t len) {
    return buf_put(&p->kind, &kind, 1) || buf_put(&p->fh, &h, 4) || buf_put(&p->fw, &w, 4) ||
           buf_put(&p->foff, &off, 8) || buf_put(&p->flen, &len, 8);
}

/* One frame object {"size": [h, w], "counts": ...}; returns the end position or 0. */
static size_t parse_frame(Pack *p, size_t i) {
    const unsigned char *d = p->d;
    size_t n = p->n;
    int have_size = 0, have_counts = 0, counts_first = 0;
    uint64_t h = 0, w = 0;
    int64_t off = 0, len = 0;
    int8_t kind = 0;
    i = skip_ws(d, n, i + 1); /* after '{' */
    for (;;) {
        size_t k;
        if ((k = parse_key(d, n, i, "size", 4)) && !have_size) {
            i = skip_ws(d, n, k);
            if (i >= n || d[i] != ':') return 0;
            i = skip_ws(d, n, i + 1);
            if (i >= n || d[i] != '[') return 0;
            i = skip_ws(d, n, i + 1);
            if (!(i = parse_uint(d, n, i, 0x7FFFFFFF, &h))) return 0;
            i = skip_ws(d, n, i);
            if (i >= n || d[i] != ',') return 0;
            i = skip_ws(d, n, i + 1);
            if (!(i = parse_uint(d, n, i, 0x7FFFFFFF, &w))) return 0;
            i = skip_ws(d, n, i);
            if (i >= n || d[i] != ']') return 0;
            i++;
            have_size = 1;
        } else if ((k = parse_key(d, n, i, "counts", 6)) && !have_counts) {
            i = skip_ws(d, n, k);
            if (i >= n || d[i] != ':') return 0;
            i = skip_ws(d, n, i + 1);
            if (i < n && d[i] == '"') {
                kind = 1;
                i = parse_rle_string(p, i, &off, &len);
            } else {
                kind = 2;
                i = parse_runs(p, i, &off, &len);
            }
            if (!i) return 0;
            have_counts = 1;
            counts_first = !have_size;
        } else {
            return 0;
        }
        i = skip_ws(d, n, i);
        if (i < n && d[i] == ',') {
            i = skip_ws(d, n, i + 1);
            continue;
        }
        if (i < n && d[i] == '}' && have_size && have_counts) break;
        return 0;
    }
    kind |= (int8_t)(counts_first << 2); /* key order, to rebuild the object as written */
    return push_frame(p, kind, (int32_t)h, (int32_t)w, off, len) ? 0 : i + 1;
}

static int push_null_frame(Pack *p) { return push_frame(p, 0, 0, 0, 0, 0); }

/* A JSON array whose elements are read by elem (which returns the position after the element
 * or 0); returns the position after ']' or 0. */
static size_t parse_list(Pack *p, size_t i, size_t (*elem)(Pack *, size_t)) {
    const unsigned char *d = p->d;
    size_t n = p->n;
    i = skip_ws(d, n, i + 1); /* after '[' */
    if (i < n && d[i] == ']') return i + 1;
    for (;;) {
        if (!(i = elem(p, i))) return 0;
        i = skip_ws(d, n, i);
        if (i < n && d[i] == ',') {
            i = skip_ws(d, n, i + 1);
            continue;
        }
        return i < n && d[i] == ']' ? i + 1 : 0;
    }
}

/* One "segmentations" element: null or a frame object. */
static size_t track_frame(Pack *p, size_t i) {
    if (i + 4 <= p->n && !memcmp(p->d + i, "null", 4)) return push_null_frame(p) ? 0 : i + 4;
    return i < p->n && p->d[i] == '{' ? parse_frame(p, i) : 0;
}

/* One "areas" element: an integer, or null (stored as 0). */
static size_t area_value(Pack *p, size_t i) {
    int64_t v = 0;
    if (i + 4 <= p->n && !memcmp(p->d + i, "null", 4)) {
        i += 4;
    } else {
        int neg = i < p->n && p->d[i] == '-';
        uint64_t u;
        if (!(i = parse_uint(p->d, p->n, i + neg, 1ull << 40, &u))) return 0;
        v = neg ? -(int64_t)u : (int64_t)u;
    }
    return buf_put(&p->area_vals, &v, 8) ? 0 : i;
}

/* A "segmentations" array; on success one track is added. Returns the end position or 0. */
static size_t parse_track(Pack *p, size_t i) {
    if (!(i = parse_list(p, i, track_frame))) return 0;
    int64_t frames = (int64_t)(p->kind.n);
    return buf_put(&p->track_start, &frames, 8) ? 0 : i;
}

/* An "areas" array of integers / nulls (null -> 0). Returns the end position or 0. */
static size_t parse_areas(Pack *p, size_t i) {
    if (!(i = parse_list(p, i, area_value))) return 0;
    int64_t count = (int64_t)(p->area_vals.n / 8);
    return buf_put(&p->area_start, &count, 8) ? 0 : i;
}

static void pack_free(Pack *p) {
    Buf *all[PACK_TABLES];
    pack_tables(p, all);
    for (int k = 0; k < PACK_TABLES; k++) free(all[k]->p);
}

static PyObject *pack_json(PyObject *self, PyObject *args) {
    Py_buffer in;
    if (!PyArg_ParseTuple(args, "y*", &in)) return NULL;
    Pack p;
    memset(&p, 0, sizeof(p));
    p.d = (const unsigned char *)in.buf;
    p.n = (size_t)in.len;
    Buf out = {0};
    PyObject *result = NULL;
    int64_t zero = 0, ambiguous = 0;
    if (buf_put(&p.track_start, &zero, 8) || buf_put(&p.area_start, &zero, 8)) goto nomem;
    const unsigned char *d = p.d;
    size_t n = p.n, i = 0, copied = 0;
    Py_BEGIN_ALLOW_THREADS;
    /* nesting depth outside strings: replacing a list by a marker makes the document shallower,
     * which must not turn one too deep for the JSON parser into an accepted one */
    long depth = 0, max_depth = 0;
    while (i < n) {
        const unsigned char *q = memchr(d + i, '"', n - i);
        size_t s = q ? (size_t)(q - d) : n;
        for (size_t k = i; k < s; k++) {
            depth += (d[k] == '[' || d[k] == '{') - (d[k] == ']' || d[k] == '}');
            if (depth > max_depth) max_depth = depth;
        }
        if (!q) break;
        size_t j = s + 1;
        int esc = 0;
        while (j < n && d[j] != '"') {
            if (d[j] == '\\') {
                esc = 1;
                j++;
            }
            j++;
        }
        if (j >= n) break;
        size_t klen = j - s - 1;
        int key = 0;
        if (esc) { /* an escaped key could decode to one of ours: no packing at all */
            size_t c = skip_ws(d, n, j + 1);
            if (c < n && d[c] == ':') {
                ambiguous = 1;
                break;
            }
        }
        if (!esc && klen == 13 && !memcmp(d + s + 1, "segmentations", 13)) key = 1;
        if (!esc && klen == 5 && !memcmp(d + s + 1, "areas", 5)) key = 2;
        i = j + 1;
        if (!key) continue;
        size_t c = skip_ws(d, n, i);
        if (c >= n || d[c] != ':') continue;
        size_t v = skip_ws(d, n, c + 1);
        if (v < n && d[v] == '"') {
            ambiguous = 1;
            break;
        }
        if (v >= n || d[v] != '[') continue;
        /* remember the table sizes to undo a partial parse */
        size_t saved[PACK_TABLES];
        Buf *all[PACK_TABLES];
        pack_tables(&p, all);
        for (int k = 0; k < PACK_TABLES; k++) saved[k] = all[k]->n;
        size_t end = key == 1 ? parse_track(&p, v) : parse_areas(&p, v);
        if (!end) {
            for (int k = 0; k < PACK_TABLES; k++) all[k]->n = saved[k];
            i = v; /* keep the original text; go on scanning inside it */
            continue;
        }
        char marker[32];
        long long index = key == 1 ? (long long)(p.track_start.n / 8) - 2
                                   : (long long)(p.area_start.n / 8) - 2;
        int mlen = snprintf(marker, sizeof(marker), "\"#%lld\"", index);
        if (buf_put(&out, d + copied, v - copied) || buf_put(&out, marker, (size_t)mlen)) {
            ambiguous = -1;
            break;
        }
        copied = i = end;
        if (depth + (key == 1 ? 3 : 1) > max_depth) max_depth = depth + (key == 1 ? 3 : 1);
    }
    if (ambiguous == 0 && max_depth > MAX_DEPTH) ambiguous = 1; /* the parser decides alone */
    if (ambiguous == 0 && buf_put(&out, d + copied, n - copied)) ambiguous = -1;
    Py_END_ALLOW_THREADS;
    if (ambiguous < 0) goto nomem;
    if (ambiguous) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto cleanup;
    }
    PyObject *text = PyBytes_FromStringAndSize(out.p ? out.p : "", (Py_ssize_t)out.n);
    if (!text) goto cleanup;
    result = PyTuple_New(PACK_TABLES + 1);
    if (!result) {
        Py_DECREF(text);
        goto cleanup;
    }
    PyTuple_SET_ITEM(result, 0, text);
    Buf *tabs[PACK_TABLES];
    pack_tables(&p, tabs);
    for (int k = 0; k < PACK_TABLES; k++) {
        PyObject *o = owned_from_buf(tabs[k]);
        if (!o) {
            Py_CLEAR(result);
            goto cleanup;
        }
        PyTuple_SET_ITEM(result, k + 1, o);
    }
    goto cleanup;
nomem:
    PyErr_NoMemory();
cleanup:
    free(out.p);
    pack_free(&p);
    PyBuffer_Release(&in);
    return result;
}

#include "_ytvis_iou.h"
#include "_ytvis_accumulate.h"

static PyMethodDef methods[] = {
    {"pack_json", pack_json, METH_VARARGS,
     "pack_json(data: bytes) -> (text, track_start, kind, h, w, off, len, str, runs, "
     "area_start, area_vals) or None."},
    {"video_iou", video_iou, METH_VARARGS, VIDEO_IOU_DOC},
    {"accumulate", accumulate, METH_VARARGS, ACCUMULATE_DOC},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ytvis_kernels",
                                    "Compiled kernels of the wsovvis YTVIS scorer.", -1, methods};

PyMODINIT_FUNC PyInit__ytvis_kernels(void) {
    if (PyType_Ready(&OwnedType) < 0) return NULL;
    return PyModule_Create(&module);
}
