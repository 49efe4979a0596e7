/*
 * The compiled kernel of streammix, owned by streammix.core.kernel: the E-step
 * of one chunk in one sweep (for streammix.core.stats) and, further down, the
 * plain ML M-step of online EM (for streammix.core.plain_mstep).
 *
 * Computes, for one parameter set, the same running sums as the numpy path
 * of core/stats.py (_BlockRun + _Accumulator): for rows in cache-sized blocks,
 * residuals r = y - b0 - coef x, component log-densities, log-sum-exp
 * responsibilities, and the sums
 *
 *   g1[j, k]     += sum w g_j x_k        g1[m + j, k] += sum w g_j r_j x_k
 *   hsum[j]      += sum w g_j            hsum[m + j]  += sum w g_j r_j
 *   s2p[j, (k,l)] += sum w g_j x_k x_l   (k <= l, upper triangle by rows)
 *   r0[j]        += sum w g_j r_j^2
 *   out[0]       += sum w log p(y|x)     out[1]       += sum w max_j log(pi_j f_j)
 *
 * The work between the loads of a block is fused, so no per-block
 * temporaries leave the L1/L2 cache and no Python call is made per block.
 * exp and log come from glibc's vector math library (libmvec) on x86-64;
 * the function is compiled for AVX-512, AVX2 and baseline x86-64 and the
 * loader picks the best one the CPU has.  The GIL is released while it runs.
 *
 * Arrays are passed through the buffer protocol.  The features FT (d, n)
 * may have contiguous features (a row slice of an F-ordered X) or contiguous
 * rows (X.T of a C-ordered X; each block is then transposed in cache).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 \
    && !defined(SM_NO_MVEC)
/* Declared here rather than taken from <math.h>, which only attaches the
 * vector variants under -ffast-math (that would also drop NaN semantics). */
__attribute__((simd("notinbranch"), const, nothrow)) double exp(double);
__attribute__((simd("notinbranch"), const, nothrow)) double log(double);
#define SM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define SM_HAVE_CLONES 1
#else
#include <math.h>
#define SM_CLONES
#endif

#ifndef BLOCK
#define BLOCK 256
#endif
/* Distance between the rows of the per-block scratch arrays: not a multiple
 * of 4 KiB, so that the rows a 4 x 4 tile reads at once do not fall into
 * the same L1 cache sets. */
#define LDB (BLOCK + 8)

/* "omp simd" (honoured under -fopenmp-simd) lets the sums be vectorised. */
#if defined(__GNUC__)
#define SM_PRAGMA(x) _Pragma(#x)
#define SIMD SM_PRAGMA(omp simd)
#define SM_INLINE static inline __attribute__((always_inline))
#ifndef SM_PF_LOCALITY
#define SM_PF_LOCALITY 2
#endif
#ifndef SM_PREFETCH  /* tests/core/prefetch_harness.c records the addresses */
#define SM_PREFETCH(p) __builtin_prefetch((p), 0, SM_PF_LOCALITY)
#endif
#else
#define SM_PRAGMA(x)
#define SIMD
#define SM_INLINE static inline
#ifndef SM_PREFETCH
#define SM_PREFETCH(p) ((void)(p))
#endif
#endif

typedef struct {
    Py_ssize_t d, m, n, fstride, rowstride, tile_min_d;
    int vec;  /* the vector-extension code runs (vector_lanes), else the plain loops */
    const double *F, *y, *w, *coef, *b0, *lognorm, *inv2s2;
    double *g1, *hsum, *s2p, *r0, *out;
    double *buf;
} Job;

/* Four dot products of T with rows l0..l0+3 of F, added to out[0..cnt-1].
 * Four independent sums keep the FMA units busy (one sum is latency-bound). */
SM_INLINE void dot4(const double *T, const double *F, Py_ssize_t fs, Py_ssize_t l0, Py_ssize_t cnt,
          Py_ssize_t nb, double *out)
{
    const double *a = F + l0 * fs;
    const double *b = F + (l0 + (cnt > 1 ? 1 : 0)) * fs;
    const double *c = F + (l0 + (cnt > 2 ? 2 : 0)) * fs;
    const double *e = F + (l0 + (cnt > 3 ? 3 : 0)) * fs;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    SM_PRAGMA(omp simd reduction(+:s0, s1, s2, s3))
    for (Py_ssize_t i = 0; i < nb; i++) {
        s0 += T[i] * a[i];
        s1 += T[i] * b[i];
        s2 += T[i] * c[i];
        s3 += T[i] * e[i];
    }
    out[0] += s0;
    if (cnt > 1) out[1] += s1;
    if (cnt > 2) out[2] += s2;
    if (cnt > 3) out[3] += s3;
}

#define UP4(x) (((x) + 3) / 4 * 4)

/* The scratch of a job starts on a cache line (malloc gives 16 bytes): with
 * rows LDB (a multiple of 8 doubles) apart, a vector of 8 doubles is then
 * never split between two lines.  raw NULL gives NULL. */
static double *aligned64(void *raw)
{
    return raw == NULL ? NULL : (double *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
}

/* A 4 x 4 tile of dot products: out[r * ld + c] += sum_i a_r[i] b_c[i], rows
 * a_r = a + r * as, b_c = b + c * bs.  Eight loads feed sixteen FMAs, so the
 * loop is bound by the FMA units, not by the loads (as dot4 is). */
SM_INLINE void tile4x4(const double *a, Py_ssize_t as, const double *b, Py_ssize_t bs,
                       Py_ssize_t nb, double *out, Py_ssize_t ld)
{
    const double *a0 = a, *a1 = a + as, *a2 = a + 2 * as, *a3 = a + 3 * as;
    const double *b0 = b, *b1 = b + bs, *b2 = b + 2 * bs, *b3 = b + 3 * bs;
    double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
    SM_PRAGMA(omp simd reduction(+:s00, s01, s02, s03, s10, s11, s12, s13, \
                                 s20, s21, s22, s23, s30, s31, s32, s33))
    for (Py_ssize_t i = 0; i < nb; i++) {
        const double x0 = a0[i], x1 = a1[i], x2 = a2[i], x3 = a3[i];
        const double y0 = b0[i], y1 = b1[i], y2 = b2[i], y3 = b3[i];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
    }
    out[0] += s00; out[1] += s01; out[2] += s02; out[3] += s03;
    out += ld;
    out[0] += s10; out[1] += s11; out[2] += s12; out[3] += s13;
    out += ld;
    out[0] += s20; out[1] += s21; out[2] += s22; out[3] += s23;
    out += ld;
    out[0] += s30; out[1] += s31; out[2] += s32; out[3] += s33;
}

/* A 4 x c tile (c = 1 or 2): out[r * ld + k] += sum_i a_r[i] b_k[i]. */
SM_INLINE void tile4x2(const double *a, Py_ssize_t as, const double *b, Py_ssize_t bs,
                       Py_ssize_t nb, double *out, Py_ssize_t ld)
{
    const double *a0 = a, *a1 = a + as, *a2 = a + 2 * as, *a3 = a + 3 * as;
    const double *b0 = b, *b1 = b + bs;
    double s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
    SM_PRAGMA(omp simd reduction(+:s00, s01, s10, s11, s20, s21, s30, s31))
    for (Py_ssize_t i = 0; i < nb; i++) {
        const double y0 = b0[i], y1 = b1[i];
        s00 += a0[i] * y0; s01 += a0[i] * y1;
        s10 += a1[i] * y0; s11 += a1[i] * y1;
        s20 += a2[i] * y0; s21 += a2[i] * y1;
        s30 += a3[i] * y0; s31 += a3[i] * y1;
    }
    out[0] += s00; out[1] += s01; out[ld] += s10; out[ld + 1] += s11;
    out[2 * ld] += s20; out[2 * ld + 1] += s21; out[3 * ld] += s30; out[3 * ld + 1] += s31;
}

SM_INLINE void tile4x1(const double *a, Py_ssize_t as, const double *b, Py_ssize_t nb,
                       double *out, Py_ssize_t ld)
{
    const double *a0 = a, *a1 = a + as, *a2 = a + 2 * as, *a3 = a + 3 * as;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    SM_PRAGMA(omp simd reduction(+:s0, s1, s2, s3))
    for (Py_ssize_t i = 0; i < nb; i++) {
        const double y = b[i];
        s0 += a0[i] * y; s1 += a1[i] * y; s2 += a2[i] * y; s3 += a3[i] * y;
    }
    out[0] += s0; out[ld] += s1; out[2 * ld] += s2; out[3 * ld] += s3;
}

/* The upper triangle of sum_i a_k[i] b_l[i], k <= l < q, into acc (leading
 * dimension ld; rows of a and b BLOCK apart): 4 x 4 tiles, then 4 x 2 and
 * 4 x 1 tiles for the last q mod 4 columns and single dot products for the
 * last q mod 4 rows, so that little is computed that is not wanted. */
SM_INLINE void upper_tiles(const double *a, const double *b, Py_ssize_t q, Py_ssize_t nb,
                           double *acc, Py_ssize_t ld)
{
    const Py_ssize_t q4 = q / 4 * 4;
    for (Py_ssize_t k = 0; k < q4; k += 4) {
        const double *ak = a + k * LDB;
        double *row = acc + k * ld;
        Py_ssize_t l = k;
        for (; l < q4; l += 4) tile4x4(ak, LDB, b + l * LDB, LDB, nb, row + l, ld);
        if (q - l >= 2) {
            tile4x2(ak, LDB, b + l * LDB, LDB, nb, row + l, ld);
            l += 2;
        }
        if (l < q) tile4x1(ak, LDB, b + l * LDB, nb, row + l, ld);
    }
    for (Py_ssize_t k = q4; k < q; k++) {
        const double *ak = a + k * LDB;
        for (Py_ssize_t l = k; l < q; l++) {
            const double *bl = b + l * LDB;
            double s = 0.0;
            SM_PRAGMA(omp simd reduction(+:s))
            for (Py_ssize_t i = 0; i < nb; i++) s += ak[i] * bl[i];
            acc[k * ld + l] += s;
        }
    }
}

/* A walk over the cache lines of the next block's rows (features, y, w), a
 * few lines at a time between the tiles of the current block's Gram
 * (lane_gram, or the 4 x 4 tiles of the plain loops), so that the next block
 * is in the L2 cache when its residuals read it.  One burst of prefetches for the whole block (in the residuals)
 * stalls on the line-fill buffers, which then wait for memory; spread over
 * the Gram, which runs on the FMA units, the loads cost next to nothing.
 * Prefetches change no result. */
typedef struct {
    const double *F, *y, *w;   /* the next block's rows */
    Py_ssize_t fs, d, flen;    /* d runs of flen doubles, run k of F at F + k fs */
    Py_ssize_t len;            /* and len doubles of y and of w */
    Py_ssize_t off;            /* 1: the runs start off cache lines, so span a line more */
    Py_ssize_t k;              /* the run being fetched (d: y, d + 1: w; beyond: done) */
    const double *run;         /* its start, its length, its next line and lines */
    Py_ssize_t runlen, line, lines;
    Py_ssize_t step;           /* lines a call of pf_lines fetches */
} Prefetch;

/* Line i of a run is fetched at its double 8 i, the last line (when the run
 * starts off a line) at its last double: every address formed is inside the
 * arrays (one past their end is already undefined behaviour in C, even for
 * an address only prefetched). */
SM_INLINE void pf_lines(Prefetch *p)
{
    for (Py_ssize_t c = 0; c < p->step; c++) {
        if (p->line == p->lines) {  /* the next run */
            if (++p->k > p->d + 1) return;
            p->run = p->k < p->d ? p->F + p->k * p->fs : p->k == p->d ? p->y : p->w;
            p->runlen = p->k < p->d ? p->flen : p->len;
            p->line = 0;
            p->lines = (p->runlen + 7) / 8 + p->off;
        }
        const Py_ssize_t at = 8 * p->line < p->runlen ? 8 * p->line : p->runlen - 1;
        SM_PREFETCH(p->run + at);
        p->line++;
    }
}

#if defined(__GNUC__) && !defined(SM_NO_VEC)
/* GCC/Clang vector extensions: each target_clones copy compiles them for its
 * own vector width (8 doubles are one AVX-512 register, two AVX2 ones).
 * Elsewhere (or built with -DSM_NO_VEC, to test it) the plain loops run. */
#define SM_VEC 1
typedef double v8d __attribute__((vector_size(64), aligned(8)));

/* R_j = y - b0_j - coef_j . x for the rows [i0, i1) of a block, i1 - i0 a
 * multiple of 16, for the jt (1..4) components c[0..jt-1]: 16 rows and jt
 * components at a time in registers (2 jt independent sums), so that each
 * feature is loaded once for jt components and no partial residual is stored.
 * cp: the features are also copied to cp (rows LDB apart; NULL: not). */
SM_INLINE void residual_rows(const double *F, Py_ssize_t fs, Py_ssize_t d, const double *yb,
                             const double *const *c, const double *b, double *R,
                             Py_ssize_t i0, Py_ssize_t i1, const int jt, double *cp)
{
    for (Py_ssize_t i = i0; i < i1; i += 16) {
        const v8d ya = *(const v8d *)(yb + i), yc = *(const v8d *)(yb + i + 8);
        v8d r0 = ya - b[0], r1 = ya - b[1], r2 = ya - b[2], r3 = ya - b[3];
        v8d q0 = yc - b[0], q1 = yc - b[1], q2 = yc - b[2], q3 = yc - b[3];
        for (Py_ssize_t k = 0; k < d; k++) {
            const v8d f = *(const v8d *)(F + k * fs + i), h = *(const v8d *)(F + k * fs + i + 8);
            if (cp != NULL) {
                *(v8d *)(cp + k * LDB + i) = f;
                *(v8d *)(cp + k * LDB + i + 8) = h;
            }
            r0 -= c[0][k] * f; q0 -= c[0][k] * h;
            if (jt > 1) { r1 -= c[1][k] * f; q1 -= c[1][k] * h; }
            if (jt > 2) { r2 -= c[2][k] * f; q2 -= c[2][k] * h; }
            if (jt > 3) { r3 -= c[3][k] * f; q3 -= c[3][k] * h; }
        }
        *(v8d *)(R + i) = r0; *(v8d *)(R + i + 8) = q0;
        if (jt > 1) { *(v8d *)(R + LDB + i) = r1; *(v8d *)(R + LDB + i + 8) = q1; }
        if (jt > 2) { *(v8d *)(R + 2 * LDB + i) = r2; *(v8d *)(R + 2 * LDB + i + 8) = q2; }
        if (jt > 3) { *(v8d *)(R + 3 * LDB + i) = r3; *(v8d *)(R + 3 * LDB + i + 8) = q3; }
    }
}

/* R_j = y - b0_j - coef_j . x for the block's rows (R rows LDB apart): up to
 * four components and 16 rows at a time in registers (residual_rows), the
 * last nb mod 16 rows one at a time.  The operations on each row are those of
 * the plain loop, in the same order, so the residuals are the same to the bit.
 * b0 NULL: no intercept apart from the design's.  cp: the block's features are
 * copied there on the way (rows LDB apart; NULL: not), and read from there by
 * the groups of components after the first. */
SM_INLINE void block_residuals(const double *F, Py_ssize_t fs, Py_ssize_t d, Py_ssize_t m,
                               Py_ssize_t nb, const double *yb, const double *coef,
                               const double *b0, double *R, double *cp)
{
    const Py_ssize_t n16 = nb / 16 * 16;
    for (Py_ssize_t j = 0; j < m; j += 4) {
        const Py_ssize_t jt = m - j < 4 ? m - j : 4;
        const double *c[4];
        double b[4];
        for (int a = 0; a < 4; a++) {  /* a group of fewer than 4 repeats its last */
            const Py_ssize_t ja = j + (a < jt ? a : jt - 1);
            c[a] = coef + ja * d;
            b[a] = b0 != NULL ? b0[ja] : 0.0;
        }
        double *Rj = R + j * LDB;
        if (cp != NULL) {  /* one copy of the loop for each group size */
            switch (jt) {
            case 1: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 1, cp); break;
            case 2: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 2, cp); break;
            case 3: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 3, cp); break;
            default: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 4, cp); break;
            }
            for (Py_ssize_t k = 0; k < d; k++)
                for (Py_ssize_t i = n16; i < nb; i++) cp[k * LDB + i] = F[k * fs + i];
            F = cp;
            fs = LDB;
            cp = NULL;
        } else {
            switch (jt) {
            case 1: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 1, NULL); break;
            case 2: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 2, NULL); break;
            case 3: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 3, NULL); break;
            default: residual_rows(F, fs, d, yb, c, b, Rj, 0, n16, 4, NULL); break;
            }
        }
        for (Py_ssize_t a = 0; a < jt; a++) {  /* the last nb mod 16 rows */
            double *Ra = R + (j + a) * LDB;
            for (Py_ssize_t i = n16; i < nb; i++) {
                double r = yb[i] - b[a];
                for (Py_ssize_t k = 0; k < d; k++) r -= c[a][k] * F[k * fs + i];
                Ra[i] = r;
            }
        }
    }
}

/* Two-source shuffles of v8d (lanes 0-7 of a, 8-15 of b). */
#if defined(__clang__)
#define SM_SHUF(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
typedef long long v8l __attribute__((vector_size(64)));
#define SM_SHUF(a, b, ...) __builtin_shuffle((a), (b), (v8l){__VA_ARGS__})
#endif

/* out[k * LDB + i] = X[i * rs + k] for k < d8 and i < n8 (multiples of 8;
 * d8 <= rs): the rows of (n, d) C-ordered features transposed into the
 * block's columns 8 x 8 in registers (24 shuffles, 8 loads and 8 stores a
 * square; the compiler's own loop loads one double at a time).  A copy: the
 * values are those of the plain loop. */
SM_INLINE void transpose8(const double *X, Py_ssize_t rs, Py_ssize_t d8, Py_ssize_t n8,
                          double *out)
{
    for (Py_ssize_t i = 0; i < n8; i += 8) {
        const double *x = X + i * rs;
        for (Py_ssize_t k = 0; k < d8; k += 8) {
            const v8d r0 = *(const v8d *)(x + k), r1 = *(const v8d *)(x + rs + k);
            const v8d r2 = *(const v8d *)(x + 2 * rs + k), r3 = *(const v8d *)(x + 3 * rs + k);
            const v8d r4 = *(const v8d *)(x + 4 * rs + k), r5 = *(const v8d *)(x + 5 * rs + k);
            const v8d r6 = *(const v8d *)(x + 6 * rs + k), r7 = *(const v8d *)(x + 7 * rs + k);
            /* pairs of rows: even and odd columns */
            const v8d t0 = SM_SHUF(r0, r1, 0, 8, 2, 10, 4, 12, 6, 14);
            const v8d t1 = SM_SHUF(r0, r1, 1, 9, 3, 11, 5, 13, 7, 15);
            const v8d t2 = SM_SHUF(r2, r3, 0, 8, 2, 10, 4, 12, 6, 14);
            const v8d t3 = SM_SHUF(r2, r3, 1, 9, 3, 11, 5, 13, 7, 15);
            const v8d t4 = SM_SHUF(r4, r5, 0, 8, 2, 10, 4, 12, 6, 14);
            const v8d t5 = SM_SHUF(r4, r5, 1, 9, 3, 11, 5, 13, 7, 15);
            const v8d t6 = SM_SHUF(r6, r7, 0, 8, 2, 10, 4, 12, 6, 14);
            const v8d t7 = SM_SHUF(r6, r7, 1, 9, 3, 11, 5, 13, 7, 15);
            /* quadruples of rows: columns (0, 4), (2, 6), (1, 5), (3, 7) */
            const v8d u0 = SM_SHUF(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
            const v8d u1 = SM_SHUF(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
            const v8d u2 = SM_SHUF(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
            const v8d u3 = SM_SHUF(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
            const v8d u4 = SM_SHUF(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
            const v8d u5 = SM_SHUF(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
            const v8d u6 = SM_SHUF(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
            const v8d u7 = SM_SHUF(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
            double *o = out + k * LDB + i;
            *(v8d *)o = SM_SHUF(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);
            *(v8d *)(o + 4 * LDB) = SM_SHUF(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
            *(v8d *)(o + 2 * LDB) = SM_SHUF(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);
            *(v8d *)(o + 6 * LDB) = SM_SHUF(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
            *(v8d *)(o + LDB) = SM_SHUF(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);
            *(v8d *)(o + 5 * LDB) = SM_SHUF(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
            *(v8d *)(o + 3 * LDB) = SM_SHUF(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);
            *(v8d *)(o + 7 * LDB) = SM_SHUF(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
        }
    }
}

/* acc (q4 x q4, upper tiles) += the horizontal sums of the lanes of its tiles. */
SM_INLINE void lane_sums(const v8d *lanes, Py_ssize_t q4, double *acc)
{
    for (Py_ssize_t k = 0; k < q4; k += 4)
        for (Py_ssize_t l = k; l < q4; l += 4, lanes += 16)
            for (int t = 0; t < 16; t++) {
                double sum = 0.0;
                for (int e = 0; e < 8; e++) sum += lanes[t][e];
                acc[(k + t / 4) * q4 + l + t % 4] += sum;
            }
}

/* The 4 x 4 lane tile (lane_tile4x4) with the rows of b given by pointers (rows
 * of the chunk read in place, a row of ones, rows of zeros). */
SM_INLINE void lane_tile4x4p(const double *a, const double *const *b, Py_ssize_t nb, v8d *out)
{
    const double *a0 = a, *a1 = a + LDB, *a2 = a + 2 * LDB, *a3 = a + 3 * LDB;
    const double *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    v8d s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0}, s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};
    v8d s20 = {0}, s21 = {0}, s22 = {0}, s23 = {0}, s30 = {0}, s31 = {0}, s32 = {0}, s33 = {0};
    for (Py_ssize_t i = 0; i < nb; i += 8) {
        const v8d x0 = *(const v8d *)(a0 + i), x1 = *(const v8d *)(a1 + i);
        const v8d x2 = *(const v8d *)(a2 + i), x3 = *(const v8d *)(a3 + i);
        const v8d y0 = *(const v8d *)(b0 + i), y1 = *(const v8d *)(b1 + i);
        const v8d y2 = *(const v8d *)(b2 + i), y3 = *(const v8d *)(b3 + i);
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        s20 += x2 * y0; s21 += x2 * y1; s22 += x2 * y2; s23 += x2 * y3;
        s30 += x3 * y0; s31 += x3 * y1; s32 += x3 * y2; s33 += x3 * y3;
    }
    out[0] += s00; out[1] += s01; out[2] += s02; out[3] += s03;
    out[4] += s10; out[5] += s11; out[6] += s12; out[7] += s13;
    out[8] += s20; out[9] += s21; out[10] += s22; out[11] += s23;
    out[12] += s30; out[13] += s31; out[14] += s32; out[15] += s33;
}

/* The 4 x 4 tile of tile4x4 over nb rows (a multiple of 8; rows LDB apart),
 * its 16 sums kept as vectors of 8 partial sums and added to out[0..15]:
 * the horizontal sums are left to the end of the chunk (lane_sums) instead
 * of closing every 256-row block (measured about 15-20% faster than tile4x4
 * at 20 and 52 columns, one thread).  lane_tile4x4p on b's rows. */
SM_INLINE void lane_tile4x4(const double *a, const double *b, Py_ssize_t nb, v8d *out)
{
    const double *const rows[4] = {b, b + LDB, b + 2 * LDB, b + 3 * LDB};
    lane_tile4x4p(a, rows, nb, out);
}

/* One band of lane_gram: TT (4 x nb8) = g z_k..k+3, the band's diagonal tile
 * (the 10 sums g z_r z_c, r <= c) and sum gr z_r into lanes and grx, from one
 * load of the band's columns.  store: whether TT is wanted (not for the last band). */
SM_INLINE void lane_band(const double *const *Z, const double *g, const double *gr,
                         Py_ssize_t nb8, double *TT, v8d *out, v8d *grx, const int store)
{
    const double *z0 = Z[0], *z1 = Z[1], *z2 = Z[2], *z3 = Z[3];
    v8d e0 = {0}, e1 = {0}, e2 = {0}, e3 = {0};
    v8d s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0}, s11 = {0}, s12 = {0}, s13 = {0};
    v8d s22 = {0}, s23 = {0}, s33 = {0};
    for (Py_ssize_t i = 0; i < nb8; i += 8) {
        const v8d gv = *(const v8d *)(g + i), rv = *(const v8d *)(gr + i);
        const v8d x0 = *(const v8d *)(z0 + i), x1 = *(const v8d *)(z1 + i);
        const v8d x2 = *(const v8d *)(z2 + i), x3 = *(const v8d *)(z3 + i);
        const v8d t0 = gv * x0, t1 = gv * x1, t2 = gv * x2, t3 = gv * x3;
        if (store) {
            *(v8d *)(TT + i) = t0;
            *(v8d *)(TT + LDB + i) = t1;
            *(v8d *)(TT + 2 * LDB + i) = t2;
            *(v8d *)(TT + 3 * LDB + i) = t3;
        }
        e0 += rv * x0; e1 += rv * x1; e2 += rv * x2; e3 += rv * x3;
        s00 += t0 * x0; s01 += t0 * x1; s02 += t0 * x2; s03 += t0 * x3;
        s11 += t1 * x1; s12 += t1 * x2; s13 += t1 * x3;
        s22 += t2 * x2; s23 += t2 * x3;
        s33 += t3 * x3;
    }
    grx[0] += e0; grx[1] += e1; grx[2] += e2; grx[3] += e3;
    out[0] += s00; out[1] += s01; out[2] += s02; out[3] += s03;
    out[5] += s11; out[6] += s12; out[7] += s13;
    out[10] += s22; out[11] += s23;
    out[15] += s33;
}

/* The Gram sums of one component over one block (nb8 rows, a multiple of 8),
 * in vector lanes: for each band of 4 columns k of [x, 1], the band's rows
 * w g z_k (4 x nb8, in L1) and its diagonal tile are formed in one sweep
 * (lane_band), then the band's tiles against the columns l > k are added to
 * lanes (16 a tile; a diagonal tile's 6 below the diagonal stay 0), and
 * sum w g r z_k to grx[k] (k < q4).  Z[k] points at column k of the block;
 * g and gr are w g and w g r (zero past nb). */
SM_INLINE void lane_gram(const double *const *Z, Py_ssize_t q4, const double *g,
                         const double *gr, Py_ssize_t nb8, double *TT, v8d *lanes, v8d *grx,
                         Prefetch *pf)
{
    for (Py_ssize_t k = 0; k < q4; k += 4) {
        pf_lines(pf);
        if (k + 4 < q4) {
            lane_band(Z + k, g, gr, nb8, TT, lanes, grx + k, 1);
        } else {
            lane_band(Z + k, g, gr, nb8, TT, lanes, grx + k, 0);
        }
        lanes += 16;
        for (Py_ssize_t l = k + 4; l < q4; l += 4, lanes += 16) {
            pf_lines(pf);
            lane_tile4x4p(TT, Z + l, nb8, lanes);
        }
    }
}
#endif

#ifdef SM_VEC
typedef double v4d __attribute__((vector_size(32), aligned(8)));
#if defined(__clang__)
#define SM_SHUF4(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
typedef long long v4l __attribute__((vector_size(32)));
#define SM_SHUF4(a, b, ...) __builtin_shuffle((a), (b), (v4l){__VA_ARGS__})
#endif

/* out[(k0 + c) * LDB + i] = X[i * rs + k0 + c] for c < 4 and i < n4 (a
 * multiple of 4; k0 + 4 <= rs): four columns of (n, d) C-ordered features
 * transposed 4 x 4 in registers (8 shuffles a square), as transpose8 does
 * eight; run_info's columns past the last multiple of 8 (d = 4..7) and the
 * E-step's at d = 4..7 features (below tile_min_d).  A copy. */
SM_INLINE void transpose4(const double *X, Py_ssize_t rs, Py_ssize_t k0, Py_ssize_t n4,
                          double *out)
{
    double *o0 = out + k0 * LDB, *o1 = o0 + LDB, *o2 = o1 + LDB, *o3 = o2 + LDB;
    for (Py_ssize_t i = 0; i < n4; i += 4) {
        const double *x = X + i * rs + k0;
        const v4d r0 = *(const v4d *)x, r1 = *(const v4d *)(x + rs);
        const v4d r2 = *(const v4d *)(x + 2 * rs), r3 = *(const v4d *)(x + 3 * rs);
        const v4d t0 = SM_SHUF4(r0, r1, 0, 4, 2, 6), t1 = SM_SHUF4(r0, r1, 1, 5, 3, 7);
        const v4d t2 = SM_SHUF4(r2, r3, 0, 4, 2, 6), t3 = SM_SHUF4(r2, r3, 1, 5, 3, 7);
        *(v4d *)(o0 + i) = SM_SHUF4(t0, t2, 0, 1, 4, 5);
        *(v4d *)(o1 + i) = SM_SHUF4(t1, t3, 0, 1, 4, 5);
        *(v4d *)(o2 + i) = SM_SHUF4(t0, t2, 2, 3, 6, 7);
        *(v4d *)(o3 + i) = SM_SHUF4(t1, t3, 2, 3, 6, 7);
    }
}

/* out[(k0 + c) * LDB + i] = X[i * rs + k0 + c] for c < 2 and i < n2 (a
 * multiple of 2; k0 + 2 <= d): two columns of (n, d) C-ordered features
 * transposed 2 x 2 in registers, for the E-step's fused path at 2 and 3
 * features.  A copy. */
typedef double v2d __attribute__((vector_size(16), aligned(8)));
#if defined(__clang__)
#define SM_SHUF2(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
typedef long long v2l __attribute__((vector_size(16)));
#define SM_SHUF2(a, b, ...) __builtin_shuffle((a), (b), (v2l){__VA_ARGS__})
#endif
SM_INLINE void transpose2(const double *X, Py_ssize_t rs, Py_ssize_t k0, Py_ssize_t n2,
                          double *out)
{
    double *o0 = out + k0 * LDB, *o1 = o0 + LDB;
    for (Py_ssize_t i = 0; i < n2; i += 2) {
        const double *x = X + i * rs + k0;
        const v2d r0 = *(const v2d *)x, r1 = *(const v2d *)(x + rs);
        *(v2d *)(o0 + i) = SM_SHUF2(r0, r1, 0, 2);
        *(v2d *)(o1 + i) = SM_SHUF2(r0, r1, 1, 3);
    }
}
#endif

/* The E-step forms each component's Gram matrix in 4 x 4 tiles (upper_tiles)
 * from this many features on, and with dot4 below (the crossover measured
 * with benchmarks/bench_estep.py; set_tile_min_d changes it, for tests and
 * benchmarks). */
static Py_ssize_t tile_min_d = 8;

/* The tiles' sums are kept in vector lanes over the chunk when all components'
 * lanes take at most this many tiles of 1 KiB (they then stay in the L2 cache;
 * d = 50, m = 5 takes 455).  Each component's Gram is then formed band by band
 * (lane_gram: w g z of 4 columns and its diagonal tile in one sweep, then the
 * band's 4 x 4 tiles), in blocks of LANE_BLOCK rows, so that a block's columns,
 * a band and one component's lanes stay in the L1 cache at d = 20 (measured
 * with benchmarks/bench_estep.py: about 1.8x the whole-band-panel version at
 * d = 20, m = 5 and 1.6x at d = 50). */
#define LANE_TILES_MAX 512
#ifndef LANE_BLOCK
#define LANE_BLOCK 128
#endif

/* Whether the code written with vector extensions (v8d: block_residuals and
 * the lanes) runs, or the plain loops (which the compiler vectorises for the
 * CPU's own width).  v8d is one AVX-512 register; on a CPU without AVX-512
 * (the AVX2 and baseline clones, or a build for a CPU without it) GCC splits
 * each v8d into 2 or 4 registers and spills the tiles' 16 sums to the stack:
 * measured with the AVX2 clone on one machine, 3.5-4.5x slower than the
 * plain loops at d = 10, 20 and 50.  So the vector code runs where the
 * x86-64-v4 clone does (or the whole build is for AVX-512), and nowhere else:
 * 128-bit vectors (NEON, SSE2) split each v8d into 4 registers (an aarch64
 * GCC 12 build of it stores and reloads 1375 q registers on the stack, the
 * plain loops none), and the baseline x86-64 build of the v8d code ran 1.5 to
 * 2.3x slower than its plain loops at d = 10, 20 and 50 (one thread, with
 * and without -fopenmp-simd).  set_vector_lanes changes it (for tests and
 * benchmarks). */
static int detect_vector_lanes(void)
{
#if !defined(SM_VEC)
    return 0;
#elif defined(SM_HAVE_CLONES)
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4") != 0;
#elif defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}

static int vector_lanes = 0;  /* set at import: detect_vector_lanes() */

static Py_ssize_t lane_tiles(Py_ssize_t d, Py_ssize_t m, int vec)
{
#ifdef SM_VEC
    const Py_ssize_t t = UP4(d + 1) / 4, tiles = m * t * (t + 1) / 2;  /* d + 1: [x, 1] */
    return vec && tiles <= LANE_TILES_MAX ? tiles : 0;
#else
    (void)d; (void)m; (void)vec;
    return 0;
#endif
}

static Py_ssize_t job_buf_size(Py_ssize_t d, Py_ssize_t m, Py_ssize_t min_d, int vec)
{
    const Py_ssize_t q4 = UP4(d + 1), m4 = UP4(m);
    if (d < min_d) return (m4 + m + 3 + d) * LDB;
    const Py_ssize_t lanes = lane_tiles(d, m, vec);  /* and then GRX and the row pointers Z */
    return (m4 + m + 3 + 2 * q4) * LDB + m * q4 * q4 + m4 * q4 + lanes * 128 + 8
           + (lanes ? m * q4 * 8 + q4 * (Py_ssize_t)((sizeof(void *) + 7) / 8) : 0);
}

SM_CLONES
static void run_job(Job *J)
{
    const Py_ssize_t d = J->d, m = J->m, n = J->n;
    const Py_ssize_t npairs = d * (d + 1) / 2;
    const Py_ssize_t m4 = UP4(m);
    double *R = J->buf;              /* m x BLOCK residuals, then w g r (m4 rows, the rest 0) */
    double *G = R + m4 * LDB;        /* m x BLOCK log-density, then w g */
    double *M = G + m * LDB;         /* BLOCK row maxima                */
    double *S = M + LDB;             /* BLOCK sums of exp, then w / sum */
    double *T = S + LDB;             /* BLOCK scratch: w g x_k          */
    double *Fbuf = T + LDB;          /* d x BLOCK features of row-major input */
    /* Tiled Gram (d >= tile_min_d) of the q = d + 1 columns [x, 1], so that
     * the pairs (k, d) are sum w g x_k and only whole 4 x 4 tiles are formed:
     * Fbuf (q4 x BLOCK) holds every block's features, then a row of ones,
     * then zero rows up to q4; TT (q4 x BLOCK) w g [x, 1] (with lanes: its
     * rows of one band); ACC (m x q4 x q4) the tiles; ACCR (m4 x q4) sum
     * w g r [x, 1], tiles of R against Fbuf (with lanes: from GRX). */
    const int tiled = d >= J->tile_min_d;
    const Py_ssize_t q4 = UP4(d + 1);
    double *TT = Fbuf + q4 * LDB, *ACC = TT + q4 * LDB, *ACCR = ACC + m * q4 * q4;
    /* LN: the lanes of every component's tiles, 64-byte aligned, when they fit */
    const Py_ssize_t nlanes = tiled ? lane_tiles(d, m, J->vec) : 0;
    double *LN = (double *)(((uintptr_t)(ACCR + m4 * q4) + 63) & ~(uintptr_t)63);
    double loglik = 0.0, class_ll = 0.0;
#ifdef SM_VEC
    /* With lanes, each component's Gram is formed band by band (lane_gram):
     * GRX (m x q4 vectors) the lanes of sum w g r [x, 1], Z the block's columns
     * [x, 1, 0...] (read in place when the block's rows are contiguous and a
     * multiple of 8, else from Fbuf, zero past the block's rows). */
    v8d *GRX = (v8d *)LN + nlanes * 16;
    const double **Z = (const double **)(GRX + (nlanes ? m * q4 : 0));
    if (nlanes) {
        memset(GRX, 0, sizeof(v8d) * m * q4);
        for (Py_ssize_t k = d; k < q4; k++) Z[k] = Fbuf + k * LDB;
    }
#endif

    memset(R, 0, sizeof(double) * m4 * LDB);
    if (tiled) {
        memset(Fbuf, 0, sizeof(double) * (2 * q4 * LDB + m * q4 * q4 + m4 * q4));
        memset(LN, 0, sizeof(double) * nlanes * 128);
        for (Py_ssize_t i = 0; i < LDB; i++) Fbuf[d * LDB + i] = 1.0;
    }

    /* Blocks of LANE_BLOCK rows with lanes: a block's columns, a band of w g z
     * and one component's lanes then stay in the L1 cache at d = 20. */
    const Py_ssize_t bk = nlanes ? LANE_BLOCK : BLOCK;
    /* The blocks start at multiples of bk from the chunk's first row, never
     * where the data happen to sit in memory: the lanes' sums (and so the
     * results' last bits) depend on how rows fall into blocks, and the same
     * rows at another address (a copy, another pass) must give the same bits. */
    for (Py_ssize_t start = 0; start < n; start += bk) {
        const Py_ssize_t nb = n - start < bk ? n - start : bk;
        const double *yb = J->y + start, *wb = J->w + start;
        /* Feature k of row start + i is F[k * fs + i] in this block. */
        const double *F = J->F + start;
        Py_ssize_t fs = J->fstride;
        if (J->rowstride) {  /* (n, d) rows: transpose the block, in cache */
            const double *X = J->F + start * J->rowstride;
            const Py_ssize_t rs = J->rowstride;
            Py_ssize_t d8 = 0, n8 = 0;  /* the part transposed in registers */
#ifdef SM_VEC
            if (!tiled && d >= 4) {
                /* the fused path (4..7 features, or more below tile_min_d):
                 * every 4 columns, and the last 4 (the same values twice
                 * where they overlap), transposed 4 x 4 in registers, with
                 * or without the vector lanes; the block's last nb mod 4
                 * rows one by one.  A copy, so the same bits. */
                d8 = d;
                n8 = nb / 4 * 4;
                for (Py_ssize_t k0 = 0; k0 + 4 <= d; k0 += 4) transpose4(X, rs, k0, n8, Fbuf);
                if (d % 4) transpose4(X, rs, d - 4, n8, Fbuf);
            } else if (!tiled && d >= 2) {  /* 2 or 3 features: as above, 2 x 2 */
                d8 = d;
                n8 = nb / 2 * 2;
                transpose2(X, rs, 0, n8, Fbuf);
                if (d == 3) transpose2(X, rs, 1, n8, Fbuf);
            } else if (J->vec) {
                d8 = d / 8 * 8;
                n8 = nb / 8 * 8;
                transpose8(X, rs, d8, n8, Fbuf);
            }
#endif
            for (Py_ssize_t k = 0; k < d; k++) {
                double *Fk = Fbuf + k * LDB;
                const double *Xk = X + k;
                SIMD
                for (Py_ssize_t i = k < d8 ? n8 : 0; i < nb; i++) Fk[i] = Xk[i * rs];
            }
            F = Fbuf;
            fs = LDB;
        } else if (tiled && (!nlanes || nb % 8)) {
            for (Py_ssize_t k = 0; k < d; k++)
                memcpy(Fbuf + k * LDB, F + k * fs, nb * sizeof(double));
            F = Fbuf;
            fs = LDB;
        }
        Prefetch pf = {NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, NULL, 0, 0, 0, 0};  /* step 0: nothing */
        if (tiled && start + bk < n) {  /* the next block's rows, features, y and w */
            const Py_ssize_t next = n - start - bk < bk ? n - start - bk : bk;
            const Py_ssize_t rs = J->rowstride;  /* (n, d) rows: one run of them */
            /* a run of doubles off a cache line's start spans one line more */
            const int off = (((uintptr_t)J->F | (uintptr_t)(J->fstride * 8) | (uintptr_t)J->y
                              | (uintptr_t)J->w) & 63) != 0;
            const Py_ssize_t flen = rs ? (next - 1) * rs + d : next;
            const Py_ssize_t rows = rs ? 1 : d;
            const Py_ssize_t lines = rows * ((flen + 7) / 8 + off) + 2 * ((next + 7) / 8 + off);
            const Py_ssize_t calls = m * (q4 / 4) * (q4 / 4 + 1) / 2;
            pf = (Prefetch){rs ? J->F + (start + bk) * rs : J->F + start + bk, yb + bk, wb + bk,
                            J->fstride, rows, flen, next, off, -1, NULL, 0, 0, 0,
                            (lines + calls - 1) / calls};
        }
        /* lanes read the block's columns in place only when they are whole
         * vectors on cache lines (split loads cost more than a copy, measured
         * at d = 20); else the residuals copy them to Fbuf on the way. */
        double *cp = NULL;
        if (nlanes && F != Fbuf && (((uintptr_t)F | (uintptr_t)(fs * 8)) & 63)) cp = Fbuf;
#ifdef SM_VEC
        if (J->vec) block_residuals(F, fs, d, m, nb, yb, J->coef, J->b0, R, cp);
        if (cp != NULL) {
            F = Fbuf;
            fs = LDB;
        }
        const Py_ssize_t nb8 = (nb + 7) / 8 * 8;
        if (nlanes) {
            if (F == Fbuf && nb8 > nb)
                for (Py_ssize_t k = 0; k < d; k++) memset(Fbuf + k * LDB + nb, 0, (nb8 - nb) * 8);
            for (Py_ssize_t k = 0; k < d; k++) Z[k] = F + k * fs;
        }
#endif
        for (Py_ssize_t j = 0; j < m; j++) {
            double *Rj = R + j * LDB, *Gj = G + j * LDB;
            const double ln = J->lognorm[j], h = J->inv2s2[j];
            if (!J->vec) {
                const double *cj = J->coef + j * d;
                const double b0 = J->b0[j];
                SIMD
                for (Py_ssize_t i = 0; i < nb; i++) Rj[i] = yb[i] - b0;
                for (Py_ssize_t k = 0; k < d; k++) {
                    const double c = cj[k], *Fk = F + k * fs;
                    SIMD
                    for (Py_ssize_t i = 0; i < nb; i++) Rj[i] -= c * Fk[i];
                }
            }
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) Gj[i] = ln - Rj[i] * Rj[i] * h;
        }
        memcpy(M, G, nb * sizeof(double));
        for (Py_ssize_t j = 1; j < m; j++) {
            const double *Gj = G + j * LDB;
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) M[i] = Gj[i] > M[i] ? Gj[i] : M[i];
        }
        /* The classification log-likelihood takes the raw maximum (NaN or -inf
         * for a bad row, as in the numpy path); the log-sum-exp replaces a
         * non-finite maximum by 0, as _logsumexp_rows does, so a bad row gives
         * a NaN or -inf log-likelihood (numpy's _BlockRun gives NaN). */
        double cl = 0.0;
        SM_PRAGMA(omp simd reduction(+:cl))
        for (Py_ssize_t i = 0; i < nb; i++) {
            const double v = M[i];
            cl += wb[i] * v;
            M[i] = (v - v == 0.0) ? v : 0.0;
            S[i] = 0.0;
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            double *Gj = G + j * LDB;
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) {
                Gj[i] = exp(Gj[i] - M[i]);
                S[i] += Gj[i];
            }
        }
        double ll = 0.0;
        SM_PRAGMA(omp simd reduction(+:ll))
        for (Py_ssize_t i = 0; i < nb; i++) {
            ll += wb[i] * (log(S[i]) + M[i]);
            S[i] = wb[i] / S[i];
        }
        loglik += ll;
        class_ll += cl;
        for (Py_ssize_t j = 0; j < m; j++) {
            double *Gj = G + j * LDB, *Rj = R + j * LDB;
            double s_g = 0.0, s_gr = 0.0, s_grr = 0.0;
            SM_PRAGMA(omp simd reduction(+:s_g, s_gr, s_grr))
            for (Py_ssize_t i = 0; i < nb; i++) {
                const double r = Rj[i], g = Gj[i] * S[i], gr = g * r;
                Gj[i] = g;
                Rj[i] = gr;          /* R now holds w g r */
                s_g += g;
                s_gr += gr;
                s_grr += gr * r;
            }
            J->hsum[j] += s_g;
            J->hsum[m + j] += s_gr;
            J->r0[j] += s_grr;
#ifdef SM_VEC
            if (nlanes) {  /* Gj, Rj: zero past nb, up to nb8 */
                for (Py_ssize_t i = nb; i < nb8; i++) Gj[i] = Rj[i] = 0.0;
                lane_gram(Z, q4, Gj, Rj, nb8, TT, (v8d *)LN + j * (nlanes / m) * 16,
                          GRX + j * q4, &pf);
                continue;
            }
#endif
            if (tiled) {  /* F is Fbuf */
                for (Py_ssize_t k = 0; k < d; k++) {
                    const double *Fk = F + k * LDB;
                    double *Tk = TT + k * LDB;
                    SIMD
                    for (Py_ssize_t i = 0; i < nb; i++) Tk[i] = Gj[i] * Fk[i];
                }
                memcpy(TT + d * LDB, Gj, nb * sizeof(double));
                double *Aj = ACC + j * q4 * q4;
                for (Py_ssize_t k = 0; k < q4; k += 4)
                    for (Py_ssize_t l = k; l < q4; l += 4)
                    {
                        pf_lines(&pf);
                        tile4x4(TT + k * LDB, LDB, F + l * LDB, LDB, nb, Aj + k * q4 + l, q4);
                    }
                continue;
            }
            double *s2j = J->s2p + j * npairs;
            Py_ssize_t pos = 0;
            for (Py_ssize_t k = 0; k < d; k++) {
                const double *Fk = F + k * fs;
                double s_gx = 0.0, s_grx = 0.0;
                SM_PRAGMA(omp simd reduction(+:s_gx, s_grx))
                for (Py_ssize_t i = 0; i < nb; i++) {
                    T[i] = Gj[i] * Fk[i];
                    s_gx += T[i];
                    s_grx += Rj[i] * Fk[i];
                }
                J->g1[j * d + k] += s_gx;
                J->g1[(m + j) * d + k] += s_grx;
                for (Py_ssize_t l = k; l < d; l += 4) {
                    const Py_ssize_t cnt = d - l < 4 ? d - l : 4;
                    dot4(T, F, fs, l, cnt, nb, s2j + pos);
                    pos += cnt;
                }
            }
        }
        if (tiled && !nlanes)  /* sum w g r [x, 1] of every component: R holds w g r */
            for (Py_ssize_t j = 0; j < m4; j += 4)
                for (Py_ssize_t k = 0; k < q4; k += 4)
                    tile4x4(R + j * LDB, LDB, F + k * LDB, LDB, nb, ACCR + j * q4 + k, q4);
    }
    if (tiled) {
#ifdef SM_VEC
        for (Py_ssize_t j = 0; nlanes && j < m; j++) {
            lane_sums((const v8d *)LN + j * (nlanes / m) * 16, q4, ACC + j * q4 * q4);
            for (Py_ssize_t k = 0; k < d; k++) {
                double sum = 0.0;
                for (int e = 0; e < 8; e++) sum += GRX[j * q4 + k][e];
                ACCR[j * q4 + k] += sum;
            }
        }
#endif
        for (Py_ssize_t j = 0; j < m; j++) {
            double *s2j = J->s2p + j * npairs;
            const double *Aj = ACC + j * q4 * q4;
            Py_ssize_t pos = 0;
            for (Py_ssize_t k = 0; k < d; k++) {
                for (Py_ssize_t l = k; l < d; l++) s2j[pos++] += Aj[k * q4 + l];
                J->g1[j * d + k] += Aj[k * q4 + d];
                J->g1[(m + j) * d + k] += ACCR[j * q4 + k];
            }
        }
    }
    J->out[0] += loglik;
    J->out[1] += class_ll;
}

/* ---- argument handling ------------------------------------------------ */

static Py_ssize_t count(const Py_buffer *v)
{
    Py_ssize_t c = 1;
    for (int i = 0; i < v->ndim; i++) c *= v->shape[i];
    return c;
}

/* ``whole``: C-contiguous (any number of dimensions); else 1 or 2 dimensions
 * with contiguous rows.  Strides of length-0 and length-1 axes do not matter. */
static int laid_out(const Py_buffer *v, int whole)
{
    if (count(v) == 0) return 1;
    if (whole) return PyBuffer_IsContiguous(v, 'C');
    if (v->ndim < 1 || v->ndim > 2) return 0;
    const Py_ssize_t last = v->shape[v->ndim - 1];
    if (last > 1 && v->strides[v->ndim - 1] != 8) return 0;
    if (v->ndim == 2 && v->shape[0] > 1) {
        if (v->strides[0] % 8 != 0 || v->strides[0] < 8 * last) return 0;
    }
    return 1;
}

/* "d", or "d" with an explicit native (little-endian) byte order. */
static int native_double(const char *f)
{
    if (f == NULL) return 0;
    if (f[0] == '@' || f[0] == '=' || (f[0] == '<' && PY_LITTLE_ENDIAN)) f++;
    return strcmp(f, "d") == 0;
}

/* ``whole``: 1 C-contiguous, 0 contiguous rows, -1 no layout check here. */
static int get_buf(PyObject *obj, Py_buffer *view, int writable, int whole, const char *name)
{
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize != 8 || !native_double(view->format)) {
        PyErr_Format(PyExc_TypeError, "%s must hold float64", name);
        PyBuffer_Release(view);
        return -1;
    }
    if (((uintptr_t)view->buf & 7) != 0) {
        PyErr_Format(PyExc_ValueError, "%s is not aligned to 8 bytes", name);
        PyBuffer_Release(view);
        return -1;
    }
    if (whole >= 0 && !laid_out(view, whole)) {
        PyErr_Format(PyExc_ValueError, "%s must be %s", name,
                     whole ? "C-contiguous" : "a 1- or 2-dimensional array with contiguous rows");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The features FT (d, n): each feature contiguous (fstride = distance
 * between features), or each row contiguous, as X.T of a C-ordered (n, d)
 * array (rowstride = distance between rows; the kernel transposes a block
 * at a time). */
static int features_layout(const Py_buffer *v, Job *J)
{
    if (v->ndim != 2) {
        PyErr_SetString(PyExc_ValueError, "FT must be 2-dimensional");
        return -1;
    }
    const Py_ssize_t d = v->shape[0], n = v->shape[1], s0 = v->strides[0], s1 = v->strides[1];
    J->d = d;
    J->n = n;
    J->fstride = n;
    J->rowstride = 0;
    if (d == 0 || n == 0) return 0;
    if ((n == 1 || s1 == 8) && (d == 1 || (s0 % 8 == 0 && s0 >= 8 * n))) {
        if (d > 1) J->fstride = s0 / 8;
        return 0;
    }
    if ((d == 1 || s0 == 8) && s1 % 8 == 0 && s1 >= 8 * d) {
        J->rowstride = s1 / 8;
        return 0;
    }
    PyErr_SetString(PyExc_ValueError,
                    "FT must have contiguous rows or contiguous columns (non-negative strides)");
    return -1;
}

#define NARGS 12

/*
 * estep_chunk(FT, y, w, coef, b0, lognorm, inv2s2, g1, hsum, s2p, r0, out)
 * FT is (d, n); coef (m, d); b0, lognorm, inv2s2, r0 (m,); g1 (2m, d);
 * hsum (2m,); s2p (m, d(d+1)/2); out (2,).  The last five are added to.
 */
static PyObject *estep_chunk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *names[NARGS] = {"FT", "y", "w", "coef", "b0", "lognorm", "inv2s2",
                                       "g1", "hsum", "s2p", "r0", "out"};
    Py_buffer v[NARGS];
    int got = 0;
    PyObject *result = NULL;
    Job J;

    if (nargs != NARGS) {
        PyErr_Format(PyExc_TypeError, "estep_chunk takes %d arguments", NARGS);
        return NULL;
    }
    for (; got < NARGS; got++)
        if (get_buf(args[got], &v[got], got >= 7, got > 0 ? 1 : -1, names[got]) < 0) goto done;
    if (features_layout(&v[0], &J) < 0) goto done;
    J.m = count(&v[4]);
    if (J.m < 1 || count(&v[1]) != J.n || count(&v[2]) != J.n || count(&v[3]) != J.m * J.d
        || count(&v[5]) != J.m || count(&v[6]) != J.m || count(&v[7]) != 2 * J.m * J.d
        || count(&v[8]) != 2 * J.m || count(&v[9]) != J.m * (J.d * (J.d + 1) / 2)
        || count(&v[10]) != J.m || count(&v[11]) != 2) {
        PyErr_SetString(PyExc_ValueError, "estep_chunk: inconsistent array sizes");
        goto done;
    }
    J.F = v[0].buf; J.y = v[1].buf; J.w = v[2].buf; J.coef = v[3].buf; J.b0 = v[4].buf;
    J.lognorm = v[5].buf; J.inv2s2 = v[6].buf; J.g1 = v[7].buf; J.hsum = v[8].buf;
    J.s2p = v[9].buf; J.r0 = v[10].buf; J.out = v[11].buf;
    J.tile_min_d = tile_min_d;
    J.vec = vector_lanes;
    void *raw = malloc(sizeof(double) * job_buf_size(J.d, J.m, J.tile_min_d, J.vec) + 64);
    J.buf = aligned64(raw);
    if (raw == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    run_job(&J);
    Py_END_ALLOW_THREADS
    free(raw);
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    return result;
}

/* ---- the plain ML M-step of online EM ------------------------------ */

/*
 * For each component j, on statistics centred at beta (m, p):
 *   L = chol(s2[j]), delta = s2[j]^-1 rx[j] (two triangular solves),
 *   s2d = s2[j] delta, rss = max(r0 - 2 delta.rx + delta.s2d, 0),
 *   sigma2 = rss / s0, weight = s0 / N (then normalised), beta + delta.
 * Returns 0 whenever mstep would do anything else (streammix.core.plain_mstep
 * ml_mstep_arrays): N <= 0, s0 <= 1e-12 N, a matrix that is not positive
 * definite or whose factor fails (min/max of diag L)^2 > rcond_limit, or a
 * variance not in (floor, inf).  Outputs are then undefined.  beta_out must
 * not alias beta (the update is written there before beta is added).
 */
static int ml_mstep(Py_ssize_t m, Py_ssize_t p, const double *s0, const double *s2,
                    const double *rx, const double *r0, const double *beta, double N,
                    double floor, double rcond_limit, double *beta_out, double *sigma2,
                    double *weights, double *s2d, double *rss, double *L)
{
    if (!(N > 0)) return 0;
    double total = 0.0;
    for (Py_ssize_t j = 0; j < m; j++) {
        if (!(s0[j] > 1e-12 * N)) return 0;
        const double *A = s2 + j * p * p, *b = rx + j * p;
        double *delta = beta_out + j * p, *Ad = s2d + j * p;
        double lo = INFINITY, hi = 0.0;
        for (Py_ssize_t c = 0; c < p; c++) {  /* Cholesky, lower, by columns */
            double diag = A[c * p + c];
            for (Py_ssize_t k = 0; k < c; k++) diag -= L[c * p + k] * L[c * p + k];
            if (!(diag > 0)) return 0;
            diag = sqrt(diag);
            L[c * p + c] = diag;
            lo = diag < lo ? diag : lo;
            hi = diag > hi ? diag : hi;
            for (Py_ssize_t r = c + 1; r < p; r++) {
                double v = A[r * p + c];
                for (Py_ssize_t k = 0; k < c; k++) v -= L[r * p + k] * L[c * p + k];
                L[r * p + c] = v / diag;
            }
        }
        if (!(hi > 0) || !((lo / hi) * (lo / hi) > rcond_limit)) return 0;
        for (Py_ssize_t r = 0; r < p; r++) {  /* L z = b */
            double v = b[r];
            for (Py_ssize_t k = 0; k < r; k++) v -= L[r * p + k] * delta[k];
            delta[r] = v / L[r * p + r];
        }
        for (Py_ssize_t r = p - 1; r >= 0; r--) {  /* L' delta = z */
            double v = delta[r];
            for (Py_ssize_t k = r + 1; k < p; k++) v -= L[k * p + r] * delta[k];
            delta[r] = v / L[r * p + r];
        }
        double dr = 0.0, dAd = 0.0;
        for (Py_ssize_t r = 0; r < p; r++) {
            double v = 0.0;
            for (Py_ssize_t k = 0; k < p; k++) v += A[r * p + k] * delta[k];
            Ad[r] = v;
            dr += delta[r] * b[r];
            dAd += delta[r] * v;
        }
        double e = r0[j] - 2.0 * dr + dAd;
        rss[j] = e > 0.0 ? e : 0.0;
        sigma2[j] = rss[j] / s0[j];
        if (!(sigma2[j] > floor && sigma2[j] < INFINITY)) return 0;
        for (Py_ssize_t r = 0; r < p; r++) delta[r] += beta[j * p + r];
        weights[j] = s0[j] / N;
        total += weights[j];
    }
    for (Py_ssize_t j = 0; j < m; j++) weights[j] /= total;
    return 1;
}

#define MARGS 13

/*
 * ml_mstep(s0, s2, rx, r0, beta, N, floor, rcond_limit,
 *          beta_out, sigma2_out, weights_out, s2d_out, rss_out) -> bool
 * s0, r0 (m,); s2 (m, p, p); rx, beta (m, p); outputs shaped alike.
 */
static PyObject *ml_mstep_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int arrays[10] = {0, 1, 2, 3, 4, 8, 9, 10, 11, 12};
    static const char *names[MARGS] = {"s0", "s2", "rx", "r0", "beta", "N", "floor",
                                       "rcond_limit", "beta_out", "sigma2_out",
                                       "weights_out", "s2d_out", "rss_out"};
    Py_buffer v[MARGS];
    double num[3];
    int got = 0, ok = 0;
    PyObject *result = NULL;

    if (nargs != MARGS) {
        PyErr_Format(PyExc_TypeError, "ml_mstep takes %d arguments", MARGS);
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        num[i] = PyFloat_AsDouble(args[5 + i]);
        if (num[i] == -1.0 && PyErr_Occurred()) return NULL;
    }
    for (; got < 10; got++) {
        const int a = arrays[got];
        if (get_buf(args[a], &v[got], a >= 8, 1, names[a]) < 0) goto done;
    }
    const Py_ssize_t m = count(&v[0]), p = m > 0 ? count(&v[2]) / m : 0;
    if (m < 1 || p < 1 || count(&v[1]) != m * p * p || count(&v[2]) != m * p
        || count(&v[3]) != m || count(&v[4]) != m * p || count(&v[5]) != m * p
        || count(&v[6]) != m || count(&v[7]) != m || count(&v[8]) != m * p
        || count(&v[9]) != m) {
        PyErr_SetString(PyExc_ValueError, "ml_mstep: inconsistent array sizes");
        goto done;
    }
    double *L = malloc(sizeof(double) * p * p);
    if (L == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    ok = ml_mstep(m, p, v[0].buf, v[1].buf, v[2].buf, v[3].buf, v[4].buf, num[0], num[1],
                  num[2], v[5].buf, v[6].buf, v[7].buf, v[8].buf, v[9].buf, L);
    free(L);
    result = PyBool_FromLong(ok);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    return result;
}

/* ---- the information pass (standard errors) ---------------------------- */


/* acc (np4, np4), upper triangle valid: add its leading (q, q) block, mirrored, to out. */
static void add_mirrored(const double *acc, Py_ssize_t np4, Py_ssize_t q, double *out)
{
    for (Py_ssize_t k = 0; k < q; k++)
        for (Py_ssize_t l = k; l < q; l++) {
            out[k * q + l] += acc[k * np4 + l];
            if (l != k) out[l * q + k] += acc[k * np4 + l];
        }
}

/*
 * The sums of streammix.inference's information pass over one chunk.  With
 * responsibilities g_j = gamma_ij at the parameters, a_j = r_j / s_j^2 and
 * u_j = r_j a_j - 1 (s_j^2 the variance of component j), and z the observed
 * score of a row in the order of inference.ParameterLayout (beta_j: g_j a_j x;
 * eta_j: g_j u_j, summed over j for shared noise; logits: g_k - pi_k), it adds
 *
 *   opg (P, P)       += sum w z z'
 *   lgram (m, p, p)  += sum w g_j (1/s_j^2 - a_j^2) x x'   (Louis, beta_j beta_j)
 *   lvec (2m, p)     += [sum w g_j a_j (3 - r_j a_j) x;  sum w g_j a_j x]
 *   zsum (P)         += sum w z
 *   scal (3m + 1)    += [sum w g_j (2 r_j a_j - u_j^2), sum w g_j u_j, sum w g_j,
 *                        sum w log p(y|x)]
 *
 * Rows go in blocks of BLOCK: the block's sqrt(w) z (padded to a multiple of
 * 4 rows with zeros) and the products are formed in cache, 4 x 4 tiles at a
 * time.  Responsibilities below 1e-260 are set to 0, as the numpy path does
 * (their products would be subnormal numbers, which are slow).
 */
typedef struct {
    Py_ssize_t p, m, n, fstride, rowstride, noise, P;
    Py_ssize_t off;  /* 1: column 0 of the design is the intercept's ones, not in F */
    int vec;         /* as Job's */
    const double *F, *y, *w, *coef, *lognorm, *inv2s2, *pi_tail;
    double *opg, *lgram, *lvec, *zsum, *scal;
    double *buf;
} InfoJob;

static Py_ssize_t info_buf_size(Py_ssize_t p, Py_ssize_t m, Py_ssize_t P, int vec)
{
    const Py_ssize_t p4 = UP4(p), P4 = UP4(P);
    return (2 * m + 7 + 2 * p4 + P4) * LDB + P4 * P4 + m * p4 * p4
           + lane_tiles(P4 - 1, 1, vec) * 128 + 8;
}

SM_CLONES
static void run_info(InfoJob *J)
{
    const Py_ssize_t p = J->p, m = J->m, n = J->n, P = J->P;
    const Py_ssize_t p4 = UP4(p), P4 = UP4(P);
    const Py_ssize_t bs = J->noise == 2 ? p + 1 : p;  /* distance between beta_j runs */
    const Py_ssize_t a0 = P - (m - 1);                /* first logit row */
    double *R = J->buf;              /* m x BLOCK residuals               */
    double *G = R + m * LDB;         /* m x BLOCK log-density, then gamma */
    double *M = G + m * LDB;         /* BLOCK row maxima                  */
    double *S = M + LDB;             /* BLOCK sums of exp, then 1 / sum   */
    double *SW = S + LDB;            /* BLOCK sqrt(w)                     */
    double *A = SW + LDB;            /* BLOCK sqrt(w) g a                 */
    double *C = A + LDB;             /* BLOCK w g (1/s^2 - a^2)           */
    double *E = C + LDB;             /* BLOCK w g a                       */
    double *V = E + LDB;             /* BLOCK w g a (3 - r a)             */
    double *F = V + LDB;             /* p4 x BLOCK design, zero-padded    */
    double *Lb = F + p4 * LDB;       /* p4 x BLOCK w g (1/s^2 - a^2) x    */
    double *Z = Lb + p4 * LDB;       /* P4 x BLOCK sqrt(w) z              */
    double *O = Z + P4 * LDB;        /* P4 x P4 upper tiles of the OPG    */
    double *LG = O + P4 * P4;        /* m x p4 x p4 upper tiles of lgram  */
    double loglik = 0.0;

    const Py_ssize_t off = J->off;
    /* LNO: the OPG tiles' sums in vector lanes over the chunk (as the E-step's) */
    const Py_ssize_t olanes = lane_tiles(P4 - 1, 1, J->vec);
    double *LNO = (double *)(((uintptr_t)(LG + m * p4 * p4) + 63) & ~(uintptr_t)63);
    memset(J->buf, 0, sizeof(double) * info_buf_size(p, m, P, J->vec));
    if (off)
        for (Py_ssize_t i = 0; i < LDB; i++) F[i] = 1.0;
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {
        const Py_ssize_t nb = (n - start < BLOCK) ? n - start : BLOCK;
        const double *yb = J->y + start, *wb = J->w + start;
        if (J->rowstride) {  /* (n, d) rows: transpose the block, as run_job does */
            const double *X = J->F + start * J->rowstride;
            const Py_ssize_t rs = J->rowstride;
            /* columns below d8 transposed 8 x 8 (rows below n8), then up to d4
             * 4 x 4 (rows below n4), in registers; the rest one by one */
            Py_ssize_t d8 = 0, n8 = 0, d4 = 0, n4 = 0;
#ifdef SM_VEC
            if (J->vec) {
                d8 = (p - off) / 8 * 8;
                n8 = nb / 8 * 8;
                transpose8(X, rs, d8, n8, F + off * LDB);
                if (p - off - d8 >= 4) {
                    d4 = d8 + 4;
                    n4 = nb / 4 * 4;
                    transpose4(X, rs, d8, n4, F + off * LDB);
                }
            }
#endif
            for (Py_ssize_t k = 0; k < p - off; k++) {
                double *Fk = F + (k + off) * LDB;
                const double *Xk = X + k;
                SIMD
                for (Py_ssize_t i = k < d8 ? n8 : k < d4 ? n4 : 0; i < nb; i++)
                    Fk[i] = Xk[i * rs];
            }
        } else {
            for (Py_ssize_t k = 0; k < p - off; k++)
                memcpy(F + (k + off) * LDB, J->F + k * J->fstride + start, nb * sizeof(double));
        }
#ifdef SM_VEC
        if (J->vec) block_residuals(F, LDB, p, m, nb, yb, J->coef, NULL, R, NULL);
#endif
        for (Py_ssize_t j = 0; j < m; j++) {
            double *Rj = R + j * LDB, *Gj = G + j * LDB;
            const double ln = J->lognorm[j], h = J->inv2s2[j];
            if (!J->vec) {
                const double *cj = J->coef + j * p;
                SIMD
                for (Py_ssize_t i = 0; i < nb; i++) Rj[i] = yb[i];
                for (Py_ssize_t k = 0; k < p; k++) {
                    const double c = cj[k], *Fk = F + k * LDB;
                    SIMD
                    for (Py_ssize_t i = 0; i < nb; i++) Rj[i] -= c * Fk[i];
                }
            }
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) Gj[i] = ln - Rj[i] * Rj[i] * h;
        }
        memcpy(M, G, nb * sizeof(double));
        for (Py_ssize_t j = 1; j < m; j++) {
            const double *Gj = G + j * LDB;
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) M[i] = Gj[i] > M[i] ? Gj[i] : M[i];
        }
        SIMD
        for (Py_ssize_t i = 0; i < nb; i++) {
            const double v = M[i];
            M[i] = (v - v == 0.0) ? v : 0.0;
            S[i] = 0.0;
            SW[i] = sqrt(wb[i]);
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            double *Gj = G + j * LDB;
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) {
                Gj[i] = exp(Gj[i] - M[i]);
                S[i] += Gj[i];
            }
        }
        double ll = 0.0;
        SM_PRAGMA(omp simd reduction(+:ll))
        for (Py_ssize_t i = 0; i < nb; i++) {
            ll += wb[i] * (log(S[i]) + M[i]);
            S[i] = 1.0 / S[i];
        }
        loglik += ll;
        if (J->noise == 1) memset(Z + m * p * LDB, 0, nb * sizeof(double));
        for (Py_ssize_t j = 0; j < m; j++) {
            double *Gj = G + j * LDB;
            const double *Rj = R + j * LDB;
            const double is2 = 2.0 * J->inv2s2[j];
            double s_rr = 0.0, s_u = 0.0, s_g = 0.0;
            SM_PRAGMA(omp simd reduction(+:s_rr, s_u, s_g))
            for (Py_ssize_t i = 0; i < nb; i++) {
                double gam = Gj[i] * S[i];
                gam = gam < 1e-260 ? 0.0 : gam;
                Gj[i] = gam;
                const double r = Rj[i], a = r * is2, u = r * a - 1.0;
                const double g = wb[i] * gam;
                A[i] = SW[i] * gam * a;
                C[i] = g * (is2 - a * a);
                E[i] = g * a;
                V[i] = g * a * (3.0 - r * a);
                s_rr += g * (2.0 * r * a - u * u);
                s_u += g * u;
                s_g += g;
            }
            if (J->noise) {  /* sqrt(w) g u; sum w g u = s_u */
                double *Ze = Z + (J->noise == 2 ? j * bs + p : m * p) * LDB;
                if (J->noise == 2) {
                    SIMD
                    for (Py_ssize_t i = 0; i < nb; i++)
                        Ze[i] = SW[i] * Gj[i] * (Rj[i] * Rj[i] * is2 - 1.0);
                } else {
                    SIMD
                    for (Py_ssize_t i = 0; i < nb; i++)
                        Ze[i] += SW[i] * Gj[i] * (Rj[i] * Rj[i] * is2 - 1.0);
                }
                J->zsum[J->noise == 2 ? j * bs + p : m * p] += s_u;
            }
            J->scal[j] += s_rr;
            J->scal[m + j] += s_u;
            J->scal[2 * m + j] += s_g;
            for (Py_ssize_t k = 0; k < p; k++) {
                const double *Fk = F + k * LDB;
                double *Zk = Z + (j * bs + k) * LDB, *Lk = Lb + k * LDB;
                double s_v = 0.0, s_e = 0.0;
                SM_PRAGMA(omp simd reduction(+:s_v, s_e))
                for (Py_ssize_t i = 0; i < nb; i++) {
                    Zk[i] = A[i] * Fk[i];
                    Lk[i] = C[i] * Fk[i];
                    s_v += V[i] * Fk[i];
                    s_e += E[i] * Fk[i];
                }
                /* sum w z = sum sqrt(w) (sqrt(w) g a x) = sum w g a x */
                J->zsum[j * bs + k] += s_e;
                J->lvec[j * p + k] += s_v;
                J->lvec[(m + j) * p + k] += s_e;
            }
            upper_tiles(Lb, F, p, nb, LG + j * p4 * p4, p4);
        }
        for (Py_ssize_t k = 1; k < m; k++) {
            const double *Gk = G + k * LDB, pk = J->pi_tail[k - 1];
            double *Zk = Z + (a0 + k - 1) * LDB;
            double s_x = 0.0;
            SM_PRAGMA(omp simd reduction(+:s_x))
            for (Py_ssize_t i = 0; i < nb; i++) {
                const double z = SW[i] * (Gk[i] - pk);
                Zk[i] = z;
                s_x += SW[i] * z;
            }
            J->zsum[a0 + k - 1] += s_x;
        }
#ifdef SM_VEC
        if (olanes) {  /* rows up to a multiple of 8, zero past nb; Z's rows past P are 0 */
            const Py_ssize_t nb8 = (nb + 7) / 8 * 8;
            if (nb8 > nb)
                for (Py_ssize_t k = 0; k < P; k++)
                    memset(Z + k * LDB + nb, 0, (nb8 - nb) * sizeof(double));
            v8d *lanes = (v8d *)LNO;
            for (Py_ssize_t k = 0; k < P4; k += 4)
                for (Py_ssize_t l = k; l < P4; l += 4, lanes += 16)
                    lane_tile4x4(Z + k * LDB, Z + l * LDB, nb8, lanes);
            continue;
        }
#endif
        upper_tiles(Z, Z, P, nb, O, P4);
    }
#ifdef SM_VEC
    if (olanes) lane_sums((const v8d *)LNO, P4, O);
#endif
    add_mirrored(O, P4, P, J->opg);
    for (Py_ssize_t j = 0; j < m; j++) add_mirrored(LG + j * p4 * p4, p4, p, J->lgram + j * p * p);
    J->scal[3 * m] += loglik;
}

#define IARGS 14

/*
 * info_chunk(FT, y, w, coef, lognorm, inv2s2, pi_tail, noise,
 *            opg, lgram, lvec, zsum, scal, intercept)
 * FT (p, n) the design, laid out as estep_chunk's FT; with intercept true,
 * FT (p - 1, n) holds the features only and the design is [1, x] (the ones
 * are not read from memory); coef (m, p); lognorm, inv2s2 (m,); pi_tail (m - 1,); noise 0 fixed,
 * 1 shared, 2 per component; opg (P, P), lgram (m, p, p), lvec (2m, p),
 * zsum (P,) and scal (3m + 1,) are added to.  See run_info.
 */
static PyObject *info_chunk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const int arrays[12] = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12};
    static const char *names[IARGS] = {"FT", "y", "w", "coef", "lognorm", "inv2s2", "pi_tail",
                                       "noise", "opg", "lgram", "lvec", "zsum", "scal",
                                       "intercept"};
    Py_buffer v[12];
    int got = 0;
    PyObject *result = NULL;
    InfoJob J;
    Job layout;

    if (nargs != IARGS) {
        PyErr_Format(PyExc_TypeError, "info_chunk takes %d arguments", IARGS);
        return NULL;
    }
    const long noise = PyLong_AsLong(args[7]);
    if (noise == -1 && PyErr_Occurred()) return NULL;
    if (noise < 0 || noise > 2) {
        PyErr_SetString(PyExc_ValueError, "info_chunk: noise must be 0, 1 or 2");
        return NULL;
    }
    const int intercept = PyObject_IsTrue(args[13]);
    if (intercept < 0) return NULL;
    for (; got < 12; got++) {
        const int a = arrays[got];
        if (get_buf(args[a], &v[got], a >= 8, a > 0 ? 1 : -1, names[a]) < 0) goto done;
    }
    if (features_layout(&v[0], &layout) < 0) goto done;
    J.off = intercept;
    J.p = layout.d + intercept;
    J.n = layout.n;
    J.fstride = layout.fstride;
    J.rowstride = layout.rowstride;
    J.m = count(&v[4]);
    J.noise = noise;
    J.P = J.m * J.p + (noise == 2 ? J.m : noise) + J.m - 1;
    if (J.m < 1 || J.p < 1 || count(&v[1]) != J.n || count(&v[2]) != J.n
        || count(&v[3]) != J.m * J.p || count(&v[5]) != J.m || count(&v[6]) != J.m - 1
        || count(&v[7]) != J.P * J.P || count(&v[8]) != J.m * J.p * J.p
        || count(&v[9]) != 2 * J.m * J.p || count(&v[10]) != J.P
        || count(&v[11]) != 3 * J.m + 1) {
        PyErr_SetString(PyExc_ValueError, "info_chunk: inconsistent array sizes");
        goto done;
    }
    J.F = v[0].buf; J.y = v[1].buf; J.w = v[2].buf; J.coef = v[3].buf; J.lognorm = v[4].buf;
    J.inv2s2 = v[5].buf; J.pi_tail = v[6].buf; J.opg = v[7].buf; J.lgram = v[8].buf;
    J.lvec = v[9].buf; J.zsum = v[10].buf; J.scal = v[11].buf;
    J.vec = vector_lanes;
    void *raw = malloc(sizeof(double) * info_buf_size(J.p, J.m, J.P, J.vec) + 64);
    J.buf = aligned64(raw);
    if (raw == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    run_info(&J);
    Py_END_ALLOW_THREADS
    free(raw);
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    return result;
}

/* ---- grouped classes: the rows' log-densities summed by group --------- */

/*
 * group_loglik(X, beta, y, lognorm, inv2s2, codes, out)
 * X (n, p) the design, C-contiguous; beta (m, p); y (n,); lognorm, inv2s2 (m,);
 * codes (n,) int64 group codes in [0, G); out (G, m) is added to, row by row:
 *   out[codes[i], j] += lognorm[j] - (y[i] - X[i] . beta[j])^2 inv2s2[j]
 * (the sums of streammix.core.grouped_estep's numpy path, to rounding).
 */
static PyObject *group_loglik(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *names[7] = {"X", "beta", "y", "lognorm", "inv2s2", "codes", "out"};
    Py_buffer v[7];
    int got = 0, bad = 0;
    PyObject *result = NULL;

    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "group_loglik takes 7 arguments");
        return NULL;
    }
    for (; got < 7; got++) {
        if (got == 5) {
            if (PyObject_GetBuffer(args[5], &v[5], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
                goto done;
            const char *f = v[5].format;
            if (f != NULL && (f[0] == '@' || f[0] == '=' || (f[0] == '<' && PY_LITTLE_ENDIAN)))
                f++;
            if (v[5].itemsize != 8 || f == NULL || (strcmp(f, "q") && strcmp(f, "l"))) {
                PyErr_SetString(PyExc_TypeError, "codes must hold int64");
                got++;
                goto done;
            }
            continue;
        }
        if (get_buf(args[got], &v[got], got == 6, 1, names[got]) < 0) goto done;
    }
    const Py_ssize_t n = count(&v[2]), m = count(&v[3]);
    const Py_ssize_t p = n > 0 ? count(&v[0]) / n : (m > 0 ? count(&v[1]) / m : 0);
    if (m < 1 || count(&v[0]) != n * p || count(&v[1]) != m * p || count(&v[4]) != m
        || count(&v[5]) != n || count(&v[6]) % m != 0) {
        PyErr_SetString(PyExc_ValueError, "group_loglik: inconsistent array sizes");
        goto done;
    }
    const Py_ssize_t G = count(&v[6]) / m;
    const double *X = v[0].buf, *beta = v[1].buf, *y = v[2].buf, *ln = v[3].buf;
    const double *k = v[4].buf;
    const int64_t *codes = v[5].buf;
    double *out = v[6].buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t g = codes[i];
        if (g < 0 || g >= G) {
            bad = 1;
            break;
        }
        double *row = out + g * m;
        const double *xi = X + i * p;
        for (Py_ssize_t j = 0; j < m; j++) {
            const double *bj = beta + j * p;
            double mu = 0.0;
            for (Py_ssize_t c = 0; c < p; c++) mu += xi[c] * bj[c];
            const double r = y[i] - mu;
            row[j] += ln[j] - r * r * k[j];
        }
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "group_loglik: a group code is out of range");
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&v[i]);
    return result;
}

/* set_tile_min_d(d) -> the previous value: the E-step's crossover to tiles. */
static PyObject *set_tile_min_d(PyObject *self, PyObject *arg)
{
    const Py_ssize_t value = PyLong_AsSsize_t(arg);
    if (value == -1 && PyErr_Occurred()) return NULL;
    if (value < 0) {
        PyErr_SetString(PyExc_ValueError, "set_tile_min_d: the value must be >= 0");
        return NULL;
    }
    const Py_ssize_t previous = tile_min_d;
    tile_min_d = value;
    return PyLong_FromSsize_t(previous);
}

/* set_vector_lanes(on) -> the previous value: whether the vector-extension
 * code runs (see detect_vector_lanes); on is ignored by a build without it. */
static PyObject *set_vector_lanes(PyObject *self, PyObject *arg)
{
    const int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    const int previous = vector_lanes;
#ifdef SM_VEC
    vector_lanes = on;
#endif
    return PyBool_FromLong(previous);
}

static PyMethodDef methods[] = {
    {"set_vector_lanes", set_vector_lanes, METH_O,
     "Run the vector-extension code (True) or the plain loops; returns the previous "
     "setting (the default: whether the CPU has AVX-512; for tests and benchmarks)."},
    {"set_tile_min_d", set_tile_min_d, METH_O,
     "Set the number of features from which the E-step forms its Gram matrices in "
     "4 x 4 tiles; returns the previous value (for tests and benchmarks)."},
    {"estep_chunk", (PyCFunction)(void (*)(void))estep_chunk, METH_FASTCALL,
     "Add one chunk's E-step sums for one parameter set (see stats._BlockRun)."},
    {"ml_mstep", (PyCFunction)(void (*)(void))ml_mstep_py, METH_FASTCALL,
     "The plain ML M-step of online EM (see plain_mstep.ml_mstep_arrays); False: not plain."},
    {"info_chunk", (PyCFunction)(void (*)(void))info_chunk, METH_FASTCALL,
     "Add one chunk's sums of the information pass (see information.py)."},
    {"group_loglik", (PyCFunction)(void (*)(void))group_loglik, METH_FASTCALL,
     "Add the rows' component log-densities to their groups' sums (see grouped_estep.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "Compiled E-step kernel of streammix.", -1, methods,
};

/* The calling convention of the functions above; streammix.core.kernel refuses
 * a build of another version (a stale in-place build after a change). */
#define SM_KERNEL_API 3

PyMODINIT_FUNC PyInit__kernel(void)
{
    vector_lanes = detect_vector_lanes();
    PyObject *mod = PyModule_Create(&module);
    if (mod != NULL && PyModule_AddIntConstant(mod, "API", SM_KERNEL_API) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
