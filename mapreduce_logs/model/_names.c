/* Lists of byte strings kept end to end (a blob and the end offset of each string), handled
 * without a Python object per string: their CRC-32s, a reordering, and their numbering (each
 * distinct string once, in order of first appearance). The pure-Python versions are in
 * names.py; the tests hold both equal.
 *
 * Every input comes from Python: the offsets are checked (ascending, within the blob) before any
 * byte is read, and indices are checked against the number of strings. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* --- arguments ------------------------------------------------------------------------------ */

typedef struct {
    Py_buffer blob, ends;
    const unsigned char *bytes;
    const int64_t *end;
    size_t n;
} Strings;

static void strings_release(Strings *s) {
    PyBuffer_Release(&s->blob);
    PyBuffer_Release(&s->ends);
}

/* Reads (blob, ends) into ``s``: ``ends`` holds int64 end offsets, ascending, the last at most
 * the blob's length. 0 on success; -1 with an exception set (and nothing to release). */
static int strings_get(PyObject *blob, PyObject *ends, Strings *s) {
    if (PyObject_GetBuffer(blob, &s->blob, PyBUF_SIMPLE) < 0) return -1;
    if (PyObject_GetBuffer(ends, &s->ends, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&s->blob);
        return -1;
    }
    if (s->ends.len % (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "ends: not a whole number of int64");
        goto bad;
    }
    s->bytes = s->blob.buf;
    s->end = s->ends.buf;
    s->n = (size_t)s->ends.len / sizeof(int64_t);
    int64_t previous = 0;
    for (size_t i = 0; i < s->n; i++) {
        int64_t e = s->end[i];
        if (e < previous || e > (int64_t)s->blob.len) {
            PyErr_SetString(PyExc_ValueError, "ends: not ascending within the blob");
            goto bad;
        }
        previous = e;
    }
    return 0;
bad:
    strings_release(s);
    return -1;
}

static inline size_t start_of(const Strings *s, size_t i) {
    return i ? (size_t)s->end[i - 1] : 0;
}

/* A new bytes object of ``n`` slots of ``size`` bytes, filled by the caller through ``*out``. */
static PyObject *slots(size_t n, size_t size, void **out) {
    if (n > (size_t)PY_SSIZE_T_MAX / size) return PyErr_NoMemory();
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * size));
    if (b) *out = PyBytes_AS_STRING(b);
    return b;
}

/* --- CRC-32 (the one of zlib.crc32) ------------------------------------------------------------ */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static inline uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* crc32s(blob, ends) -> bytes of one uint32 per string: zlib.crc32 of each. */
static PyObject *names_crc32s(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *blob, *ends;
    if (!PyArg_ParseTuple(args, "OO", &blob, &ends)) return NULL;
    Strings s;
    if (strings_get(blob, ends, &s) < 0) return NULL;
    void *buf;
    PyObject *out = slots(s.n, sizeof(uint32_t), &buf);
    if (out) {
        uint32_t *crc = buf;
        for (size_t i = 0; i < s.n; i++) {
            size_t a = start_of(&s, i);
            crc[i] = crc32_of(s.bytes + a, (size_t)s.end[i] - a);
        }
    }
    strings_release(&s);
    return out;
}

/* --- reordering -------------------------------------------------------------------------------- */

/* take(blob, ends, order) -> (blob, ends) of the strings at the int64 indices ``order``. */
static PyObject *names_take(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *blob, *ends, *order_obj;
    if (!PyArg_ParseTuple(args, "OOO", &blob, &ends, &order_obj)) return NULL;
    Strings s;
    if (strings_get(blob, ends, &s) < 0) return NULL;
    Py_buffer order;
    if (PyObject_GetBuffer(order_obj, &order, PyBUF_SIMPLE) < 0) {
        strings_release(&s);
        return NULL;
    }
    PyObject *result = NULL, *out_blob = NULL, *out_ends = NULL;
    const int64_t *at = order.buf;
    size_t m = (size_t)order.len / sizeof(int64_t), total = 0;
    if (order.len % (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "order: not a whole number of int64");
        goto done;
    }
    for (size_t j = 0; j < m; j++) {
        if (at[j] < 0 || (uint64_t)at[j] >= s.n) {
            PyErr_SetString(PyExc_IndexError, "order: index out of range");
            goto done;
        }
        size_t i = (size_t)at[j];
        total += (size_t)s.end[i] - start_of(&s, i); /* each at most the blob: no overflow */
        if (total > (size_t)PY_SSIZE_T_MAX) {
            PyErr_NoMemory();
            goto done;
        }
    }
    void *bbuf, *ebuf;
    if (!(out_blob = slots(total, 1, &bbuf)) || !(out_ends = slots(m, sizeof(int64_t), &ebuf)))
        goto done;
    unsigned char *dst = bbuf;
    int64_t *dst_end = ebuf;
    size_t pos = 0;
    for (size_t j = 0; j < m; j++) {
        size_t i = (size_t)at[j], a = start_of(&s, i), len = (size_t)s.end[i] - a;
        if (len) memcpy(dst + pos, s.bytes + a, len);
        pos += len;
        dst_end[j] = (int64_t)pos;
    }
    result = PyTuple_Pack(2, out_blob, out_ends);
done:
    Py_XDECREF(out_blob);
    Py_XDECREF(out_ends);
    PyBuffer_Release(&order);
    strings_release(&s);
    return result;
}

/* --- numbering --------------------------------------------------------------------------------- */

static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t hash_of(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n) memcpy(&w, p, n);
    return mix(h ^ w ^ ((uint64_t)n << 56));
}

/* number(blob, ends) -> (firsts, index), int64 bytes both: ``firsts`` the position of the first
 * appearance of each distinct string, in order of first appearance; ``index`` each string's
 * number among them. */
static PyObject *names_number(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *blob, *ends;
    if (!PyArg_ParseTuple(args, "OO", &blob, &ends)) return NULL;
    Strings s;
    if (strings_get(blob, ends, &s) < 0) return NULL;
    PyObject *result = NULL, *index_obj = NULL, *firsts_obj = NULL;
    uint64_t *table = NULL; /* (high 32 bits of the hash) << 32 | (number + 1); 0 is empty */
    size_t cap = 16;
    while (cap < 2 * s.n) {
        if (cap > SIZE_MAX / 4 / sizeof(uint64_t)) {
            PyErr_NoMemory();
            goto done;
        }
        cap <<= 1;
    }
    if (s.n > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "number: more than 2**32 strings");
        goto done;
    }
    void *ibuf, *fbuf;
    if (!(index_obj = slots(s.n, sizeof(int64_t), &ibuf)) ||
        !(firsts_obj = slots(s.n, sizeof(int64_t), &fbuf)))
        goto done;
    if (!(table = calloc(cap, sizeof(uint64_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *index = ibuf, *firsts = fbuf;
    size_t mask = cap - 1, distinct = 0;
    for (size_t i = 0; i < s.n; i++) {
        size_t a = start_of(&s, i), len = (size_t)s.end[i] - a;
        const unsigned char *p = s.bytes + a;
        uint64_t h = hash_of(p, len), high = h >> 32;
        size_t slot = (size_t)h & mask;
        for (;;) {
            uint64_t v = table[slot];
            if (!v) {
                table[slot] = high << 32 | (uint64_t)(distinct + 1);
                firsts[distinct] = (int64_t)i;
                index[i] = (int64_t)distinct++;
                break;
            }
            if (v >> 32 == high) {
                size_t number = (size_t)(v & 0xFFFFFFFFu) - 1, f = (size_t)firsts[number];
                size_t fa = start_of(&s, f), flen = (size_t)s.end[f] - fa;
                if (flen == len && (len == 0 || memcmp(s.bytes + fa, p, len) == 0)) {
                    index[i] = (int64_t)number;
                    break;
                }
            }
            slot = (slot + 1) & mask;
        }
    }
    if (_PyBytes_Resize(&firsts_obj, (Py_ssize_t)(distinct * sizeof(int64_t))) < 0) goto done;
    result = PyTuple_Pack(2, firsts_obj, index_obj);
done:
    free(table);
    Py_XDECREF(index_obj);
    Py_XDECREF(firsts_obj);
    strings_release(&s);
    return result;
}

static PyMethodDef methods[] = {
    {"crc32s", names_crc32s, METH_VARARGS, "crc32s(blob, ends) -> uint32 bytes: zlib.crc32 of each"},
    {"take", names_take, METH_VARARGS, "take(blob, ends, order) -> (blob, ends) in that order"},
    {"number", names_number, METH_VARARGS,
     "number(blob, ends) -> (firsts, index): each distinct string once, by first appearance"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_names", "Byte strings end to end, without an object each.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__names(void) {
    crc_init();
    return PyModule_Create(&module);
}
