/* The kernels of one ISA variant: the block and run walkers over the element loops of _simd.h.
 *
 * setup.py compiles this file once per variant of _isa.py with that variant's target flags
 * and -DFD_VARIANT=<name>.  Everything here is static except the variant's table
 * fd_kernels_<name> (_walkers.h), so the objects of all variants link into one module side by
 * side.  _numpy_backend.py is the bit-exact twin of every kernel.
 */
#include <math.h>
#include <string.h>
#include "_walkers.h"
#include "_simd.h"
#include "_fused.h"
#include "_noise.h"
#include "_residual.h"

#ifndef FD_VARIANT
#error "compile with -DFD_VARIANT=<name>, a variant of _isa.py"
#endif

/* Arrays larger than PREFETCH_MIN_BYTES (beyond L2) are prefetched PREFETCH_AHEAD elements
   ahead: the generator's bursts of arithmetic otherwise leave the memory pipe idle. */
#define PREFETCH_AHEAD 2048
/* A streaming walk writes nothing through the cache: it prefetches its reads this many
   bytes ahead (4096 float32 elements, 2048 float64 ones).  On AMD Zen 5 dropout_add's float32
   run took 0.96-1.07x np.add's time with 16 KiB, 1.05-1.18x with 8 KiB and 1.09x with
   32 KiB into L1; on Zen 4, into L2, 8-64 KiB were alike (bench/NOTES.md). */
#define STREAMING_PREFETCH_BYTES ((int64_t)16 << 10)
#define PREFETCH_MIN_BYTES ((int64_t)4 << 20)

/* Streaming float32 and float64 walks prefetch their reads into L2 (fd_prefetch_l2)
   STREAMING_PREFETCH_BYTES ahead; the others, and float16 and bfloat16 ones (bound by their
   conversions, which ran 5% slower so), into L1 PREFETCH_AHEAD elements ahead. */
static inline int reads_into_l2(int stream, int64_t size) { return stream && size >= 4; }
static inline int64_t read_ahead(int stream, int64_t size) {
    return reads_into_l2(stream, size) ? STREAMING_PREFETCH_BYTES / size : PREFETCH_AHEAD;
}
static inline void prefetch_reads(const char *p, int64_t bytes, int stream, int64_t size) {
    if (reads_into_l2(stream, size)) fd_prefetch_l2(p, bytes);
    else fd_prefetch(p, bytes, 0);
}
#define PARALLEL_MIN_BLOCKS 256       /* below ~256K elements threads cost more than they save */

/* The walkers take the element kind as an argument and are inlined into one copy per kind
   (range_block_of), where it is a constant: each copy is the specialised loop Cython's fused
   types gave, with no per-segment dispatch. */
#if defined(__GNUC__)
#  define FD_INLINE static inline __attribute__((always_inline))
#  define FD_NOINLINE static __attribute__((noinline))
#elif defined(_MSC_VER)
#  define FD_INLINE static __forceinline
#  define FD_NOINLINE static __declspec(noinline)
#else
#  define FD_INLINE static inline
#  define FD_NOINLINE static
#endif

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Set the cursor (outer indices idx, column col) to element j; returns its row's base. */
static inline int64_t seek_row(const fd_rates_t *g, int64_t j, int64_t *idx, int64_t *col) {
    int64_t row = j / g->inner, base = 0;
    *col = j - row * g->inner;
    for (int a = g->nouter - 1; a >= 0; a--) {
        idx[a] = row % g->dims[a];
        row /= g->dims[a];
        base += idx[a] * g->stride[a];
    }
    return base;
}

/* Move the cursor to the next row (an odometer over the outer axes); returns its base. */
static inline int64_t next_row(const fd_rates_t *g, int64_t *idx, int64_t base) {
    for (int a = g->nouter - 1; a >= 0; a--) {
        idx[a]++;
        base += g->stride[a];
        if (idx[a] < g->dims[a]) return base;
        base -= idx[a] * g->stride[a];
        idx[a] = 0;
    }
    return base;
}

/* n elements of one row whose rates begin at offset r. */
FD_INLINE void select_segment(const uint16_t *chunk, const fd_rates_t *g, int64_t r, fd_kind_t kind,
                                  const void *x, void *out, int64_t n, int stream) {
    switch (kind) {
    case FD_F16:
        fd_select_rates_f16(chunk, g->thr + r, (const uint16_t *)g->scale + r, g->step, x, out, n, stream);
        break;
    case FD_BF16:
        fd_select_rates_bf16(chunk, g->thr + r, (const uint16_t *)g->scale + r, g->step, x, out, n, stream);
        break;
    case FD_F32:
        fd_select_rates_f32(chunk, g->thr + r, (const float *)g->scale + r, g->step, x, out, n, stream);
        break;
    case FD_F64:
        fd_select_rates_f64(chunk, g->thr + r, (const double *)g->scale + r, g->step, x, out, n, stream);
        break;
    case FD_KEEP:
        fd_keep_u8(chunk, g->thr + r, g->step, out, n);
        break;
    }
}

/* select_segment, streaming (where stream) from the first aligned element of out on.  Each
   call passes a constant stream, so the element loops are inlined without a test per store. */
FD_INLINE void select_segment_stored(const uint16_t *chunk, const fd_rates_t *g, int64_t r, fd_kind_t kind,
                                     const char *x, char *out, int64_t n, int stream) {
    int64_t size = fd_kind_bytes(kind), head;
    if (!stream) {
        select_segment(chunk, g, r, kind, x, out, n, 0);
        return;
    }
    head = fd_stream_head(out, size, n);
    if (head) select_segment(chunk, g, r, kind, x, out, head, 0);
    if (n > head)
        select_segment(chunk + head, g, r + head * g->step, kind, x + head * size, out + head * size, n - head, 1);
}

/* Elements lo..lo+n of block `block`, region elements j..j+n (x and out point at element
   lo), one group of generator steps at a time (see FD_GROUP_STEPS), each group split where
   a row of rates ends.  A streaming call prefetches x only: a prefetch for writing would
   fetch the very lines the streaming stores skip reading. */
FD_INLINE void dropout_block(uint64_t key, int64_t block, int64_t lo, int64_t n, int64_t j, const fd_rates_t *g,
                          fd_kind_t kind, const char *x, char *out, int prefetch, int stream) {
    fd_gen_t gen;
    fd_group_t words;
    int64_t idx[FD_MAX_DIMS], col, size = fd_kind_bytes(kind);
    int64_t base = seek_row(g, j, idx, &col);
    fd_gen_seed(&gen, key, (uint64_t)block);
    for (int64_t group = 0; group < (lo + n + FD_GROUP_CHUNKS - 1) / FD_GROUP_CHUNKS; group++) {
        fd_gen_steps(&gen, FD_GROUP_STEPS, words.word);
        int64_t start = group * FD_GROUP_CHUNKS;
        if (start + FD_GROUP_CHUNKS <= lo) continue;
        int64_t a = max64(lo, start), b = min64(lo + n, start + FD_GROUP_CHUNKS);
        if (prefetch) {
            prefetch_reads(x + (a - lo + read_ahead(stream, size)) * size, (b - a) * size, stream, size);
            if (!stream) fd_prefetch(out + (a - lo + PREFETCH_AHEAD) * size, (b - a) * size, 1);
        }
        while (a < b) {
            int64_t take = min64(b - a, g->inner - col);
            select_segment_stored(&words.chunk[a - start], g, base + col * g->step, kind,
                                  x + (a - lo) * size, out + (a - lo) * size, take, stream);
            a += take;
            col += take;
            if (col == g->inner) {
                col = 0;
                base = next_row(g, idx, base);
            }
        }
    }
}

/* The part of a run in its k-th block.  The run starts at decision head of block first;
   positions are relative to the run, so no index past the run's start plus its length is
   ever formed (no int64 overflow whatever the offset). */
FD_INLINE void range_block(uint64_t key, int64_t first, int64_t head, int64_t n, int64_t k, int64_t j0,
                               const fd_rates_t *g, fd_kind_t kind, const char *x, char *out, int prefetch,
                               int stream) {
    int64_t lo = max64(k * FD_BLOCK_CHUNKS - head, 0);
    int64_t hi = min64(k * FD_BLOCK_CHUNKS - head + FD_BLOCK_CHUNKS, n);
    int64_t size = fd_kind_bytes(kind);
    dropout_block(key, first + k, head + lo - k * FD_BLOCK_CHUNKS, hi - lo, j0 + lo, g, kind,
                  x + lo * size, out + lo * size, prefetch, stream);
}

/* range_block with the kind a constant in each case: one specialised copy per kind. */
static void range_block_of(uint64_t key, int64_t first, int64_t head, int64_t n, int64_t k, int64_t j0,
                           const fd_rates_t *g, fd_kind_t kind, const char *x, char *out, int prefetch, int stream) {
    switch (kind) {
    case FD_F16: range_block(key, first, head, n, k, j0, g, FD_F16, x, out, prefetch, stream); break;
    case FD_BF16: range_block(key, first, head, n, k, j0, g, FD_BF16, x, out, prefetch, stream); break;
    case FD_F32: range_block(key, first, head, n, k, j0, g, FD_F32, x, out, prefetch, stream); break;
    case FD_F64: range_block(key, first, head, n, k, j0, g, FD_F64, x, out, prefetch, stream); break;
    case FD_KEEP: range_block(key, first, head, n, k, j0, g, FD_KEEP, x, out, prefetch, 0); break;
    }
}

/* g as one rate for every element: threshold *thr, scale (NULL where the walk takes none). */
static inline void set_one_rate(fd_rates_t *g, const int32_t *thr, const void *scale) {
    g->thr = thr;
    g->scale = scale;
    g->inner = INT64_MAX;
    g->step = 0;
    g->nouter = 0;
}

/* Elements per vector store of a kind's element loop (1: its scalar loop). */
FD_INLINE int64_t kind_lanes(fd_kind_t kind) {
#if FD_VECTOR
    switch (kind) {
    case FD_F16: return FD_HALF_SIMD ? FD_L32 : 1;
    case FD_BF16: return FD_L32;
    case FD_F32: return FD_L32;
    case FD_F64: return FD_L64;
    default: return 1;
    }
#else
    (void)kind;
    return 1;
#endif
}

/* Decisions kept from the group before the one being applied (at least any kind's lanes). */
#define FD_CARRY 32

/* The decisions of a span walk (plain_span, dropout_add_span): one group of generator steps
   at a time behind the last FD_CARRY decisions of the group before, so that a vector may take
   decisions from both.  Span element i's decision is span_chunk(i), for i in
   [base - FD_CARRY, base + FD_GROUP_CHUNKS).  Two buffers, the current group's (cur) and the
   next one's (nxt): a fused group (fused_group) generates the next group while it applies
   this one. */
typedef union {
    uint64_t word[(FD_CARRY + FD_GROUP_CHUNKS) / FD_CHUNKS_PER_WORD];
    uint16_t chunk[FD_CARRY + FD_GROUP_CHUNKS];
} span_buffer_t;

typedef struct {
    fd_gen_t gen;
    int64_t block, base;
    int group;                  /* groups of the block generated so far */
    int cur;                    /* buf[cur]: the current group; buf[1 - cur]: the next */
    span_buffer_t buf[2];
} span_decisions_t;

FD_INLINE const uint16_t *span_chunk(const span_decisions_t *sd, int64_t i) {
    return &sd->buf[sd->cur].chunk[FD_CARRY + i - sd->base];
}

/* Where the next group's words go. */
FD_INLINE uint64_t *span_next_words(span_decisions_t *sd) {
    return sd->buf[1 - sd->cur].word + FD_CARRY / FD_CHUNKS_PER_WORD;
}

/* The group of span element s (stream element offset + s), generated behind the groups of its
   block before it. */
FD_INLINE void span_start(span_decisions_t *sd, uint64_t key, int64_t offset, int64_t s) {
    int64_t pos = offset + s, within;
    sd->cur = 0;
    sd->block = pos / FD_BLOCK_CHUNKS;
    within = pos - sd->block * FD_BLOCK_CHUNKS;
    sd->group = (int)(within / FD_GROUP_CHUNKS);
    sd->base = s - (within - (int64_t)sd->group * FD_GROUP_CHUNKS);
    fd_gen_seed(&sd->gen, key, (uint64_t)sd->block);
    for (int skip = 0; skip <= sd->group; skip++)       /* the groups before s's, then its own */
        fd_gen_steps(&sd->gen, FD_GROUP_STEPS, sd->buf[0].word + FD_CARRY / FD_CHUNKS_PER_WORD);
    sd->group++;
}

/* The generator at the next group's first step: a new block's where this group ends one. */
FD_INLINE void span_next_block(span_decisions_t *sd, uint64_t key) {
    if (sd->group == FD_BLOCK_CHUNKS / FD_GROUP_CHUNKS) {
        fd_gen_seed(&sd->gen, key, (uint64_t)++sd->block);
        sd->group = 0;
    }
}

/* The next group becomes the current one, behind the last FD_CARRY decisions of this one; its
   words are generated here unless a fused group has generated them (generated). */
FD_INLINE void span_next(span_decisions_t *sd, uint64_t key, int generated) {
    span_buffer_t *done = &sd->buf[sd->cur], *next = &sd->buf[1 - sd->cur];
    if (!generated) {
        span_next_block(sd, key);
        fd_gen_steps(&sd->gen, FD_GROUP_STEPS, span_next_words(sd));
    }
    memcpy(next->chunk, done->chunk + FD_GROUP_CHUNKS, sizeof done->chunk[0] * FD_CARRY);
    sd->cur = 1 - sd->cur;
    sd->base += FD_GROUP_CHUNKS;
    sd->group++;
}

#if FD_VECTOR && FD_VBYTES >= 32 && !FD_BIG_ENDIAN
/* plain_span applies whole groups of float32 and float64 with one rate as fused groups
   (where 16 or more vector registers hold the generator state beside the arithmetic: not
   the 16-register SSE2 baseline, whose state takes all of them). */
#  define FUSED_GROUPS 1
/* The SPAN_SLICE elements of one generator step, then a step of the next group. */
#  define SPAN_SLICE (FD_LANES * FD_CHUNKS_PER_WORD)

/* A group's elements (FD_GROUP_CHUNKS of them from chunk, whole vectors, out aligned to the
   vector where stream) with one rate, each step's worth followed by one step of the next
   group into next.  The generator's shifts and the elements' loads, multiplies and stores
   then run side by side in the core, where one phase after the other left each idle in the
   other's time (bench/NOTES.md, fifteenth session).  The same decisions and arithmetic as
   select_segment: the same bits. */
FD_INLINE void fused_group(fd_gen_t *g, uint64_t *next, fd_kind_t kind, const uint16_t *chunk, int32_t thr,
                           const void *scale, const char *x, char *out, int stream) {
    fd_gen_t st = *g;                   /* a local, so the state stays in registers */
    int64_t size = fd_kind_bytes(kind);
    for (int k = 0; k < FD_GROUP_STEPS; k++) {
        int64_t at = (int64_t)k * SPAN_SLICE;
        if (kind == FD_F32)
            fd_select_f32(chunk + at, thr, *(const float *)scale, (const float *)(x + at * size),
                          (float *)(out + at * size), SPAN_SLICE, stream);
        else
            fd_select_f64(chunk + at, thr, *(const double *)scale, (const double *)(x + at * size),
                          (double *)(out + at * size), SPAN_SLICE, stream);
        fd_gen_step(&st, next + k * FD_LANES);
    }
    *g = st;
}
#else
#  define FUSED_GROUPS 0
#endif

/* The end of the next piece of a span walk from d, in the group ending at stop (e: the span's
   end): the head up to out's first aligned element (ordinary stores), then whole vectors,
   the rest waiting for the next group, and at the span's end the last partial vector too.
   d itself where nothing can be taken before the next group. */
FD_INLINE int64_t span_piece_end(int64_t d, int64_t stop, int64_t e, int64_t aligned, int64_t lanes) {
    if (d < aligned) return min64(aligned, stop);
    if (stop == e) return e;
    return d + (stop - d) / lanes * lanes;
}

/* --- the sums of |x| (AdaptiveDropout's activity): the lanes of _xoshiro.h's sum blocks ----------- */
#if FD_VECTOR
/* The 16 lanes as SUM_VECS vectors of the variant's width, indexed by constants, so they stay
   in registers (GCC's own vectorisation of the lane loop left 16 scalar chains in the built
   module, and one 16-double vector type lived on the stack). */
#define SUM_VECS (FD_SUM_LANES / FD_L64)
#endif

/* Adds |x[i]| (float64) of sum-block elements lo..hi to lanes[i % FD_SUM_LANES] in element
   order (x points at element lo; a sum block starts at a multiple of FD_SUM_BLOCK in the
   stream, so i % FD_SUM_LANES is the stream element's lane). */
FD_INLINE void abs_lanes(fd_kind_t kind, const char *x, int64_t lo, int64_t hi, double *lanes) {
    int64_t i = lo;
    for (; i < hi && i % FD_SUM_LANES; i++) lanes[i % FD_SUM_LANES] += fabs(nz_load_double(kind, x, i - lo));
#if FD_VECTOR
    if ((kind == FD_F32 || kind == FD_F64) && i + FD_SUM_LANES <= hi) {
        fd_f64v acc[SUM_VECS];
        for (int q = 0; q < SUM_VECS; q++) memcpy(&acc[q], lanes + q * FD_L64, sizeof acc[q]);
        for (; i + FD_SUM_LANES <= hi; i += FD_SUM_LANES)
            for (int q = 0; q < SUM_VECS; q++) {
                fd_f64v v;
                if (kind == FD_F32) {
                    v = fd_abs_widen_f32(x + (i - lo + q * FD_L64) * 4);
                } else {
                    memcpy(&v, x + (i - lo + q * FD_L64) * 8, sizeof v);
                    v = (fd_f64v)((fd_i64v)v & INT64_MAX);      /* |v|: the sign bit cleared */
                }
                acc[q] += v;
            }
        for (int q = 0; q < SUM_VECS; q++) memcpy(lanes + q * FD_L64, &acc[q], sizeof acc[q]);
    }
#endif
    for (; i + FD_SUM_LANES <= hi; i += FD_SUM_LANES)
        for (int l = 0; l < FD_SUM_LANES; l++) lanes[l] += fabs(nz_load_double(kind, x, i - lo + l));
    for (; i < hi; i++) lanes[i % FD_SUM_LANES] += fabs(nz_load_double(kind, x, i - lo));
}

/* A block's lanes added as the tree (l, l + 8), (l, l + 4), (l, l + 2), (0, 1). */
static inline double lane_tree(double *lanes) {
    for (int width = FD_SUM_LANES / 2; width >= 1; width /= 2)
        for (int l = 0; l < width; l++) lanes[l] += lanes[l + width];
    return lanes[0];
}

/* The sums of |x| a span takes as it goes (dropout_abs_flat): the run (n elements from stream
   element offset, head = offset % FD_SUM_BLOCK; x points at its element 0) is summed up to
   element `summed`, lanes holding the open sum block's. */
typedef struct {
    double lanes[FD_SUM_LANES];
    int64_t summed, head, n;
    double *partials;                /* partials[k]: the run's k-th sum block */
} abs_state_t;

/* Adds run elements st->summed..to to the sums, writing each sum block's partial as it ends
   (at a multiple of FD_SUM_BLOCK in the stream, or at the run's end). */
FD_INLINE void abs_upto(fd_kind_t kind, const char *x, abs_state_t *st, int64_t to) {
    int64_t size = fd_kind_bytes(kind);
    while (st->summed < to) {
        int64_t j = st->summed, k = (j + st->head) / FD_SUM_BLOCK, lo = (j + st->head) % FD_SUM_BLOCK;
        int64_t end = min64(to, (k + 1) * FD_SUM_BLOCK - st->head);
        abs_lanes(kind, x + j * size, lo, lo + end - j, st->lanes);
        st->summed = end;
        if (end == (k + 1) * FD_SUM_BLOCK - st->head || end == st->n) {
            st->partials[k] = lane_tree(st->lanes);
            memset(st->lanes, 0, sizeof st->lanes);
        }
    }
}

/* Elements s..e of a run with one rate (g: nouter 0, step 0; stream decisions offset + s ...):
   dropout, or, where alpha is not NULL, alpha dropout with its coefficients (a, b, d) in x's
   dtype (_fused.h).  The walk of dropout_block splits its vector loop at every group of
   decisions, so with an output that is not aligned to the vector size (NumPy's large arrays
   are 16 bytes past a 64-byte line) every group ends and starts with a partial line written
   by ordinary stores between streamed ones: on the Xeon that made a streamed 64M run twice
   as slow as an aligned one (bench/NOTES.md).  Here the vectors start at out's first
   aligned element and run on across group and block boundaries (span_decisions_t).  Only
   the span's first and last partial vectors take ordinary stores.  The same decisions and
   arithmetic as dropout_block: the same bits. */
FD_INLINE void plain_span(uint64_t key, int64_t offset, int64_t s, int64_t e, const fd_rates_t *g, const void *alpha,
                          fd_kind_t kind, const char *x, char *out, int prefetch, int stream, abs_state_t *abs) {
    int64_t size = fd_kind_bytes(kind), lanes = kind_lanes(kind);
    int64_t aligned = s + fd_stream_head(out + s * size, size, e - s);
    int64_t d = s, ahead = read_ahead(stream, size);
    span_decisions_t sd;
    span_start(&sd, key, offset, s);
    for (;;) {
        int64_t stop = min64(e, sd.base + FD_GROUP_CHUNKS);
        /* the sums read x through the next group, past the last vector this group's pieces
           write (which may be x: in place), while its lines are in L1 */
        if (abs) abs_upto(kind, x, abs, min64(e, sd.base + 2 * FD_GROUP_CHUNKS));
        int generated = 0;
        for (int64_t t; d < stop && (t = span_piece_end(d, stop, e, aligned, lanes)) > d; d = t) {
            const uint16_t *chunk = span_chunk(&sd, d);
#if FUSED_GROUPS
            if ((kind == FD_F32 || kind == FD_F64) && !alpha && stop < e && d >= aligned
                    && stop - d >= FD_GROUP_CHUNKS) {
                span_next_block(&sd, key);
                if (stream)             /* a constant stream in each call: no test per store */
                    fused_group(&sd.gen, span_next_words(&sd), kind, chunk, g->thr[0], g->scale, x + d * size,
                                out + d * size, 1);
                else
                    fused_group(&sd.gen, span_next_words(&sd), kind, chunk, g->thr[0], g->scale, x + d * size,
                                out + d * size, 0);
                generated = 1;
                t = d + FD_GROUP_CHUNKS;
                continue;
            }
#endif
            if (alpha)
                fd_alpha_kind(kind, chunk, g->thr[0], alpha, x + d * size, out + d * size, t - d,
                              stream && d >= aligned);
            else
                select_segment(chunk, g, 0, kind, x + d * size, out + d * size, t - d, stream && d >= aligned);
        }
        if (d >= e) break;
        if (prefetch) {
            int64_t next = sd.base + FD_GROUP_CHUNKS + ahead;
            prefetch_reads(x + next * size, FD_GROUP_CHUNKS * size, stream, size);
            if (!stream) fd_prefetch(out + next * size, FD_GROUP_CHUNKS * size, 1);
        }
        span_next(&sd, key, generated);
    }
}

/* plain_span with the kind a constant in each case, without sums (the compiler drops them). */
static void plain_span_of(uint64_t key, int64_t offset, int64_t s, int64_t e, const fd_rates_t *g, const void *alpha,
                          fd_kind_t kind, const char *x, char *out, int prefetch, int stream) {
    switch (kind) {
    case FD_F16: plain_span(key, offset, s, e, g, alpha, FD_F16, x, out, prefetch, stream, NULL); break;
    case FD_BF16: plain_span(key, offset, s, e, g, alpha, FD_BF16, x, out, prefetch, stream, NULL); break;
    case FD_F32: plain_span(key, offset, s, e, g, alpha, FD_F32, x, out, prefetch, stream, NULL); break;
    case FD_F64: plain_span(key, offset, s, e, g, alpha, FD_F64, x, out, prefetch, stream, NULL); break;
    case FD_KEEP: break;
    }
}

/* plain dropout with the sums of |x| (abs), the kind a constant in each case. */
static void plain_abs_span_of(uint64_t key, int64_t offset, int64_t s, int64_t e, const fd_rates_t *g,
                              fd_kind_t kind, const char *x, char *out, int prefetch, int stream, abs_state_t *abs) {
    switch (kind) {
    case FD_F16: plain_span(key, offset, s, e, g, NULL, FD_F16, x, out, prefetch, stream, abs); break;
    case FD_BF16: plain_span(key, offset, s, e, g, NULL, FD_BF16, x, out, prefetch, stream, abs); break;
    case FD_F32: plain_span(key, offset, s, e, g, NULL, FD_F32, x, out, prefetch, stream, abs); break;
    case FD_F64: plain_span(key, offset, s, e, g, NULL, FD_F64, x, out, prefetch, stream, abs); break;
    case FD_KEEP: break;
    }
}

/* Thread t's blocks [*k0, *k1) of nblocks split between nthreads as schedule(static) splits
   them: one run of whole blocks each. */
static inline void thread_blocks(int t, int nthreads, int64_t nblocks, int64_t *k0, int64_t *k1) {
    int64_t per = (nblocks + nthreads - 1) / nthreads;
    *k0 = min64(t * per, nblocks);
    *k1 = min64(t * per + per, nblocks);
}

/* A one-rate run of n decisions from stream element offset (plain_span's), split between
   threads as one span of whole blocks each (thread_blocks); each thread fences its own
   streaming stores, the caller those of a serial run. */
static void plain_range(uint64_t key, int64_t offset, int64_t n, const fd_rates_t *g, const void *alpha,
                        fd_kind_t kind, const char *x, char *out, int nthreads, int stream) {
    int64_t head = offset % FD_BLOCK_CHUNKS, nblocks = (head + n - 1) / FD_BLOCK_CHUNKS + 1;
    int prefetch = n * fd_kind_bytes(kind) > PREFETCH_MIN_BYTES;
    if (n <= 0) return;
    if (nthreads > 1 && nblocks > PARALLEL_MIN_BLOCKS) {
        #pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int t = 0; t < nthreads; t++) {
            int64_t k0, k1;
            thread_blocks(t, nthreads, nblocks, &k0, &k1);
            int64_t s = max64(k0 * FD_BLOCK_CHUNKS - head, 0), e = min64(k1 * FD_BLOCK_CHUNKS - head, n);
            if (s < e) plain_span_of(key, offset, s, e, g, alpha, kind, x, out, prefetch, stream);
            if (stream) fd_store_fence();
        }
    } else {
        plain_span_of(key, offset, 0, n, g, alpha, kind, x, out, prefetch, stream);
    }
}

/* Stream elements offset..offset+n, which are region elements j0..j0+n.  Where stream, the
   stores stream; the threads of a parallel run fence their own, the caller fences the rest. */
static void dropout_range(uint64_t key, int64_t offset, int64_t n, int64_t j0, const fd_rates_t *g,
                          fd_kind_t kind, const char *x, char *out, int nthreads, int stream) {
    int64_t first = offset / FD_BLOCK_CHUNKS;
    int64_t head = offset - first * FD_BLOCK_CHUNKS;
    int64_t nblocks = (head + n - 1) / FD_BLOCK_CHUNKS + 1;
    int prefetch = kind != FD_KEEP && n * fd_kind_bytes(kind) > PREFETCH_MIN_BYTES;
    if (n <= 0) return;
    if (kind != FD_KEEP && g->nouter == 0 && g->step == 0) {
        plain_range(key, offset, n, g, NULL, kind, x, out, nthreads, stream);
    } else if (nthreads > 1 && nblocks > PARALLEL_MIN_BLOCKS) {
        #pragma omp parallel num_threads(nthreads)
        {
            #pragma omp for schedule(static) nowait
            for (int64_t k = 0; k < nblocks; k++)
                range_block_of(key, first, head, n, k, j0, g, kind, x, out, prefetch, stream);
            if (stream) fd_store_fence();
        }
    } else {
        for (int64_t k = 0; k < nblocks; k++)
            range_block_of(key, first, head, n, k, j0, g, kind, x, out, prefetch, stream);
    }
}

static void dropout_rows(uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen, const fd_rates_t *g,
                         fd_kind_t kind, const void *x, int64_t xstride, void *out, int64_t ostride, int nthreads) {
    const char *xb = x;
    char *ob = out;
    int64_t size = fd_kind_bytes(kind);
    int stream = kind != FD_KEEP && fd_streams(nrows * rowlen * size);
    if (nthreads > 1 && nrows > 1 && nrows * rowlen >= (int64_t)PARALLEL_MIN_BLOCKS * FD_BLOCK_CHUNKS) {
        #pragma omp parallel num_threads(nthreads)
        {
            #pragma omp for schedule(static) nowait
            for (int64_t r = 0; r < nrows; r++)
                dropout_range(key, starts[r], rowlen, r * rowlen, g, kind, xb + r * xstride * size,
                              ob + r * ostride * size, 1, stream);
            if (stream) fd_store_fence();
        }
    } else {
        for (int64_t r = 0; r < nrows; r++)
            dropout_range(key, starts[r], rowlen, r * rowlen, g, kind, xb + r * xstride * size,
                          ob + r * ostride * size, nthreads, stream);
        if (stream) fd_store_fence();
    }
}

/* n elements of one row with keep and scale read at steps s_step (0: one decision). */
static inline void apply_row(fd_kind_t kind, const uint8_t *keep, const void *s, int64_t s_step,
                             const void *x, void *out, int64_t n, int stream) {
    switch (kind) {
    case FD_F16: fd_apply_f16(keep, s, s_step, x, out, n, stream); break;
    case FD_BF16: fd_apply_bf16(keep, s, s_step, x, out, n, stream); break;
    case FD_F32: fd_apply_f32(keep, s, s_step, x, out, n, stream); break;
    case FD_F64: fd_apply_f64(keep, s, s_step, x, out, n, stream); break;
    case FD_KEEP: break;
    }
}

static inline void scale_row(fd_kind_t kind, const void *s, const void *x, void *out, int64_t n, int stream) {
    switch (kind) {
    case FD_F16: fd_scale_f16(fd_half_to_float(*(const uint16_t *)s), x, out, n, stream); break;
    case FD_BF16: fd_scale_bf16(fd_bf16_to_float(*(const uint16_t *)s), x, out, n, stream); break;
    case FD_F32: fd_scale_f32(*(const float *)s, x, out, n, stream); break;
    case FD_F64: fd_scale_f64(*(const double *)s, x, out, n, stream); break;
    case FD_KEEP: break;
    }
}

/* A cursor over apply_rows' rows, C order over dims[0 .. ndim - 2]: the row's first keep
   byte and scale (an odometer, as next_row). */
typedef struct {
    int64_t idx[FD_MAX_DIMS], row, k, s;
} row_cursor_t;

typedef struct {
    int ndim;
    const int64_t *dims, *kstride, *sstride;
} row_layout_t;

static inline void row_cursor_next(row_cursor_t *c, const row_layout_t *l) {
    c->row++;
    for (int a = l->ndim - 2; a >= 0; a--) {
        c->idx[a]++;
        c->k += l->kstride[a];
        c->s += l->sstride[a];
        if (c->idx[a] < l->dims[a]) return;
        c->k -= c->idx[a] * l->kstride[a];
        c->s -= c->idx[a] * l->sstride[a];
        c->idx[a] = 0;
    }
}

/* Elements in the pieces apply_rows walks, and prefetches ahead of: a multiple of 64 bytes
   for every kind, so a streamed row's pieces after its head stay line-aligned. */
#define APPLY_PIECE 1024

/* apply_rows with its streaming and prefetching chosen by the caller (for the whole output
   when this is a part of it), and no fence: the caller ends its streamed part with one. */
static void apply_rows_part(fd_kind_t kind, const void *x, void *out, const uint8_t *keep, const void *scale, int ndim,
                            const int64_t *dims, const int64_t *kstride, const int64_t *sstride, int64_t nrows,
                            int prefetch, int stream) {
    const row_layout_t layout = {ndim, dims, kstride, sstride};
    int64_t inner = dims[ndim - 1], ks = kstride[ndim - 1], ss = sstride[ndim - 1], size = fd_kind_bytes(kind);
    const char *xb = x, *sb = scale;
    char *ob = out;
    /* Prefetching, as the dropout walks do, keeps reads in flight across the rows; the
       cursor `ahead` follows the prefetched row, so x is not fetched for a dropped row. */
    row_cursor_t row = {{0}, 0, 0, 0}, ahead = row;
    for (int64_t r = 0; r < nrows; r++, row_cursor_next(&row, &layout)) {
        const char *xr = xb + r * inner * size;
        char *orow = ob + r * inner * size;
        /* a streaming row: its unaligned head with ordinary stores */
        int64_t h = stream ? fd_stream_head(orow, size, inner) : 0;
        for (int64_t a = 0, b; a < inner; a = b) {
            b = a == 0 && h ? h : min64(inner, a + APPLY_PIECE);
            int piece_streams = stream && a >= h;
            int64_t q = r * inner + a + read_ahead(stream, size);     /* the element to prefetch, in row ahead.row */
            if (prefetch && q < nrows * inner) {
                while ((ahead.row + 1) * inner <= q) row_cursor_next(&ahead, &layout);
                if (ks != 0 || keep[ahead.k]) prefetch_reads(xb + q * size, (b - a) * size, stream, size);
                if (!stream) fd_prefetch(ob + q * size, (b - a) * size, 1);
            }
            if (ks != 0)        /* keep's last varying axis has stride 1 */
                apply_row(kind, keep + row.k + a, sb + (row.s + a * ss) * size, ss, xr + a * size, orow + a * size,
                          b - a, piece_streams);
            else if (keep[row.k])   /* the row shares one decision, hence one scale */
                scale_row(kind, sb + row.s * size, xr + a * size, orow + a * size, b - a, piece_streams);
            else
                fd_zero_bytes(orow + a * size, (b - a) * size, piece_streams);
        }
    }
}

static void apply_rows(fd_kind_t kind, const void *x, void *out, const uint8_t *keep, const void *scale, int ndim,
                       const int64_t *dims, const int64_t *kstride, const int64_t *sstride, int64_t nrows) {
    int64_t bytes = nrows * dims[ndim - 1] * fd_kind_bytes(kind);
    int stream = fd_streams(bytes);
    apply_rows_part(kind, x, out, keep, scale, ndim, dims, kstride, sstride, nrows, bytes > PREFETCH_MIN_BYTES,
                    stream);
    if (stream) fd_store_fence();
}

/* Rows shorter than SHORT_ROW elements cost more per row than per element in apply_rows'
   walk, so the shared-mask walks below apply them through keep bytes expanded to one per
   element, EXPANDED elements at a time (their bytes stay in L1), as one long row. */
#define SHORT_ROW 128
#define EXPANDED 16384

static void apply_expanded(fd_kind_t kind, const uint8_t *bytes, int64_t n, const void *scale, const char *x,
                           char *out, int prefetch, int stream) {
    int64_t dims[1] = {n}, kstride[1] = {1}, sstride[1] = {0};
    apply_rows_part(kind, x, out, bytes, scale, 1, dims, kstride, sstride, 1, prefetch, stream);
}

static void fill_words(uint64_t key, int64_t first_word, uint64_t *out, int64_t n) {
    fd_block_t b;
    for (int64_t pos = 0; pos < n;) {
        int64_t w = first_word + pos, blk = w / FD_BLOCK_WORDS, at = w - blk * FD_BLOCK_WORDS;
        int64_t take = min64(n - pos, FD_BLOCK_WORDS - at);
        fd_block(key, (uint64_t)blk, &b);
        for (int64_t i = 0; i < take; i++) out[pos + i] = fd_block_word(&b, at + i);
        pos += take;
    }
}

/* out[i] = alpha dropout of x[i] with decision offset + i; c holds (a, b, d) in x's dtype. */
static void alpha_flat(uint64_t key, int64_t offset, int64_t n, int32_t thr, fd_kind_t kind, const void *c,
                       const void *x, void *out, int nthreads) {
    fd_rates_t g;
    int stream = fd_streams(n * fd_kind_bytes(kind));
    set_one_rate(&g, &thr, NULL);
    plain_range(key, offset, n, &g, c, kind, x, out, nthreads, stream);
    if (stream) fd_store_fence();
}

/* The sum state of the run's sum blocks from k0 on (the run: n elements from stream element
   offset), nothing summed yet. */
static abs_state_t abs_start(int64_t offset, int64_t n, int64_t k0, double *partials) {
    abs_state_t abs;
    memset(abs.lanes, 0, sizeof abs.lanes);
    abs.head = offset % FD_SUM_BLOCK;
    abs.summed = max64(k0 * FD_SUM_BLOCK - abs.head, 0);
    abs.n = n;
    abs.partials = partials;
    return abs;
}

/* Sum blocks k0..k1 of the run: plain dropout (g one rate) in one span, summing as it goes. */
static void dropout_abs_part(uint64_t key, int64_t offset, int64_t n, int64_t k0, int64_t k1, const fd_rates_t *g,
                             fd_kind_t kind, const char *x, char *out, double *partials, int prefetch, int stream) {
    abs_state_t abs = abs_start(offset, n, k0, partials);
    plain_abs_span_of(key, offset, abs.summed, min64(k1 * FD_SUM_BLOCK - abs.head, n), g, kind, x, out, prefetch,
                      stream, &abs);
}

/* The sums alone of sum blocks k0..k1, the kind a constant in each case. */
static void abs_blocks_of(int64_t offset, int64_t n, int64_t k0, int64_t k1, fd_kind_t kind, const char *x,
                          double *partials) {
    abs_state_t abs = abs_start(offset, n, k0, partials);
    int64_t e = min64(k1 * FD_SUM_BLOCK - abs.head, n);
    switch (kind) {
    case FD_F16: abs_upto(FD_F16, x, &abs, e); break;
    case FD_BF16: abs_upto(FD_BF16, x, &abs, e); break;
    case FD_F32: abs_upto(FD_F32, x, &abs, e); break;
    case FD_F64: abs_upto(FD_F64, x, &abs, e); break;
    case FD_KEEP: break;
    }
}

/* Dropout with one rate of C-contiguous x (n elements, decision i = stream element
   offset + i; scale points at one value of x's dtype) into out, and partials[k] the sum of
   |x| over sum block offset / FD_SUM_BLOCK + k (_xoshiro.h).  Threads split sum blocks. */
static void dropout_abs_flat(uint64_t key, int64_t offset, int64_t n, int32_t thr, fd_kind_t kind, const void *scale,
                             const void *x, void *out, double *partials, int nthreads) {
    fd_rates_t g;
    int64_t size = fd_kind_bytes(kind), nsums = n > 0 ? (offset % FD_SUM_BLOCK + n - 1) / FD_SUM_BLOCK + 1 : 0;
    int stream = fd_streams(n * size), prefetch = n * size > PREFETCH_MIN_BYTES;
    if (n <= 0) return;
    set_one_rate(&g, &thr, scale);
    if (nthreads > 1 && nsums > PARALLEL_MIN_BLOCKS) {
        #pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int t = 0; t < nthreads; t++) {
            int64_t k0, k1;
            thread_blocks(t, nthreads, nsums, &k0, &k1);
            dropout_abs_part(key, offset, n, k0, k1, &g, kind, x, out, partials, prefetch, stream);
            if (stream) fd_store_fence();
        }
    } else {
        dropout_abs_part(key, offset, n, 0, nsums, &g, kind, x, out, partials, prefetch, stream);
        if (stream) fd_store_fence();
    }
}

/* partials[k] = the sum of |x| over sum block offset / FD_SUM_BLOCK + k of C-contiguous x. */
static void abs_sums(int64_t offset, int64_t n, fd_kind_t kind, const void *x, double *partials, int nthreads) {
    int64_t nsums = n > 0 ? (offset % FD_SUM_BLOCK + n - 1) / FD_SUM_BLOCK + 1 : 0;
    int parallel = nthreads > 1 && nsums > PARALLEL_MIN_BLOCKS;
    #pragma omp parallel for schedule(static) num_threads(nthreads) if (parallel)
    for (int t = 0; t < nthreads; t++) {
        int64_t k0, k1;
        thread_blocks(t, nthreads, nsums, &k0, &k1);
        if (k0 < k1) abs_blocks_of(offset, n, k0, k1, kind, x, partials);
    }
}

#define FD_STR_(s) #s
#define FD_STR(s) FD_STR_(s)
static void gaussian_flat(uint64_t key, int64_t offset, float sigma, int half_noise, fd_kind_t kind, const void *x,
                          void *out, int64_t n, int nthreads) {
    nz_gaussian_flat(key, offset, sigma, half_noise, kind, x, out, n, nthreads, PARALLEL_MIN_BLOCKS);
}

/* --- dropout with a mask shared along a middle axis (variational dropout, channels_last
   spatial dropout): x is (outer, shared, inner) in C order, decision (a, f) is stream element
   offset + a * inner + f for every row t.  Each piece of a row's columns has its decisions
   drawn once into keep bytes, widened to masks of x's element width, and then every row of
   the piece is one select against them: nothing of x's size is stored. */
#define SHARED_PIECE 2048       /* columns per piece: their masks (at most 16 KiB) stay in L1 */

typedef union {                 /* the widened masks of one piece, in the width of x's elements */
    int16_t m16[SHARED_PIECE];
    int32_t m32[SHARED_PIECE];
    int64_t m64[SHARED_PIECE];
} shared_mask_t;

/* n elements of one row against the masks of its columns. */
static inline void shared_row(fd_kind_t kind, const int16_t *m16, const int32_t *m32, const int64_t *m64,
                              const void *scale, const char *x, char *out, int64_t n, int stream) {
    switch (kind) {
    case FD_F16:
        fd_masked_f16(m16, fd_half_to_float(*(const uint16_t *)scale), (const uint16_t *)x, (uint16_t *)out, n,
                      stream);
        break;
    case FD_BF16:
        fd_masked_bf16(m16, fd_bf16_to_float(*(const uint16_t *)scale), (const uint16_t *)x, (uint16_t *)out, n,
                       stream);
        break;
    case FD_F32:
        fd_masked_f32(m32, *(const float *)scale, (const float *)x, (float *)out, n, stream);
        break;
    case FD_F64:
        fd_masked_f64(m64, *(const double *)scale, (const double *)x, (double *)out, n, stream);
        break;
    case FD_KEEP: break;
    }
}

/* Piece `piece` (of pieces per sample) of sample a: columns f0 .. f0 + n of all its rows. */
static void shared_piece(uint64_t key, int64_t offset, int64_t a, int64_t f0, int64_t n, int64_t shared,
                         int64_t inner, const fd_rates_t *g, fd_kind_t kind, const void *scale,
                         const char *x, char *out, int prefetch, int stream) {
    uint8_t keep[SHARED_PIECE];
    shared_mask_t mask;
    int64_t size = fd_kind_bytes(kind);
    dropout_range(key, offset + a * inner + f0, n, 0, g, FD_KEEP, NULL, (char *)keep, 1, 0);
    if (size == 2)
        for (int64_t i = 0; i < n; i++) mask.m16[i] = (int16_t)-keep[i];
    else if (size == 4)
        for (int64_t i = 0; i < n; i++) mask.m32[i] = -(int32_t)keep[i];
    else
        for (int64_t i = 0; i < n; i++) mask.m64[i] = -(int64_t)keep[i];
    /* rows of the piece are prefetched about read_ahead elements ahead, as the dropout
       walks do: a piece's rows are not adjacent in memory, so each row is its own stream */
    int64_t ahead = (read_ahead(stream, size) + n - 1) / n;
    for (int64_t t = 0; t < shared; t++) {
        int64_t at = ((a * shared + t) * inner + f0) * size;
        if (prefetch && t + ahead < shared) {
            int64_t next = at + ahead * inner * size;
            prefetch_reads(x + next, n * size, stream, size);
            if (!stream) fd_prefetch(out + next, n * size, 1);
        }
        int64_t h = stream ? fd_stream_head(out + at, size, n) : 0;
        if (h) shared_row(kind, mask.m16, mask.m32, mask.m64, scale, x + at, out + at, h, 0);
        if (stream)
            shared_row(kind, mask.m16 + h, mask.m32 + h, mask.m64 + h, scale, x + at + h * size,
                       out + at + h * size, n - h, 1);
        else
            shared_row(kind, mask.m16, mask.m32, mask.m64, scale, x + at, out + at, n, 0);
    }
}

/* Rows a0 .. a0 + n of a leading noise shape (inner 1: row a, its `shared` contiguous
   elements, is decision offset + a): the n decisions drawn into keep bytes, then applied as
   apply_rows applies a mask of one byte per row. */
static void leading_piece(uint64_t key, int64_t offset, int64_t a0, int64_t n, int64_t shared, const fd_rates_t *g,
                          fd_kind_t kind, const void *scale, const char *x, char *out, int prefetch, int stream) {
    uint8_t keep[SHARED_PIECE];
    int64_t size = fd_kind_bytes(kind), dims[2] = {n, shared}, kstride[2] = {1, 0}, sstride[2] = {0, 0};
    const char *xa = x + a0 * shared * size;
    char *oa = out + a0 * shared * size;
    dropout_range(key, offset + a0, n, 0, g, FD_KEEP, NULL, (char *)keep, 1, 0);
    apply_rows_part(kind, xa, oa, keep, scale, 2, dims, kstride, sstride, n, prefetch, stream);
    if (stream) fd_store_fence();
}

/* n bytes from src to dst in 8-byte moves: both may be read or written up to 7 bytes past n. */
static inline void copy_padded(uint8_t *dst, const uint8_t *src, int64_t n) {
    for (int64_t b = 0; b < n; b += 8) memcpy(dst + b, src + b, 8);
}

/* Samples a0 .. a0 + na of (outer, shared, inner) with rows shorter than SHORT_ROW (rows of
   inner elements, or for inner 1 the sample of shared): their na * inner decisions drawn at
   once, then each sample's keep bytes, repeated over its rows, built EXPANDED bytes at a time
   and applied as one row (the samples are contiguous in x and out). */
static void short_rows_piece(uint64_t key, int64_t offset, int64_t a0, int64_t na, int64_t shared, int64_t inner,
                             const fd_rates_t *g, fd_kind_t kind, const void *scale, const char *x, char *out,
                             int prefetch, int stream) {
    uint8_t keep[SHARED_PIECE + 8], bytes[EXPANDED + 8];
    int64_t size = fd_kind_bytes(kind), start = a0 * shared * inner, fill = 0;
    /* a sample repeats `unit` bytes `reps` times: for inner 1 its one byte `shared` times */
    int64_t unit = inner == 1 ? shared : inner, reps = inner == 1 ? 1 : shared;
    dropout_range(key, offset + a0 * inner, na * inner, 0, g, FD_KEEP, NULL, (char *)keep, 1, 0);
    for (int64_t i = 0; i < na; i++) {
        for (int64_t r = 0; r < reps; r++) {
            if (fill + unit > EXPANDED) {
                apply_expanded(kind, bytes, fill, scale, x + start * size, out + start * size, prefetch, stream);
                start += fill;
                fill = 0;
            }
            if (inner == 1) {
                uint64_t eight = keep[i] * 0x0101010101010101ULL;
                for (int64_t b = 0; b < unit; b += 8) memcpy(bytes + fill + b, &eight, 8);
            } else {
                copy_padded(bytes + fill, keep + i * inner, unit);
            }
            fill += unit;
        }
    }
    if (fill) apply_expanded(kind, bytes, fill, scale, x + start * size, out + start * size, prefetch, stream);
    if (stream) fd_store_fence();
}

static void dropout_shared(uint64_t key, int64_t offset, int64_t outer, int64_t shared, int64_t inner, int32_t thr,
                           fd_kind_t kind, const void *scale, const void *x, void *out, int nthreads) {
    fd_rates_t g;
    /* Three walks: inner 1 (drop_path, channels_first spatial dropout) with long rows, pieces
       of SHARED_PIECE rows; short rows, pieces of the samples of SHARED_PIECE decisions;
       else pieces of SHARED_PIECE columns of one sample. */
    int leading = inner == 1 && shared >= SHORT_ROW, short_rows = !leading && inner < SHORT_ROW;
    int64_t per_piece = short_rows ? SHARED_PIECE / inner : SHARED_PIECE;       /* samples or rows */
    int64_t pieces = leading || short_rows ? 1 : (inner + SHARED_PIECE - 1) / SHARED_PIECE;
    int64_t total = leading || short_rows ? (outer + per_piece - 1) / per_piece : outer * pieces;
    int stream = fd_streams(outer * shared * inner * fd_kind_bytes(kind));
    int prefetch = outer * shared * inner * fd_kind_bytes(kind) > PREFETCH_MIN_BYTES;
    int parallel = nthreads > 1 && total > 1 && outer * shared * inner >= (int64_t)PARALLEL_MIN_BLOCKS * FD_BLOCK_CHUNKS;
    set_one_rate(&g, &thr, NULL);
    if (leading || short_rows) {        /* each piece ends with its fence */
        #pragma omp parallel for schedule(static) num_threads(nthreads) if (parallel)
        for (int64_t k = 0; k < total; k++) {
            int64_t a0 = k * per_piece, na = min64(per_piece, outer - a0);
            if (leading)
                leading_piece(key, offset, a0, na, shared, &g, kind, scale, x, out, prefetch, stream);
            else
                short_rows_piece(key, offset, a0, na, shared, inner, &g, kind, scale, x, out, prefetch, stream);
        }
    } else if (parallel) {
        #pragma omp parallel num_threads(nthreads)
        {
            #pragma omp for schedule(static) nowait
            for (int64_t k = 0; k < total; k++) {
                int64_t f0 = (k % pieces) * SHARED_PIECE;
                shared_piece(key, offset, k / pieces, f0, min64(SHARED_PIECE, inner - f0), shared, inner, &g, kind,
                             scale, x, out, prefetch, stream);
            }
            if (stream) fd_store_fence();
        }
    } else {
        for (int64_t k = 0; k < total; k++) {
            int64_t f0 = (k % pieces) * SHARED_PIECE;
            shared_piece(key, offset, k / pieces, f0, min64(SHARED_PIECE, inner - f0), shared, inner, &g, kind,
                         scale, x, out, prefetch, stream);
        }
        if (stream) fd_store_fence();
    }
}

static void concrete_flat(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t kind, const void *x,
                          void *out, int64_t n, int nthreads) {
    nz_concrete_flat(key, offset, logit, inv_t, kind, x, out, n, nthreads, PARALLEL_MIN_BLOCKS);
}

static void concrete_grad_flat(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t gkind,
                               fd_kind_t xkind, const void *x, const void *g, void *out, double *partials, int64_t n,
                               int nthreads) {
    nz_concrete_grad_flat(key, offset, logit, inv_t, gkind, xkind, x, g, out, partials, n, nthreads,
                          PARALLEL_MIN_BLOCKS);
}

/* --- dropout_add (_residual.h): out = residual + dropout(x + bias) in one pass ---------------- */
/* A walk's place in the rows of the rates (or of the bias): the row's base, the column and
   the outer indices (seek_row, next_row). */
typedef struct {
    int64_t base, col, idx[FD_MAX_DIMS];
} rate_cursor_t;

static inline void cursor_seek(const fd_rates_t *g, int64_t j, rate_cursor_t *c) {
    c->base = seek_row(g, j, c->idx, &c->col);
}

/* Elements left in the cursors' rows: of the rates and, where there is one, of the bias. */
static inline int64_t cursors_left(const fd_rates_t *g, const rate_cursor_t *gc, const fd_rates_t *bias,
                                   const rate_cursor_t *bc) {
    return bias ? min64(g->inner - gc->col, bias->inner - bc->col) : g->inner - gc->col;
}

static inline void cursor_advance(const fd_rates_t *g, rate_cursor_t *c, int64_t n) {
    c->col += n;
    if (c->col == g->inner) {
        c->col = 0;
        c->base = next_row(g, c->idx, c->base);
    }
}

/* n elements of one segment, within one row of the rates and of the bias, at the cursors. */
FD_INLINE void dropout_add_segment(const uint16_t *chunk, const fd_rates_t *g, const rate_cursor_t *gc,
                                   const fd_rates_t *bias, const rate_cursor_t *bc, fd_kind_t kind, const char *x,
                                   const char *res, char *out, int64_t n, int stream) {
    int64_t rr = gc->base + gc->col * g->step, br = bias ? bc->base + bc->col * bias->step : 0;
    int64_t bstep = bias ? bias->step : 0;
    switch (kind) {
    case FD_F16:
        fd_dropout_add_f16(chunk, g->thr + rr, (const uint16_t *)g->scale + rr, g->step,
                           bias ? (const uint16_t *)bias->scale + br : NULL, bstep, (const uint16_t *)x,
                           (const uint16_t *)res, (uint16_t *)out, n, stream);
        break;
    case FD_F32:
        fd_dropout_add_f32(chunk, g->thr + rr, (const float *)g->scale + rr, g->step,
                           bias ? (const float *)bias->scale + br : NULL, bstep, (const float *)x,
                           (const float *)res, (float *)out, n, stream);
        break;
    case FD_F64:
        fd_dropout_add_f64(chunk, g->thr + rr, (const double *)g->scale + rr, g->step,
                           bias ? (const double *)bias->scale + br : NULL, bstep, (const double *)x,
                           (const double *)res, (double *)out, n, stream);
        break;
    case FD_KEEP:
    case FD_BF16:           /* not kinds of dropout_add */
        break;
    }
}

/* n elements through segments split where a row of the rates or of the bias ends, the
   cursors following.  Where stream, out is aligned and n is whole vectors or ends the
   span: each row's whole vectors stream, and a vector across a row's end is computed into a
   buffer, each part with its own row's values, and streamed whole, so no line of out is
   written partly by ordinary stores (only the span's last partial vector is). */
FD_INLINE void dropout_add_pieces(const uint16_t *chunk, const fd_rates_t *g, rate_cursor_t *gc,
                                  const fd_rates_t *bias, rate_cursor_t *bc, fd_kind_t kind, const char *x,
                                  const char *res, char *out, int64_t n, int stream) {
    int64_t size = fd_kind_bytes(kind), lanes = kind_lanes(kind);
    for (int64_t i = 0; i < n;) {
        int64_t take = min64(n - i, cursors_left(g, gc, bias, bc));
        if (stream && take < n - i) take = take / lanes * lanes;     /* a row ends inside: its whole vectors */
        if (take > 0) {
            dropout_add_segment(chunk + i, g, gc, bias, bc, kind, x + i * size, res + i * size, out + i * size, take,
                                stream);
            cursor_advance(g, gc, take);
            if (bias) cursor_advance(bias, bc, take);
            i += take;
        } else if (n - i < lanes) {
            stream = 0;                 /* the span's last partial vector, across a row's end */
        } else {
            unsigned char across[64];   /* one vector: at most 64 bytes (FD_VBYTES) */
            for (int64_t q = 0, part; q < lanes; q += part) {
                part = min64(lanes - q, cursors_left(g, gc, bias, bc));
                dropout_add_segment(chunk + i + q, g, gc, bias, bc, kind, x + (i + q) * size, res + (i + q) * size,
                                    (char *)across + q * size, part, 0);
                cursor_advance(g, gc, part);
                if (bias) cursor_advance(bias, bc, part);
            }
            fd_store_vec(out + i * size, across, (size_t)(lanes * size), 1);
            i += lanes;
        }
    }
}

/* dropout_block with a residual and a bias, ordinary stores: elements lo..lo+n of block
   `block` are region elements j..j+n, each group of generator steps split where a row of
   the rates or of the bias ends. */
FD_INLINE void dropout_add_block(uint64_t key, int64_t block, int64_t lo, int64_t n, int64_t j, const fd_rates_t *g,
                                 const fd_rates_t *bias, fd_kind_t kind, const char *x, const char *res, char *out,
                                 int prefetch) {
    fd_gen_t gen;
    fd_group_t words;
    rate_cursor_t gc, bc;
    int64_t size = fd_kind_bytes(kind);
    cursor_seek(g, j, &gc);
    if (bias) cursor_seek(bias, j, &bc);
    fd_gen_seed(&gen, key, (uint64_t)block);
    for (int64_t group = 0; group < (lo + n + FD_GROUP_CHUNKS - 1) / FD_GROUP_CHUNKS; group++) {
        fd_gen_steps(&gen, FD_GROUP_STEPS, words.word);
        int64_t start = group * FD_GROUP_CHUNKS;
        if (start + FD_GROUP_CHUNKS <= lo) continue;
        int64_t a = max64(lo, start), b = min64(lo + n, start + FD_GROUP_CHUNKS);
        if (prefetch) {
            fd_prefetch(x + (a - lo + PREFETCH_AHEAD) * size, (b - a) * size, 0);
            fd_prefetch(res + (a - lo + PREFETCH_AHEAD) * size, (b - a) * size, 0);
            fd_prefetch(out + (a - lo + PREFETCH_AHEAD) * size, (b - a) * size, 1);
        }
        dropout_add_pieces(&words.chunk[a - start], g, &gc, bias, &bc, kind, x + (a - lo) * size,
                           res + (a - lo) * size, out + (a - lo) * size, b - a, 0);
    }
}

/* Elements s..e of the run (decisions offset + s ..) with streaming stores: plain_span's walk
   (its vectors follow out's alignment across groups and blocks), the rows split as in
   dropout_add_pieces.  x and the residual are prefetched; out is not (the streaming stores
   skip reading it). */
FD_INLINE void dropout_add_span(uint64_t key, int64_t offset, int64_t s, int64_t e, const fd_rates_t *g,
                                const fd_rates_t *bias, fd_kind_t kind, const char *x, const char *res, char *out,
                                int prefetch) {
    int64_t size = fd_kind_bytes(kind), lanes = kind_lanes(kind);
    int64_t aligned = s + fd_stream_head(out + s * size, size, e - s);
    int64_t d = s;
    rate_cursor_t gc, bc;
    span_decisions_t sd;
    cursor_seek(g, s, &gc);
    if (bias) cursor_seek(bias, s, &bc);
    span_start(&sd, key, offset, s);
    for (;;) {
        int64_t stop = min64(e, sd.base + FD_GROUP_CHUNKS);
        for (int64_t t; d < stop && (t = span_piece_end(d, stop, e, aligned, lanes)) > d; d = t)
            dropout_add_pieces(span_chunk(&sd, d), g, &gc, bias, &bc, kind, x + d * size,
                               res + d * size, out + d * size, t - d, d >= aligned);
        if (d >= e) break;
        if (prefetch) {
            int64_t next = sd.base + FD_GROUP_CHUNKS + read_ahead(1, size);
            prefetch_reads(x + next * size, FD_GROUP_CHUNKS * size, 1, size);
            prefetch_reads(res + next * size, FD_GROUP_CHUNKS * size, 1, size);
        }
        span_next(&sd, key, 0);
    }
}

/* The part of the run in its k-th block (as range_block), ordinary stores. */
FD_INLINE void dropout_add_range_block(uint64_t key, int64_t first, int64_t head, int64_t n, int64_t k,
                                       const fd_rates_t *g, const fd_rates_t *bias, fd_kind_t kind, const char *x,
                                       const char *res, char *out, int prefetch) {
    int64_t lo = max64(k * FD_BLOCK_CHUNKS - head, 0);
    int64_t hi = min64(k * FD_BLOCK_CHUNKS - head + FD_BLOCK_CHUNKS, n);
    int64_t size = fd_kind_bytes(kind);
    dropout_add_block(key, first + k, head + lo - k * FD_BLOCK_CHUNKS, hi - lo, lo, g, bias, kind, x + lo * size,
                      res + lo * size, out + lo * size, prefetch);
}

/* The kinds whose dropout_add streams its stores past the threshold (see dropout_add). */
#define DADD_STREAMS(kind) ((kind) == FD_F32 || (kind) == FD_F64)

/* Blocks k0..k1 of the run (k1 exclusive) of one kind: block by block, or where stream as
   one streaming span.  One function per kind, not inlined into one switch: each kind's loops
   then compile the same whatever the others do.  With the three inlined into one function, a
   change to the float64 case alone moved the float32 streaming run from 1.06x np.add's time
   to 1.20x (register allocation and scheduling of the whole function, bench/NOTES.md). */
#define FD_DADD_BLOCKS_OF(name, K)                                                                           \
    FD_NOINLINE void dropout_add_blocks_##name(uint64_t key, int64_t offset, int64_t n, int64_t k0, int64_t k1, \
                                              const fd_rates_t *g, const fd_rates_t *bias, const char *x,    \
                                              const char *res, char *out, int prefetch, int stream) {        \
        int64_t first = offset / FD_BLOCK_CHUNKS, head = offset - first * FD_BLOCK_CHUNKS;                   \
        if (DADD_STREAMS(K) && stream) {                                                                     \
            dropout_add_span(key, offset, max64(k0 * FD_BLOCK_CHUNKS - head, 0),                             \
                             min64(k1 * FD_BLOCK_CHUNKS - head, n), g, bias, K, x, res, out, prefetch);      \
            return;                                                                                          \
        }                                                                                                    \
        for (int64_t k = k0; k < k1; k++)                                                                    \
            dropout_add_range_block(key, first, head, n, k, g, bias, K, x, res, out, prefetch);              \
    }
FD_DADD_BLOCKS_OF(f16, FD_F16)
FD_DADD_BLOCKS_OF(f32, FD_F32)
FD_DADD_BLOCKS_OF(f64, FD_F64)
#undef FD_DADD_BLOCKS_OF

static void dropout_add_blocks_of(uint64_t key, int64_t offset, int64_t n, int64_t k0, int64_t k1,
                                  const fd_rates_t *g, const fd_rates_t *bias, fd_kind_t kind, const char *x,
                                  const char *res, char *out, int prefetch, int stream) {
    switch (kind) {
    case FD_F16: dropout_add_blocks_f16(key, offset, n, k0, k1, g, bias, x, res, out, prefetch, stream); break;
    case FD_F32: dropout_add_blocks_f32(key, offset, n, k0, k1, g, bias, x, res, out, prefetch, stream); break;
    case FD_F64: dropout_add_blocks_f64(key, offset, n, k0, k1, g, bias, x, res, out, prefetch, stream); break;
    case FD_KEEP: case FD_BF16: break;
    }
}

/* out[j] = residual[j] + dropout(x[j] + bias[j]) over the n elements of C-contiguous arrays,
   decision j being stream element offset + j.  float32 and float64 outputs past the streaming
   threshold stream their stores where the rates and the bias take the vector loops: at 16M on
   AMD Zen 5, float64 0.85-0.90x np.add's time against 1.25x with ordinary stores, float32
   0.96-1.07x against 1.18-1.25x (bench/NOTES.md).  float16 ones do not: streamed, its 16M
   run took 3.95 ms against 3.53 with ordinary stores.  Threads split the blocks as
   plain_range does (thread_blocks) and fence their own stores. */
static void dropout_add(uint64_t key, int64_t offset, int64_t n, const fd_rates_t *g, const fd_rates_t *bias,
                        fd_kind_t kind, const void *x, const void *residual, void *out, int nthreads) {
    int64_t head = offset % FD_BLOCK_CHUNKS;
    int64_t nblocks = (head + n - 1) / FD_BLOCK_CHUNKS + 1;
    int prefetch = n * fd_kind_bytes(kind) > PREFETCH_MIN_BYTES;
    int vectors = fd_rates_layout(g->step) != FD_RA_STRIDED
                  && (!bias || fd_bias_layout(bias->scale, bias->step) != FD_BI_STRIDED);
    int stream = vectors && DADD_STREAMS(kind) && fd_streams(n * fd_kind_bytes(kind));
    if (n <= 0 || kind == FD_KEEP || kind == FD_BF16) return;
    if (nthreads > 1 && nblocks > PARALLEL_MIN_BLOCKS) {
        #pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int t = 0; t < nthreads; t++) {
            int64_t k0, k1;
            thread_blocks(t, nthreads, nblocks, &k0, &k1);
            if (k0 < k1) dropout_add_blocks_of(key, offset, n, k0, k1, g, bias, kind, x, residual, out, prefetch, stream);
            if (stream) fd_store_fence();
        }
    } else {
        dropout_add_blocks_of(key, offset, n, 0, nblocks, g, bias, kind, x, residual, out, prefetch, stream);
        if (stream) fd_store_fence();
    }
}


const fd_kernels_t FD_TABLE(FD_VARIANT) = {FD_STR(FD_VARIANT), dropout_rows, apply_rows, fill_words,
                                           alpha_flat, fd_dropblock_keep, gaussian_flat,
                                           dropout_shared, concrete_flat, concrete_grad_flat, dropout_add,
                                           dropout_abs_flat, abs_sums};
