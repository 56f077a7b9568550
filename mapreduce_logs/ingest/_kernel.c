/* The mapper's hot loop in C: a block of complete lines in, counts in native tables out.
 *
 * A Kernel classifies each line exactly as parse.parse_line does (docs/input.md: fields split
 * on ASCII whitespace, the whole timestamp grammar with fractions and offsets, levels, UTF-8 of
 * service and user) and counts it without making a Python object. It stops and hands a line
 * back to Python only when Python has to see it: an unknown level token (its counter and
 * examples are Python's), a line over MAX_LINE bytes, a malformed line while its reason still
 * wants examples, and a valid line that is its segment's first or that must be given as an
 * example of time_went_backwards / future_timestamp. ``drain`` returns the counts as the
 * dicts and Counters of a Partial and empties the tables.
 *
 * The input is untrusted: every read is bounded by the line's end, which is bounded by the
 * buffer. Timestamps need 128 bits (year 9999 in nanoseconds overflows 64).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifndef __SIZEOF_INT128__
#error "the kernel needs 128-bit integers"
#endif

typedef __int128 i128;

#define MAX_LINE 65536
#define NS 1000000000LL
#define MIN_SECONDS (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define END_SECONDS 253402300800LL   /* 10000-01-01T00:00:00Z */

enum { DONE = 0, LINE = 1, ORDER = 2 };
enum { WANT_BACKWARDS = 1, WANT_FUTURE = 2, WANT_TOO_FEW = 4, WANT_BAD_TS = 8, WANT_BAD_ENC = 16 };
enum { R_TOO_FEW = 0, R_BAD_TS = 1, R_BAD_ENC = 2, N_REASONS = 3 };
static const char *const REASON_NAMES[N_REASONS] = {"too_few_fields", "bad_timestamp",
                                                    "bad_encoding"};
static const int REASON_WANT[N_REASONS] = {WANT_TOO_FEW, WANT_BAD_TS, WANT_BAD_ENC};

#define N_LEVELS 8
static const char *const LEVEL_NAMES[N_LEVELS] = {"TRACE", "DEBUG",    "INFO", "NOTICE",
                                                  "WARN",  "ERROR", "CRITICAL", "FATAL"};
#define FIRST_ERROR_LEVEL 5 /* ERROR, CRITICAL, FATAL */

/* --- hashing ------------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, p, n);
        h = (h ^ v) * 0x94d049bb133111ebULL;
    }
    return mix64(h);
}

/* --- a table of distinct byte strings: arena + entries + 8-byte slots ---------------------- */

typedef struct {
    uint64_t hash;
    size_t off;
    size_t len;
    uint64_t count;
} Entry;

typedef struct {
    unsigned char *arena;
    size_t arena_len, arena_cap;
    Entry *entries;
    size_t n, cap;
    uint64_t *slots; /* (high 32 bits of the hash) << 32 | (entry index + 1); 0 is empty */
    size_t mask;
} StrTable;

static void strtab_free(StrTable *t) {
    PyMem_Free(t->arena);
    PyMem_Free(t->entries);
    PyMem_Free(t->slots);
    memset(t, 0, sizeof *t);
}

static int strtab_grow_slots(StrTable *t) {
    size_t size = t->slots ? (t->mask + 1) * 2 : 1024;
    if (size > ((size_t)1 << 40)) return -1;
    uint64_t *slots = PyMem_Calloc(size, sizeof *slots);
    if (!slots) return -1;
    size_t mask = size - 1;
    for (size_t i = 0; i < t->n; i++) {
        uint64_t h = t->entries[i].hash;
        size_t s = (size_t)h & mask;
        while (slots[s]) s = (s + 1) & mask;
        slots[s] = ((h >> 32) << 32) | (uint64_t)(i + 1);
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->mask = mask;
    return 0;
}

/* Index of the string p[0:n), added with count 0 if new; -1 when out of memory. */
static Py_ssize_t strtab_find(StrTable *t, const unsigned char *p, size_t n) {
    if (!t->slots || (t->n + 1) * 2 > t->mask + 1) {
        if (t->n >= 0xFFFFFFFEu || strtab_grow_slots(t) < 0) return -1;
    }
    uint64_t h = hash_bytes(p, n);
    uint64_t tag = (h >> 32) << 32;
    size_t s = (size_t)h & t->mask;
    for (;;) {
        uint64_t slot = t->slots[s];
        if (!slot) break;
        if ((slot & 0xFFFFFFFF00000000ULL) == tag) {
            size_t i = (size_t)(slot & 0xFFFFFFFFu) - 1;
            Entry *e = &t->entries[i];
            if (e->hash == h && e->len == n && memcmp(t->arena + e->off, p, n) == 0)
                return (Py_ssize_t)i;
        }
        s = (s + 1) & t->mask;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 512;
        Entry *entries = PyMem_Realloc(t->entries, cap * sizeof *entries);
        if (!entries) return -1;
        t->entries = entries;
        t->cap = cap;
    }
    if (t->arena_cap - t->arena_len < n) {
        size_t cap = t->arena_cap ? t->arena_cap : 4096;
        while (cap - t->arena_len < n) cap *= 2;
        unsigned char *arena = PyMem_Realloc(t->arena, cap);
        if (!arena) return -1;
        t->arena = arena;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, p, n);
    Entry *e = &t->entries[t->n];
    e->hash = h;
    e->off = t->arena_len;
    e->len = n;
    e->count = 0;
    t->arena_len += n;
    t->slots[s] = tag | (uint64_t)(t->n + 1);
    return (Py_ssize_t)t->n++;
}

/* --- a table of (string index, window) -> two counts --------------------------------------- */

typedef struct {
    int64_t window;
    uint32_t id; /* string index + 1; 0 is empty */
    uint32_t pad;
    uint64_t a, b;
} Pair;

typedef struct {
    Pair *slots;
    size_t n, mask;
} PairTable;

static void pairs_free(PairTable *t) {
    PyMem_Free(t->slots);
    memset(t, 0, sizeof *t);
}

static inline size_t pair_hash(uint32_t id, int64_t window) {
    return (size_t)mix64(((uint64_t)id * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)window);
}

static int pairs_grow(PairTable *t) {
    size_t size = t->slots ? (t->mask + 1) * 2 : 1024;
    if (size > ((size_t)1 << 40)) return -1;
    Pair *slots = PyMem_Calloc(size, sizeof *slots);
    if (!slots) return -1;
    size_t mask = size - 1;
    if (t->slots) {
        for (size_t i = 0; i <= t->mask; i++) {
            Pair *p = &t->slots[i];
            if (!p->id) continue;
            size_t s = pair_hash(p->id, p->window) & mask;
            while (slots[s].id) s = (s + 1) & mask;
            slots[s] = *p;
        }
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->mask = mask;
    return 0;
}

static Pair *pairs_find(PairTable *t, uint32_t index, int64_t window) {
    if (!t->slots || (t->n + 1) * 2 > t->mask + 1) {
        if (pairs_grow(t) < 0) return NULL;
    }
    uint32_t id = index + 1;
    size_t s = pair_hash(id, window) & t->mask;
    for (;;) {
        Pair *p = &t->slots[s];
        if (!p->id) {
            p->id = id;
            p->window = window;
            t->n++;
            return p;
        }
        if (p->id == id && p->window == window) return p;
        s = (s + 1) & t->mask;
    }
}


/* --- (string index, window) hits, appended per line and sorted when read ------------------ */

/* Appending costs one sequential write a line, where a hash table keyed by (user, window) costs
 * a cache miss: on uniform traffic nearly every line is a new pair. The list is sorted (radix)
 * and its equal pairs summed when it is drained, or earlier when it grows past compact_at. */
typedef struct {
    int64_t window;
    uint32_t id;
    uint32_t count;
} Hit;

typedef struct {
    Hit *items, *spare;
    size_t n, cap, compact_at;
} HitList;

static size_t compact_threshold = (size_t)1 << 20;

static void hits_free(HitList *h) {
    PyMem_Free(h->items);
    PyMem_Free(h->spare);
    memset(h, 0, sizeof *h);
}

static int hit_cmp(const void *a, const void *b) {
    const Hit *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    if (x->window != y->window) return x->window < y->window ? -1 : 1;
    return 0;
}

/* Sorts items[0:n) by (id, window): LSD radix on 16-bit digits of id << 32 | window - low
 * when the windows span less than 2^32, else qsort. -1 when out of memory. */
static int hits_sort(HitList *h) {
    size_t n = h->n;
    if (n < 2) return 0;
    int64_t low = h->items[0].window, high = low;
    for (size_t i = 1; i < n; i++) {
        int64_t w = h->items[i].window;
        if (w < low) low = w;
        if (w > high) high = w;
    }
    if ((uint64_t)high - (uint64_t)low > 0xFFFFFFFFu || n < 256) {
        qsort(h->items, n, sizeof(Hit), hit_cmp);
        return 0;
    }
    if (!h->spare) {
        h->spare = PyMem_Malloc(h->cap * sizeof(Hit));
        if (!h->spare) return -1;
    }
    size_t *counts = PyMem_Malloc(65536 * sizeof(size_t));
    if (!counts) return -1;
    Hit *src = h->items, *dst = h->spare;
    for (int pass = 0; pass < 4; pass++) {
        int shift = 16 * pass;
        memset(counts, 0, 65536 * sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            uint64_t key = ((uint64_t)src[i].id << 32) | (uint32_t)((uint64_t)src[i].window - (uint64_t)low);
            counts[(key >> shift) & 0xFFFF]++;
        }
        if (counts[(((((uint64_t)src[0].id << 32) | (uint32_t)((uint64_t)src[0].window - (uint64_t)low))) >> shift) & 0xFFFF] == n)
            continue; /* every key has this digit */
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = counts[d];
            counts[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t key = ((uint64_t)src[i].id << 32) | (uint32_t)((uint64_t)src[i].window - (uint64_t)low);
            dst[counts[(key >> shift) & 0xFFFF]++] = src[i];
        }
        Hit *t = src;
        src = dst;
        dst = t;
    }
    PyMem_Free(counts);
    if (src != h->items) {
        h->spare = h->items;
        h->items = src;
    }
    return 0;
}

/* Sorts and sums equal pairs in place (a count stops at 2^32 - 1; the next entry goes on). */
static int hits_compact(HitList *h) {
    if (hits_sort(h) < 0) return -1;
    size_t out = 0;
    for (size_t i = 0; i < h->n; i++) {
        Hit *x = &h->items[i];
        if (out && h->items[out - 1].id == x->id && h->items[out - 1].window == x->window &&
            h->items[out - 1].count <= 0xFFFFFFFFu - x->count)
            h->items[out - 1].count += x->count;
        else
            h->items[out++] = *x;
    }
    h->n = out;
    return 0;
}

static int hits_add(HitList *h, uint32_t id, int64_t window) {
    if (!h->compact_at) h->compact_at = compact_threshold;
    if (h->n >= h->compact_at) {
        if (hits_compact(h) < 0) return -1;
        if (h->n * 2 > h->compact_at) h->compact_at = h->n * 2; /* mostly distinct: let it grow */
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        Hit *items = PyMem_Realloc(h->items, cap * sizeof(Hit));
        if (!items) return -1;
        h->items = items;
        h->cap = cap;
        PyMem_Free(h->spare);
        h->spare = NULL;
    }
    Hit *x = &h->items[h->n++];
    x->window = window;
    x->id = id;
    x->count = 1;
    return 0;
}

/* --- the grammar --------------------------------------------------------------------------- */

static inline int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline int digits(const unsigned char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static const int MONTH_DAYS[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* parse.parse_timestamp: 1 and the instant (seconds, nanoseconds) when s[0:n) is valid. */
static int parse_timestamp(const unsigned char *s, size_t n, int64_t *sec_out, int64_t *ns_out) {
    int year, month, day, hour, minute, second;
    if (n < 19) return 0;
    if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) || s[7] != '-' ||
        !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &hour) ||
        s[13] != ':' || !digits(s + 14, 2, &minute) || s[16] != ':' || !digits(s + 17, 2, &second))
        return 0;
    size_t i = 19;
    int64_t fraction = 0;
    if (i < n && s[i] == '.') {
        i++;
        int k = 0;
        while (i < n && k < 9 && is_digit(s[i])) {
            fraction = fraction * 10 + (s[i] - '0');
            i++;
            k++;
        }
        if (k == 0) return 0;
        for (; k < 9; k++) fraction *= 10;
    }
    int64_t offset = 0;
    if (i < n) {
        unsigned char c = s[i];
        if (c == 'Z' || c == 'z') {
            i++;
        } else if (c == '+' || c == '-') {
            int oh, om;
            size_t rest = n - i - 1;
            const unsigned char *o = s + i + 1;
            if (rest == 4) {
                if (!digits(o, 2, &oh) || !digits(o + 2, 2, &om)) return 0;
            } else if (rest == 5) {
                if (!digits(o, 2, &oh) || o[2] != ':' || !digits(o + 3, 2, &om)) return 0;
            } else {
                return 0;
            }
            if (oh > 23 || om > 59) return 0;
            offset = (int64_t)oh * 3600 + om * 60;
            if (c == '-') offset = -offset;
            i = n;
        } else {
            return 0;
        }
    }
    if (i != n) return 0;
    if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return 0;
    if (day > MONTH_DAYS[month]) {
        int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        if (!(month == 2 && day == 29 && leap)) return 0;
    }
    int64_t seconds = days_from_civil(year, month, day) * 86400 + (int64_t)hour * 3600 +
                      minute * 60 + second - offset;
    if (seconds < MIN_SECONDS || seconds >= END_SECONDS) return 0;
    *sec_out = seconds;
    *ns_out = fraction;
    return 1;
}

/* The level index of a token upper-cased (ASCII letters only, as bytes.upper), or -1. */
static int level_of(const unsigned char *s, size_t n) {
    if (n < 4 || n > 8) return -1;
    char up[8];
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        up[i] = (char)((c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    switch (n) {
    case 4:
        if (!memcmp(up, "INFO", 4)) return 2;
        if (!memcmp(up, "WARN", 4)) return 4;
        return -1;
    case 5:
        if (!memcmp(up, "TRACE", 5)) return 0;
        if (!memcmp(up, "DEBUG", 5)) return 1;
        if (!memcmp(up, "ERROR", 5)) return 5;
        if (!memcmp(up, "FATAL", 5)) return 7;
        return -1;
    case 6:
        return memcmp(up, "NOTICE", 6) ? -1 : 3;
    case 7:
        return memcmp(up, "WARNING", 7) ? -1 : 4;
    case 8:
        return memcmp(up, "CRITICAL", 8) ? -1 : 6;
    }
    return -1;
}

/* Strict UTF-8, as bytes.decode("utf-8"): no overlongs, no surrogates, nothing past U+10FFFF. */
static int is_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < need) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
        i += need + 1;
    }
    return 1;
}

/* --- the Kernel object ------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD int64_t window; /* seconds, >= 1 */
    i128 future_after;            /* ns: a line stamped later is future_timestamp */
    i128 skew;                    /* ns: --clock-skew */
    StrTable users, services;
    HitList user_windows;      /* (user, window) of every valid line, summed when drained */
    HitList user_errors;       /* (user, window) of every ERROR, CRITICAL and FATAL line */
    PairTable service_windows; /* (service, window) -> errors in a, other lines in b */
    uint64_t lines, valid, blank, backwards, future;
    uint64_t malformed[N_REASONS];
    uint64_t levels[N_LEVELS];
    uint64_t hours[24];
    int has_range;
    i128 min_ts, max_ts;
} Kernel;

static void kernel_clear(Kernel *k) {
    strtab_free(&k->users);
    strtab_free(&k->services);
    hits_free(&k->user_windows);
    hits_free(&k->user_errors);
    pairs_free(&k->service_windows);
    k->lines = k->valid = k->blank = k->backwards = k->future = 0;
    memset(k->malformed, 0, sizeof k->malformed);
    memset(k->levels, 0, sizeof k->levels);
    memset(k->hours, 0, sizeof k->hours);
    k->has_range = 0;
    k->min_ts = k->max_ts = 0;
}

/* A Python int of nanoseconds as i128, saturated far outside any timestamp's range. */
static int to_i128(PyObject *value, i128 *out) {
    PyObject *ns = PyLong_FromLongLong(NS);
    if (!ns) return -1;
    PyObject *qr = PyNumber_Divmod(value, ns);
    Py_DECREF(ns);
    if (!qr) return -1;
    int overflow = 0;
    long long q = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(qr, 0), &overflow);
    long long r = PyLong_AsLongLong(PyTuple_GET_ITEM(qr, 1));
    Py_DECREF(qr);
    if (PyErr_Occurred()) return -1;
    const long long limit = (long long)1 << 62;
    if (overflow > 0 || q > limit) q = limit;
    if (overflow < 0 || q < -limit) q = -limit;
    *out = (i128)q * NS + r;
    return 0;
}

static PyObject *from_i128(i128 v) {
    int64_t sec = (int64_t)(v / NS);
    int64_t rem = (int64_t)(v % NS);
    if (rem < 0) {
        rem += NS;
        sec -= 1;
    }
    PyObject *s = PyLong_FromLongLong(sec), *n = PyLong_FromLongLong(NS), *r = NULL, *out = NULL;
    PyObject *prod = (s && n) ? PyNumber_Multiply(s, n) : NULL;
    if (prod) r = PyLong_FromLongLong(rem);
    if (r) out = PyNumber_Add(prod, r);
    Py_XDECREF(s);
    Py_XDECREF(n);
    Py_XDECREF(prod);
    Py_XDECREF(r);
    return out;
}

static int Kernel_init(Kernel *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"window", "future_after", "skew", NULL};
    long long window;
    PyObject *future_after, *skew;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LOO", kwlist, &window, &future_after, &skew))
        return -1;
    if (window < 1) {
        PyErr_SetString(PyExc_ValueError, "window must be at least 1 second");
        return -1;
    }
    kernel_clear(self);
    self->window = window;
    if (to_i128(future_after, &self->future_after) < 0 || to_i128(skew, &self->skew) < 0)
        return -1;
    return 0;
}

static void Kernel_dealloc(Kernel *self) {
    kernel_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

typedef struct {
    size_t start, len;
} Field;

/* scan(buf, pos, end, last_ts, want) -> (status, start, stop, skipped, ts, last_ts)
 *
 * Counts the lines of buf[pos:end] (which ends with a newline) one after another, until one
 * needs Python or the block is done. ``skipped`` lines were counted here; then, for LINE, the
 * line buf[start:stop] is Python's to count whole; for ORDER, it was counted here but its order
 * checks (parse.Scanner.order with ``ts``) are Python's. ``last_ts`` is the segment's previous
 * valid instant in and out (None before the first). ``want`` says which examples Python still
 * wants (WANT_* bits). */
static PyObject *Kernel_scan(Kernel *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end;
    PyObject *last_obj;
    int want;
    if (!PyArg_ParseTuple(args, "y*nnOi", &view, &pos, &end, &last_obj, &want)) return NULL;
    PyObject *result = NULL;
    const unsigned char *buf = view.buf;
    int has_last = last_obj != Py_None;
    i128 last = 0;
    if (end < 0 || end > view.len || pos < 0 || pos > end ||
        (pos < end && buf[end - 1] != '\n')) {
        PyErr_SetString(PyExc_ValueError, "scan: the block must be buf[pos:end] ending in a newline");
        goto out;
    }
    if (has_last && to_i128(last_obj, &last) < 0) goto out;

    int status = DONE;
    size_t start = (size_t)end, stop = (size_t)end;
    uint64_t skipped = 0;
    i128 event_ts = 0;
    size_t p = (size_t)pos, stop_at = (size_t)end;
    const int64_t width = self->window;
    while (p < stop_at) {
        const unsigned char *nl = memchr(buf + p, '\n', stop_at - p);
        size_t le = nl ? (size_t)(nl - buf) : stop_at; /* always found: buf[end-1] is \n */
        size_t ls = p;
        if (le - ls > MAX_LINE) {
            status = LINE, start = ls, stop = le;
            break;
        }
        Field f[4];
        int nf = 0;
        size_t i = ls;
        while (nf < 4) {
            while (i < le && is_space(buf[i])) i++;
            if (i >= le) break;
            size_t b = i;
            while (i < le && !is_space(buf[i])) i++;
            f[nf].start = b;
            f[nf].len = i - b;
            nf++;
        }
        int reason = -1;
        int64_t sec = 0, nanos = 0;
        int level = -1;
        if (nf == 0) {
            self->lines++;
            self->blank++;
            skipped++;
            p = le + 1;
            continue;
        }
        if (nf < 4) {
            reason = R_TOO_FEW;
        } else if (!parse_timestamp(buf + f[0].start, f[0].len, &sec, &nanos)) {
            reason = R_BAD_TS;
        } else if ((level = level_of(buf + f[1].start, f[1].len)) < 0) {
            status = LINE, start = ls, stop = le; /* unknown_level: Python counts its token */
            break;
        } else if (!is_utf8(buf + f[2].start, f[2].len) || !is_utf8(buf + f[3].start, f[3].len)) {
            reason = R_BAD_ENC;
        }
        if (reason >= 0) {
            if (want & REASON_WANT[reason]) {
                status = LINE, start = ls, stop = le;
                break;
            }
            self->lines++;
            self->malformed[reason]++;
            skipped++;
            p = le + 1;
            continue;
        }
        /* A valid line. */
        i128 ts = (i128)sec * NS + nanos;
        int64_t window = floor_div(sec, width);
        Py_ssize_t user = strtab_find(&self->users, buf + f[3].start, f[3].len);
        Py_ssize_t service = user < 0 ? -1 : strtab_find(&self->services, buf + f[2].start, f[2].len);
        Pair *sw = service < 0 ? NULL : pairs_find(&self->service_windows, (uint32_t)service, window);
        if (!sw || hits_add(&self->user_windows, (uint32_t)user, window) < 0 ||
            (level >= FIRST_ERROR_LEVEL && hits_add(&self->user_errors, (uint32_t)user, window) < 0)) {
            PyErr_NoMemory();
            goto out;
        }
        self->users.entries[user].count++;
        self->services.entries[service].count++;
        if (level >= FIRST_ERROR_LEVEL)
            sw->a++;
        else
            sw->b++;
        self->lines++;
        self->valid++;
        self->levels[level]++;
        int64_t hour = floor_div(sec, 3600) % 24;
        if (hour < 0) hour += 24;
        self->hours[hour]++;
        if (!self->has_range) {
            self->min_ts = self->max_ts = ts;
            self->has_range = 1;
        } else if (ts < self->min_ts) {
            self->min_ts = ts;
        } else if (ts > self->max_ts) {
            self->max_ts = ts;
        }
        int backwards = has_last && ts < last - self->skew;
        int future = ts > self->future_after;
        if (!has_last || (backwards && (want & WANT_BACKWARDS)) || (future && (want & WANT_FUTURE))) {
            status = ORDER, start = ls, stop = le, event_ts = ts;
            break;
        }
        self->backwards += backwards;
        self->future += future;
        last = ts;
        skipped++;
        p = le + 1;
    }
    PyObject *ts_obj = NULL, *last_out = NULL;
    if (status == ORDER) {
        ts_obj = from_i128(event_ts);
        if (!ts_obj) goto out;
    } else {
        ts_obj = Py_NewRef(Py_None);
    }
    if (has_last) {
        last_out = from_i128(last);
        if (!last_out) {
            Py_DECREF(ts_obj);
            goto out;
        }
    } else {
        last_out = Py_NewRef(Py_None);
    }
    result = Py_BuildValue("innKNN", status, (Py_ssize_t)start, (Py_ssize_t)stop,
                           (unsigned long long)skipped, ts_obj, last_out);
out:
    PyBuffer_Release(&view);
    return result;
}

static int add_count(PyObject *dict, PyObject *key, uint64_t n) {
    PyObject *value = PyLong_FromUnsignedLongLong(n);
    if (!value) return -1;
    int rc = PyDict_SetItem(dict, key, value);
    Py_DECREF(value);
    return rc;
}

/* The strings of a table as bytes objects, by index; a new list. */
static PyObject *strings_of(StrTable *t) {
    PyObject *list = PyList_New((Py_ssize_t)t->n);
    if (!list) return NULL;
    for (size_t i = 0; i < t->n; i++) {
        Entry *e = &t->entries[i];
        PyObject *b = PyBytes_FromStringAndSize((const char *)t->arena + e->off, (Py_ssize_t)e->len);
        if (!b) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, b);
    }
    return list;
}

/* The strings of a table end to end: (bytes of them all, bytes of each one's int64 end offset),
 * by index; a new tuple. */
static PyObject *strings_end_to_end(StrTable *t) {
    size_t total = 0;
    for (size_t i = 0; i < t->n; i++) total += t->entries[i].len; /* within the arena: no overflow */
    if (total > (size_t)PY_SSIZE_T_MAX || t->n > (size_t)PY_SSIZE_T_MAX / sizeof(int64_t))
        return PyErr_NoMemory();
    PyObject *blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    PyObject *ends = blob ? PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(t->n * sizeof(int64_t)))
                          : NULL;
    if (!ends) {
        Py_XDECREF(blob);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(blob);
    int64_t *end = (int64_t *)PyBytes_AS_STRING(ends);
    size_t pos = 0;
    for (size_t i = 0; i < t->n; i++) {
        Entry *e = &t->entries[i];
        if (e->len) memcpy(dst + pos, t->arena + e->off, e->len);
        pos += e->len;
        end[i] = (int64_t)pos;
    }
    return Py_BuildValue("NN", blob, ends);
}

static PyObject *counts_of(StrTable *t, PyObject *names) {
    PyObject *dict = PyDict_New();
    if (!dict) return NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (add_count(dict, PyList_GET_ITEM(names, (Py_ssize_t)i), t->entries[i].count) < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    return dict;
}

/* Adds (names[id], window) -> count into ``dict`` for every pair with a nonzero count
 * (``which``: 0 the a counts, 1 the b counts), and, with ``windows``, window -> a + b. */
static int pairs_into(PairTable *t, PyObject *names, int which, PyObject *dict, PyObject *windows) {
    if (!t->slots) return 0;
    for (size_t s = 0; s <= t->mask; s++) {
        Pair *p = &t->slots[s];
        if (!p->id) continue;
        uint64_t n = which ? p->b : p->a;
        PyObject *w = PyLong_FromLongLong(p->window);
        if (!w) return -1;
        if (n) {
            PyObject *key = PyTuple_Pack(2, PyList_GET_ITEM(names, (Py_ssize_t)(p->id - 1)), w);
            if (!key || add_count(dict, key, n) < 0) {
                Py_XDECREF(key);
                Py_DECREF(w);
                return -1;
            }
            Py_DECREF(key);
        }
        if (windows) {
            uint64_t total = p->a + p->b;
            PyObject *old = PyDict_GetItemWithError(windows, w);
            if (!old && PyErr_Occurred()) {
                Py_DECREF(w);
                return -1;
            }
            if (old) total += PyLong_AsUnsignedLongLong(old);
            if (PyErr_Occurred() || add_count(windows, w, total) < 0) {
                Py_DECREF(w);
                return -1;
            }
        }
        Py_DECREF(w);
    }
    return 0;
}


/* Adds (names[id], window) -> count into ``dict`` for every pair of the list, sorted first. */
static int hits_into(HitList *h, PyObject *names, PyObject *dict) {
    if (hits_sort(h) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    size_t i = 0;
    while (i < h->n) {
        Hit *x = &h->items[i];
        uint64_t total = 0;
        size_t j = i;
        while (j < h->n && h->items[j].id == x->id && h->items[j].window == x->window)
            total += h->items[j++].count;
        PyObject *w = PyLong_FromLongLong(x->window);
        PyObject *key = w ? PyTuple_Pack(2, PyList_GET_ITEM(names, (Py_ssize_t)x->id), w) : NULL;
        Py_XDECREF(w);
        if (!key || add_count(dict, key, total) < 0) {
            Py_XDECREF(key);
            return -1;
        }
        Py_DECREF(key);
        i = j;
    }
    return 0;
}

/* Puts ``value`` (a new reference, or NULL after an error) into ``out`` and releases it. */
static int put(PyObject *out, const char *name, PyObject *value) {
    if (!value) return -1;
    int rc = PyDict_SetItemString(out, name, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *level_counts(Kernel *self) {
    PyObject *d = PyDict_New();
    for (int l = 0; d && l < N_LEVELS; l++) {
        if (!self->levels[l]) continue;
        PyObject *key = PyBytes_FromString(LEVEL_NAMES[l]);
        if (!key || add_count(d, key, self->levels[l]) < 0) Py_CLEAR(d);
        Py_XDECREF(key);
    }
    return d;
}

static PyObject *reason_counts(Kernel *self) {
    PyObject *d = PyDict_New();
    for (int r = 0; d && r < N_REASONS; r++) {
        if (!self->malformed[r]) continue;
        PyObject *key = PyUnicode_FromString(REASON_NAMES[r]);
        if (!key || add_count(d, key, self->malformed[r]) < 0) Py_CLEAR(d);
        Py_XDECREF(key);
    }
    return d;
}

static PyObject *hour_counts(Kernel *self) {
    PyObject *list = PyList_New(24);
    for (int h = 0; list && h < 24; h++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->hours[h]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, h, v);
    }
    return list;
}

/* A new bytes object of ``n`` int64 slots, filled by the caller through ``*out``. */
static PyObject *int64s(size_t n, int64_t **out) {
    if (n > (size_t)PY_SSIZE_T_MAX / sizeof(int64_t)) return PyErr_NoMemory();
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(int64_t)));
    if (b) *out = (int64_t *)PyBytes_AS_STRING(b);
    return b;
}

/* Three new bytes objects of ``n`` int64 slots each, as a tuple; NULL on failure. */
static PyObject *three_columns(size_t n, int64_t **a, int64_t **b, int64_t **c) {
    PyObject *x = int64s(n, a);
    PyObject *y = x ? int64s(n, b) : NULL;
    PyObject *z = y ? int64s(n, c) : NULL;
    if (!z) {
        Py_XDECREF(x);
        Py_XDECREF(y);
        return NULL;
    }
    return Py_BuildValue("NNN", x, y, z);
}

/* A hit list sorted by (id, window), equal pairs summed, as (ids, windows, counts). */
static PyObject *hits_columns(HitList *h) {
    if (hits_compact(h) < 0) return PyErr_NoMemory();
    int64_t *ids, *windows, *counts;
    PyObject *out = three_columns(h->n, &ids, &windows, &counts);
    if (!out) return NULL;
    for (size_t i = 0; i < h->n; i++) {
        ids[i] = h->items[i].id;
        windows[i] = h->items[i].window;
        counts[i] = h->items[i].count;
    }
    return out;
}

/* The pairs with a nonzero count (``which``: 0 the a counts, 1 the b counts) as (ids, windows,
 * counts), in slot order. */
static PyObject *pairs_columns(PairTable *t, int which) {
    size_t n = 0;
    for (size_t s = 0; t->slots && s <= t->mask; s++)
        n += t->slots[s].id && (which ? t->slots[s].b : t->slots[s].a);
    int64_t *ids, *windows, *counts;
    PyObject *out = three_columns(n, &ids, &windows, &counts);
    if (!out) return NULL;
    size_t i = 0;
    for (size_t s = 0; t->slots && s <= t->mask; s++) {
        Pair *p = &t->slots[s];
        uint64_t c = which ? p->b : p->a;
        if (!p->id || !c) continue;
        ids[i] = (int64_t)p->id - 1;
        windows[i] = p->window;
        counts[i++] = (int64_t)c;
    }
    return out;
}

/* window -> the a counts added up into ``errors`` (nonzero only), window -> a + b into
 * ``lines``, over every pair. */
static int pairs_windows(PairTable *t, PyObject *lines, PyObject *errors) {
    for (size_t s = 0; t->slots && s <= t->mask; s++) {
        Pair *p = &t->slots[s];
        if (!p->id) continue;
        PyObject *w = PyLong_FromLongLong(p->window);
        if (!w) return -1;
        uint64_t add[2] = {p->a + p->b, p->a};
        PyObject *dicts[2] = {lines, errors};
        for (int d = 0; d < 2; d++) {
            if (!add[d]) continue;
            PyObject *old = PyDict_GetItemWithError(dicts[d], w);
            uint64_t total = add[d];
            if (old) total += PyLong_AsUnsignedLongLong(old);
            if (PyErr_Occurred() || add_count(dicts[d], w, total) < 0) {
                Py_DECREF(w);
                return -1;
            }
        }
        Py_DECREF(w);
    }
    return 0;
}

/* The tables as Partial fields: dicts keyed by the names. */
static int tables_into(Kernel *self, PyObject *out) {
    PyObject *users = strings_of(&self->users);
    PyObject *services = users ? strings_of(&self->services) : NULL;
    PyObject *parts[5] = {NULL, NULL, NULL, NULL, NULL};
    static const char *const names[5] = {"user_lines", "service_errors", "service_others",
                                         "window_lines", "user_errors"};
    int rc = -1;
    if (!services || put(out, "users", counts_of(&self->users, users)) < 0 ||
        put(out, "services", counts_of(&self->services, services)) < 0)
        goto done;
    for (int i = 0; i < 5; i++)
        if (!(parts[i] = PyDict_New())) goto done;
    if (hits_into(&self->user_windows, users, parts[0]) < 0 ||
        hits_into(&self->user_errors, users, parts[4]) < 0 ||
        pairs_into(&self->service_windows, services, 0, parts[1], parts[3]) < 0 ||
        pairs_into(&self->service_windows, services, 1, parts[2], NULL) < 0)
        goto done;
    rc = 0;
    for (int i = 0; i < 5; i++) {
        PyObject *part = parts[i];
        parts[i] = NULL;
        if (rc == 0)
            rc = put(out, names[i], part);
        else
            Py_DECREF(part);
    }
done:
    for (int i = 0; i < 5; i++) Py_XDECREF(parts[i]);
    Py_XDECREF(users);
    Py_XDECREF(services);
    return rc;
}

/* The tables as columns: the names end to end (see strings_end_to_end), and (ids, windows,
 * counts) of int64 bytes per table; the lines and the error lines per window as dicts. */
static int columns_into(Kernel *self, PyObject *out) {
    PyObject *lines = PyDict_New(), *errors = PyDict_New();
    if (!lines || !errors || pairs_windows(&self->service_windows, lines, errors) < 0) {
        Py_XDECREF(lines);
        Py_XDECREF(errors);
        return -1;
    }
    if (put(out, "window_lines", lines) < 0 || put(out, "window_errors", errors) < 0 ||
        put(out, "user_names", strings_end_to_end(&self->users)) < 0 ||
        put(out, "service_names", strings_end_to_end(&self->services)) < 0 ||
        put(out, "user_lines", hits_columns(&self->user_windows)) < 0 ||
        put(out, "user_errors", hits_columns(&self->user_errors)) < 0 ||
        put(out, "service_errors", pairs_columns(&self->service_windows, 0)) < 0 ||
        put(out, "service_others", pairs_columns(&self->service_windows, 1)) < 0)
        return -1;
    return 0;
}

/* drain(columns=False) -> dict of the counts since the last drain, named as Partial's fields,
 * and empties the tables. Counters are plain dicts holding only nonzero counts; with
 * ``columns``, the tables come as columns instead (see columns_into) and there are no users
 * and services totals (they are the tables' sums). */
static PyObject *Kernel_drain(Kernel *self, PyObject *args) {
    int columns = 0;
    if (!PyArg_ParseTuple(args, "|p", &columns)) return NULL;
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    if (put(out, "lines", PyLong_FromUnsignedLongLong(self->lines)) < 0 ||
        put(out, "valid", PyLong_FromUnsignedLongLong(self->valid)) < 0 ||
        put(out, "blank", PyLong_FromUnsignedLongLong(self->blank)) < 0 ||
        put(out, "backwards", PyLong_FromUnsignedLongLong(self->backwards)) < 0 ||
        put(out, "future", PyLong_FromUnsignedLongLong(self->future)) < 0 ||
        put(out, "malformed", reason_counts(self)) < 0 ||
        put(out, "levels", level_counts(self)) < 0 || put(out, "hours", hour_counts(self)) < 0 ||
        put(out, "min_ts", self->has_range ? from_i128(self->min_ts) : Py_NewRef(Py_None)) < 0 ||
        put(out, "max_ts", self->has_range ? from_i128(self->max_ts) : Py_NewRef(Py_None)) < 0 ||
        (columns ? columns_into(self, out) : tables_into(self, out)) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    int64_t window = self->window;
    i128 future_after = self->future_after, skew = self->skew;
    kernel_clear(self);
    self->window = window;
    self->future_after = future_after;
    self->skew = skew;
    return out;
}

/* parse_timestamp(token) -> instant in ns or None: the kernel's timestamp grammar alone, for
 * tests against parse.parse_timestamp. */
static PyObject *kernel_parse_timestamp(PyObject *Py_UNUSED(module), PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int64_t sec, nanos;
    int ok = parse_timestamp(view.buf, (size_t)view.len, &sec, &nanos);
    PyBuffer_Release(&view);
    if (!ok) Py_RETURN_NONE;
    return from_i128((i128)sec * NS + nanos);
}

static PyMethodDef Kernel_methods[] = {
    {"scan", (PyCFunction)Kernel_scan, METH_VARARGS, "Count lines of a block until one needs Python."},
    {"drain", (PyCFunction)Kernel_drain, METH_VARARGS,
     "drain(columns=False): the counts so far as Partial fields (or columns); empties."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mapreduce_logs.ingest._kernel.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Native line counting for one split.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Kernel_init,
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_methods = Kernel_methods,
};

/* set_compact_threshold(n): hits kept before the first compaction (tests make it tiny). */
static PyObject *kernel_set_compact_threshold(PyObject *Py_UNUSED(module), PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "the threshold must be at least 1");
        return NULL;
    }
    Py_ssize_t old = (Py_ssize_t)compact_threshold;
    compact_threshold = (size_t)n;
    return PyLong_FromSsize_t(old);
}

static PyMethodDef module_methods[] = {
    {"set_compact_threshold", kernel_set_compact_threshold, METH_O,
     "Hits kept before the first compaction; returns the previous value (tests)."},
    {"parse_timestamp", kernel_parse_timestamp, METH_O, "The kernel's timestamp grammar (tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "mapreduce_logs.ingest._kernel", "The mapper's hot loop in C.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernel(void) {
    if (PyType_Ready(&KernelType) < 0) return NULL;
    PyObject *m = PyModule_Create(&kernel_module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Kernel", (PyObject *)&KernelType) < 0 ||
        PyModule_AddIntConstant(m, "DONE", DONE) < 0 || PyModule_AddIntConstant(m, "LINE", LINE) < 0 ||
        PyModule_AddIntConstant(m, "ORDER", ORDER) < 0 ||
        PyModule_AddIntConstant(m, "WANT_BACKWARDS", WANT_BACKWARDS) < 0 ||
        PyModule_AddIntConstant(m, "WANT_FUTURE", WANT_FUTURE) < 0 ||
        PyModule_AddIntConstant(m, "WANT_TOO_FEW", WANT_TOO_FEW) < 0 ||
        PyModule_AddIntConstant(m, "WANT_BAD_TS", WANT_BAD_TS) < 0 ||
        PyModule_AddIntConstant(m, "WANT_BAD_ENC", WANT_BAD_ENC) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
