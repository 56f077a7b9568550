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
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

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

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t load32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Reads only p[0:n): the tail by one load that overlaps what came before (a byte-wise copy of
 * it would cost a store-forwarding stall). */
static inline uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n, v;
    if (n > 8) {
        const unsigned char *last = p + n - 8;
        for (; p < last; p += 8) {
            h = (h ^ load64(p)) * 0xbf58476d1ce4e5b9ULL;
            h ^= h >> 31;
        }
        v = load64(last);
    } else if (n >= 4) {
        v = load32(p) | load32(p + n - 4) << 32;
    } else if (n) {
        v = (uint64_t)p[0] | (uint64_t)p[n >> 1] << 8 | (uint64_t)p[n - 1] << 16;
    } else {
        return mix64(h);
    }
    return mix64((h ^ v) * 0x94d049bb133111ebULL);
}

/* a[0:n) == b[0:n), reading nothing past either end. */
static inline int same_bytes(const unsigned char *a, const unsigned char *b, size_t n) {
    if (n >= 8 && n <= 16)
        return load64(a) == load64(b) && load64(a + n - 8) == load64(b + n - 8);
    if (n >= 4 && n < 8) return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    if (n > 16 && n <= 32)
        return load64(a) == load64(b) && load64(a + 8) == load64(b + 8) &&
               load64(a + n - 16) == load64(b + n - 16) && load64(a + n - 8) == load64(b + n - 8);
    return memcmp(a, b, n) == 0;
}

/* --- memory for tables read at random -------------------------------------------------- */

#define HUGE_PAGE ((size_t)2 << 20)
#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(__SANITIZE_ADDRESS__)
#define TABLE_MMAP 1
#endif

/* Zeroed memory for a table read at random, released by table_free with the same size. From 2
 * MiB up (on Linux) it is mapped on its own, 2 MiB aligned, asking for 2 MiB pages: a random read
 * misses in the TLB far less often, and the pages are the kernel's zeros, given back when freed.
 * Smaller, or under AddressSanitizer (which then sees it), it is calloc's. */
static void *table_calloc(size_t count, size_t size) {
    if (size && count > (size_t)-1 / size) return NULL;
    size_t n = count * size;
#ifdef TABLE_MMAP
    if (n >= HUGE_PAGE && n % HUGE_PAGE == 0) {
        size_t span = n + HUGE_PAGE;
        unsigned char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                -1, 0);
        if (p == MAP_FAILED) return NULL;
        size_t lead = (HUGE_PAGE - (uintptr_t)p % HUGE_PAGE) % HUGE_PAGE;
        if (lead) munmap(p, lead);
        if (HUGE_PAGE - lead) munmap(p + lead + n, HUGE_PAGE - lead);
        (void)madvise(p + lead, n, MADV_HUGEPAGE); /* a hint: without it, small pages */
        return p + lead;
    }
#endif
    return calloc(count, size);
}

static void table_free(void *p, size_t count, size_t size) {
    if (!p) return;
#ifdef TABLE_MMAP
    size_t n = count * size;
    if (n >= HUGE_PAGE && n % HUGE_PAGE == 0) {
        munmap(p, n);
        return;
    }
#else
    (void)count;
    (void)size;
#endif
    free(p);
}

/* A table of ``count`` items grown to ``more`` (zeroed past ``used`` bytes), or NULL when out of
 * memory (the old one then stays). */
static void *table_grow(void *p, size_t used, size_t count, size_t more, size_t size) {
    void *q = table_calloc(more, size);
    if (!q) return NULL;
    if (used) memcpy(q, p, used);
    table_free(p, count, size);
    return q;
}

/* --- a table of distinct byte strings: 8-byte slots into an arena of records --------------- */

/* A record in the arena: its string's index and length (two uint32), then the bytes, padded to
 * 8. A slot holds the high 32 bits of the hash and (the record's offset / 8) + 1, 0 being empty,
 * so a lookup that finds its string reads the slot and one record: two cache misses, which
 * Kernel_scan prefetches a batch of lines ahead. The entries (by index) are for the drain, which
 * lists them from the records (strtab_settle) and sums the counts, not kept per line, from the
 * other tables (settle_counts); before that they are empty. */
typedef struct {
    size_t off; /* of the bytes in the arena (the record's header is the 8 bytes before) */
    size_t len;
    uint64_t count;
} Entry;

typedef struct {
    unsigned char *arena;
    size_t arena_len, arena_cap;
    Entry *entries; /* cap of them, after strtab_settle */
    size_t n, cap;
    uint64_t *slots;
    size_t mask;
    int shift; /* 64 - log2(slots) */
} StrTable;

#define ARENA_LIMIT ((size_t)1 << 35) /* record offsets / 8 fit in 32 bits */

static void strtab_free(StrTable *t) {
    table_free(t->arena, t->arena_cap, 1);
    table_free(t->entries, t->cap, sizeof *t->entries);
    table_free(t->slots, t->slots ? t->mask + 1 : 0, sizeof *t->slots);
    memset(t, 0, sizeof *t);
}

static inline uint64_t slot_of(uint64_t hash, size_t record) {
    return ((hash >> 32) << 32) | (uint64_t)((record >> 3) + 1);
}

/* A hash's home slot: its top bits (so a slot's tag, the top 32, gives it back when the table
 * doubles, and the slots keep their order: growing streams through both tables). */
static inline size_t home_of(const StrTable *t, uint64_t h) { return (size_t)(h >> t->shift); }

/* Makes room for ``more`` new strings at a load of at most one half; -1 when out of memory. */
static int strtab_reserve(StrTable *t, size_t more) {
    if (t->slots && (t->n + more) * 2 <= t->mask + 1) return 0;
    if (t->n + more > ((size_t)1 << 31)) return -1; /* then the slots' index fits in a tag */
    int bits = t->slots ? 64 - t->shift : 9;
    while ((t->n + more) * 2 > ((size_t)1 << bits)) bits++;
    size_t size = (size_t)1 << bits, mask = size - 1;
    uint64_t *slots = table_calloc(size, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        uint64_t slot = t->slots[i];
        if (!slot) continue;
        size_t s = (size_t)(slot >> (64 - bits));
        while (slots[s]) s = (s + 1) & mask;
        slots[s] = slot;
    }
    table_free(t->slots, t->slots ? t->mask + 1 : 0, sizeof *slots);
    t->slots = slots;
    t->mask = mask;
    t->shift = 64 - bits;
    return 0;
}

/* Prefetches the slot of a hash (before strtab_find_hashed; a hint only). */
static inline void strtab_prefetch_slot(const StrTable *t, uint64_t h) {
    __builtin_prefetch(&t->slots[home_of(t, h)]);
}

/* Prefetches the record the slot of a hash points to, if its tag matches (a hint only). */
static inline void strtab_prefetch_record(const StrTable *t, uint64_t h) {
    uint64_t slot = t->slots[home_of(t, h)];
    if (slot && (slot >> 32) == (h >> 32))
        __builtin_prefetch(t->arena + (((size_t)(uint32_t)slot - 1) << 3));
}

/* Index of the string p[0:n) whose hash_bytes is h, added if new; -1 when out of memory. */
static Py_ssize_t strtab_find_hashed(StrTable *t, const unsigned char *p, size_t n, uint64_t h) {
    if (strtab_reserve(t, 1) < 0) return -1;
    size_t s = home_of(t, h);
    for (;;) {
        uint64_t slot = t->slots[s];
        if (!slot) break;
        if ((slot >> 32) == (h >> 32)) {
            const unsigned char *r = t->arena + (((size_t)(uint32_t)slot - 1) << 3);
            uint32_t head[2];
            memcpy(head, r, sizeof head);
            if (head[1] == n && same_bytes(r + 8, p, n)) return (Py_ssize_t)head[0];
        }
        s = (s + 1) & t->mask;
    }
    if (n > 0xFFFFFFFFu) return -1;
    size_t need = 8 + ((n + 7) & ~(size_t)7);
    if (t->arena_len + need > ARENA_LIMIT) return -1;
    if (t->arena_cap - t->arena_len < need) {
        size_t cap = t->arena_cap ? t->arena_cap : 4096;
        while (cap - t->arena_len < need) cap *= 2;
        unsigned char *arena = table_calloc(cap, 1); /* read at random too */
        if (!arena) return -1;
        if (t->arena_len) memcpy(arena, t->arena, t->arena_len);
        table_free(t->arena, t->arena_cap, 1);
        t->arena = arena;
        t->arena_cap = cap;
    }
    size_t record = t->arena_len;
    uint32_t head[2] = {(uint32_t)t->n, (uint32_t)n};
    memcpy(t->arena + record, head, sizeof head);
    memcpy(t->arena + record + 8, p, n);
    memset(t->arena + record + 8 + n, 0, need - 8 - n);
    t->arena_len += need;
    t->slots[s] = slot_of(h, record);
    return (Py_ssize_t)t->n++;
}

/* Lists the strings by index in ``entries`` (counts 0), from the arena's records, which are in
 * index order: the scan writes no entry, the drain reads them. -1 when out of memory. */
static int strtab_settle(StrTable *t) {
    table_free(t->entries, t->cap, sizeof *t->entries);
    t->entries = NULL;
    t->cap = 0;
    if (!t->n) return 0;
    Entry *entries = table_calloc(t->n, sizeof *entries);
    if (!entries) return -1;
    size_t off = 0;
    for (size_t i = 0; i < t->n; i++) {
        uint32_t head[2];
        memcpy(head, t->arena + off, sizeof head);
        entries[i].off = off + 8;
        entries[i].len = head[1];
        off += 8 + (((size_t)head[1] + 7) & ~(size_t)7);
    }
    t->entries = entries;
    t->cap = t->n;
    return 0;
}

static Py_ssize_t strtab_find(StrTable *t, const unsigned char *p, size_t n) {
    return strtab_find_hashed(t, p, n, hash_bytes(p, n));
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
    int sorted; /* items[0:n) sorted by (id, window), equal pairs summed, since the last add */
} HitList;

static size_t compact_threshold = (size_t)1 << 20;

static void hits_free(HitList *h) {
    table_free(h->items, h->cap, sizeof(Hit));
    table_free(h->spare, h->cap, sizeof(Hit));
    memset(h, 0, sizeof *h);
}

static int hit_cmp(const void *a, const void *b) {
    const Hit *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    if (x->window != y->window) return x->window < y->window ? -1 : 1;
    return 0;
}

static inline int bit_width(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }

/* Sorts items[0:n) by (id, window): LSD radix, in passes of at most 11 bits (the counts stay in
 * L1), over the bits id << b | (window - low) needs, b being the width of the windows' span (0
 * when they come in order); qsort when they span 2^32 or more. -1 when out of memory. */
static int hits_sort(HitList *h) {
    size_t n = h->n;
    if (n < 2 || h->sorted) return 0;
    int64_t low = h->items[0].window, high = low;
    uint32_t top = 0;
    int ordered = 1; /* the windows already come in order (as lines in time order give them) */
    for (size_t i = 0; i < n; i++) {
        int64_t w = h->items[i].window;
        if (w < low) low = w;
        if (w > high) {
            high = w;
        } else if (w < high) {
            ordered = 0;
        }
        if (h->items[i].id > top) top = h->items[i].id;
    }
    uint64_t span = (uint64_t)high - (uint64_t)low;
    if (span > 0xFFFFFFFFu || n < 256) {
        qsort(h->items, n, sizeof(Hit), hit_cmp);
        return 0;
    }
    /* In order, a stable sort by id alone leaves each id's windows in order. */
    int wbits = ordered ? 0 : bit_width(span), bits = wbits + bit_width(top);
    if (bits == 0) return 0; /* one key */
    int passes = (bits + 10) / 11, digit = (bits + passes - 1) / passes;
    size_t buckets = (size_t)1 << digit, dmask = buckets - 1;
    if (!h->spare) {
        h->spare = table_calloc(h->cap, sizeof(Hit));
        if (!h->spare) return -1;
    }
    size_t *counts = PyMem_Calloc((size_t)passes * buckets, sizeof(size_t));
    if (!counts) return -1;
#define HIT_KEY(x) \
    (((uint64_t)(x).id << wbits) | (wbits ? (uint64_t)(x).window - (uint64_t)low : 0))
    Hit *src = h->items, *dst = h->spare;
    for (size_t i = 0; i < n; i++) {
        uint64_t key = HIT_KEY(src[i]);
        for (int pass = 0; pass < passes; pass++)
            counts[(size_t)pass * buckets + ((key >> (pass * digit)) & dmask)]++;
    }
    for (int pass = 0; pass < passes; pass++) {
        size_t *c = counts + (size_t)pass * buckets;
        int shift = pass * digit;
        if (c[(HIT_KEY(src[0]) >> shift) & dmask] == n) continue; /* every key has this digit */
        size_t sum = 0;
        for (size_t d = 0; d < buckets; d++) {
            size_t k = c[d];
            c[d] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++) dst[c[(HIT_KEY(src[i]) >> shift) & dmask]++] = src[i];
        Hit *t = src;
        src = dst;
        dst = t;
    }
#undef HIT_KEY
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
    h->sorted = 1;
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
        Hit *items = table_grow(h->items, h->n * sizeof(Hit), h->cap, cap, sizeof(Hit));
        if (!items) return -1;
        table_free(h->spare, h->cap, sizeof(Hit)); /* of the old size */
        h->spare = NULL;
        h->items = items;
        h->cap = cap;
    }
    h->sorted = 0;
    Hit *x = &h->items[h->n++];
    x->window = window;
    x->id = id;
    x->count = 1;
    return 0;
}

/* --- the grammar --------------------------------------------------------------------------- */

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

/* The letters of s (4 or 8 bytes) with bit 0x20 set: equal to a lower-case word of letters
 * exactly when s is that word in any case (the level names are letters only). */
#define LOW32 0x20202020ULL
#define LOW64 0x2020202020202020ULL

static inline uint64_t word32(const char *w) { return load32((const unsigned char *)w); }

/* The level index of a token upper-cased (ASCII letters only, as bytes.upper), or -1. */
static inline int level_of(const unsigned char *s, size_t n) {
    if (n < 4 || n > 8) return -1;
    uint64_t head = load32(s) | LOW32;
    switch (n) {
    case 4:
        if (head == word32("info")) return 2;
        if (head == word32("warn")) return 4;
        return -1;
    case 5: {
        unsigned char last = s[4] | 0x20;
        if (head == word32("trac") && last == 'e') return 0;
        if (head == word32("debu") && last == 'g') return 1;
        if (head == word32("erro") && last == 'r') return 5;
        if (head == word32("fata") && last == 'l') return 7;
        return -1;
    }
    case 6:
        return head == word32("noti") && (load32(s + 2) | LOW32) == word32("tice") ? 3 : -1;
    case 7:
        return head == word32("warn") && (load32(s + 3) | LOW32) == word32("ning") ? 4 : -1;
    case 8:
        return (load64(s) | LOW64) == load64((const unsigned char *)"critical") ? 6 : -1;
    }
    return -1;
}

/* Strict UTF-8, as bytes.decode("utf-8"): no overlongs, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) { /* eight ASCII bytes at once */
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (!(v & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
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

/* utf8_valid, at once for the common short ASCII name (overlapping loads, as same_bytes). */
static inline int is_utf8(const unsigned char *s, size_t n) {
    if (n >= 8 && n <= 16) {
        if (!((load64(s) | load64(s + n - 8)) & 0x8080808080808080ULL)) return 1;
    } else if (n >= 4 && n < 8) {
        if (!((load32(s) | load32(s + n - 4)) & 0x80808080u)) return 1;
    }
    return utf8_valid(s, n);
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

/* 1 for the bytes bytes.split() splits on (ASCII whitespace), by byte. */
static const unsigned char SPACE[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1,
                                         ['\r'] = 1, ['\v'] = 1, ['\f'] = 1};

/* The end of the run of non-space bytes buf[i:...), at most le: eight bytes at a time, looking
 * for a byte below 0x21 (the first one flagged is exact; then the table says if it splits). */
static inline size_t token_end(const unsigned char *buf, size_t i, size_t le) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (le - i >= 8) {
        uint64_t v = load64(buf + i);
        uint64_t m = (v - 0x2121212121212121ULL) & ~v & 0x8080808080808080ULL;
        if (!m) {
            i += 8;
            continue;
        }
        i += (size_t)__builtin_ctzll(m) >> 3;
        if (SPACE[buf[i]]) return i;
        i++; /* a control byte, not a space */
    }
#endif
    while (i < le && !SPACE[buf[i]]) i++;
    return i;
}

/* The last valid timestamp token parsed and what it gives: lines come in runs of one stamp. */
typedef struct {
    unsigned char token[32];
    size_t len; /* 0: none */
    int64_t sec, nanos, window;
    int hour;
} Stamp;

enum { P_BLANK, P_BAD, P_PYTHON, P_VALID };

/* A line of a batch, classified (no counting yet). */
typedef struct {
    size_t ls, le;
    int kind;   /* P_* */
    int detail; /* P_BAD: the reason; P_VALID: the level */
    const unsigned char *user, *service;
    size_t user_len, service_len;
    uint64_t user_hash;
    int64_t sec, nanos, window;
    int hour;
} Parsed;

#define BATCH 64

/* Classifies buf[x->ls:x->le) as parse.parse_line does, without side effects. */
static void parse_line(const unsigned char *buf, Parsed *x, Stamp *stamp, int64_t width) {
    size_t ls = x->ls, le = x->le;
    if (le - ls > MAX_LINE) {
        x->kind = P_PYTHON;
        return;
    }
    size_t fs[4], fl[4];
    int nf = 0, known = 0;
    size_t i = ls;
    if (stamp->len && le - ls > stamp->len && same_bytes(buf + ls, stamp->token, stamp->len) &&
        SPACE[buf[ls + stamp->len]]) { /* it starts with the last stamp's token */
        fs[0] = ls;
        fl[0] = stamp->len;
        nf = known = 1;
        i = ls + stamp->len;
    }
    while (nf < 4) {
        while (i < le && SPACE[buf[i]]) i++;
        if (i >= le) break;
        size_t b = i;
        i = token_end(buf, i, le);
        fs[nf] = b;
        fl[nf] = i - b;
        nf++;
    }
    if (nf == 0) {
        x->kind = P_BLANK;
        return;
    }
    if (nf < 4) {
        x->kind = P_BAD, x->detail = R_TOO_FEW;
        return;
    }
    const unsigned char *token = buf + fs[0];
    if (!known) {
        int64_t sec, nanos;
        if (!parse_timestamp(token, fl[0], &sec, &nanos)) {
            x->kind = P_BAD, x->detail = R_BAD_TS;
            return;
        }
        stamp->len = 0;
        if (fl[0] <= sizeof stamp->token) {
            memcpy(stamp->token, token, fl[0]);
            stamp->len = fl[0];
        }
        stamp->sec = sec;
        stamp->nanos = nanos;
        stamp->window = floor_div(sec, width);
        int64_t hour = floor_div(sec, 3600) % 24;
        stamp->hour = (int)(hour < 0 ? hour + 24 : hour);
    }
    int level = level_of(buf + fs[1], fl[1]);
    if (level < 0) {
        x->kind = P_PYTHON; /* unknown_level: Python counts its token */
        return;
    }
    if (!is_utf8(buf + fs[2], fl[2]) || !is_utf8(buf + fs[3], fl[3])) {
        x->kind = P_BAD, x->detail = R_BAD_ENC;
        return;
    }
    x->kind = P_VALID;
    x->detail = level;
    x->service = buf + fs[2];
    x->service_len = fl[2];
    x->user = buf + fs[3];
    x->user_len = fl[3];
    x->sec = stamp->sec;
    x->nanos = stamp->nanos;
    x->window = stamp->window;
    x->hour = stamp->hour;
}

/* scan(buf, pos, end, last_ts, want) -> (status, start, stop, skipped, ts, last_ts)
 *
 * Counts the lines of buf[pos:end] (which ends with a newline) one after another, until one
 * needs Python or the block is done. ``skipped`` lines were counted here; then, for LINE, the
 * line buf[start:stop] is Python's to count whole; for ORDER, it was counted here but its order
 * checks (parse.Scanner.order with ``ts``) are Python's. ``last_ts`` is the segment's previous
 * valid instant in and out (None before the first). ``want`` says which examples Python still
 * wants (WANT_* bits).
 *
 * Lines go in batches: each batch is classified and its users' slots prefetched, then their
 * records, then the lines are counted one after another (memory latency, not instructions,
 * bounds this loop). A batch is cut short at a line Python must see. */
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
    Parsed batch[BATCH];
    Stamp stamp;
    stamp.len = 0;
    StrTable *users = &self->users;
    while (p < stop_at) {
        if (strtab_reserve(users, BATCH) < 0) {
            PyErr_NoMemory();
            goto out;
        }
        int nb = 0;
        for (size_t q = p; nb < BATCH && q < stop_at;) {
            Parsed *x = &batch[nb++];
            const unsigned char *nl = memchr(buf + q, '\n', stop_at - q);
            x->ls = q;
            x->le = nl ? (size_t)(nl - buf) : stop_at; /* always found: buf[end-1] is \n */
            q = x->le + 1;
            parse_line(buf, x, &stamp, width);
            if (x->kind == P_PYTHON) break; /* the scan stops there */
            if (x->kind == P_VALID) {
                x->user_hash = hash_bytes(x->user, x->user_len);
                strtab_prefetch_slot(users, x->user_hash);
            }
        }
        for (int b = 0; b < nb; b++)
            if (batch[b].kind == P_VALID) strtab_prefetch_record(users, batch[b].user_hash);
        for (int b = 0; b < nb; b++) {
            const Parsed *x = &batch[b];
            size_t ls = x->ls, le = x->le;
            if (x->kind == P_PYTHON) {
                status = LINE, start = ls, stop = le;
                goto scanned;
            }
            if (x->kind == P_BLANK || x->kind == P_BAD) {
                if (x->kind == P_BAD && (want & REASON_WANT[x->detail])) {
                    status = LINE, start = ls, stop = le;
                    goto scanned;
                }
                self->lines++;
                if (x->kind == P_BLANK)
                    self->blank++;
                else
                    self->malformed[x->detail]++;
                skipped++;
                p = le + 1;
                continue;
            }
            /* A valid line. */
            int level = x->detail;
            int64_t window = x->window;
            i128 ts = (i128)x->sec * NS + x->nanos;
            Py_ssize_t user = strtab_find_hashed(users, x->user, x->user_len, x->user_hash);
            Py_ssize_t service = user < 0 ? -1 : strtab_find(&self->services, x->service, x->service_len);
            Pair *sw = service < 0 ? NULL : pairs_find(&self->service_windows, (uint32_t)service, window);
            if (!sw || hits_add(&self->user_windows, (uint32_t)user, window) < 0 ||
                (level >= FIRST_ERROR_LEVEL && hits_add(&self->user_errors, (uint32_t)user, window) < 0)) {
                PyErr_NoMemory();
                goto out;
            }
            if (level >= FIRST_ERROR_LEVEL)
                sw->a++;
            else
                sw->b++;
            self->lines++;
            self->valid++;
            self->levels[level]++;
            self->hours[x->hour]++;
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
                goto scanned;
            }
            self->backwards += backwards;
            self->future += future;
            last = ts;
            skipped++;
            p = le + 1;
        }
    }
scanned:;
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

/* Lists the tables' strings by index (strtab_settle) with their counts, not kept per line: a
 * user's is the sum of its (user, window) hits, a service's the sum of its (service, window)
 * pairs. -1 when out of memory. */
static int settle_counts(Kernel *self) {
    StrTable *users = &self->users, *services = &self->services;
    HitList *h = &self->user_windows;
    PairTable *t = &self->service_windows;
    if (hits_compact(h) < 0 || strtab_settle(users) < 0 || strtab_settle(services) < 0) return -1;
    for (size_t i = 0; i < h->n; i++) users->entries[h->items[i].id].count += h->items[i].count;
    for (size_t s = 0; t->slots && s <= t->mask; s++)
        if (t->slots[s].id) services->entries[t->slots[s].id - 1].count += t->slots[s].a + t->slots[s].b;
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
    if (settle_counts(self) < 0) return PyErr_NoMemory();
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
