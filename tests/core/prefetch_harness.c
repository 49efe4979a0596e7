/*
 * Where run_job's prefetches of the next block point (pf_lines): _kernel.c is
 * included with SM_PREFETCH recording each address, and run_job called on
 * chunks whose features, y and w sit in buffers of exactly their size, in
 * both layouts, rows wider than the features (a column slice), data off
 * cache lines, block tails of every length, the plain loops and the vector
 * code, the fused and tiled Gram.  A prefetch cannot fault, but an address
 * formed past the end of an array is undefined behaviour in C (and a line
 * fetched there is wasted): every address must lie in one of the arrays.
 * Built and run by tests/core/test_kernel_prefetch.py; prints the count of
 * prefetches and of those outside the arrays, and exits 0 when there are
 * prefetches and none outside.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uintptr_t pf_lo[3], pf_hi[3];
static long pf_count, pf_outside;

static void pf_record(const void *p)
{
    const uintptr_t a = (uintptr_t)p;
    int inside = 0;
    for (int r = 0; r < 3; r++) inside |= a >= pf_lo[r] && a < pf_hi[r];
    pf_count++;
    pf_outside += !inside;
}

#define SM_PREFETCH(p) pf_record(p)
#include "_kernel.c"

static double *filled(Py_ssize_t size, unsigned *seed)
{
    double *a = malloc(sizeof(double) * (size > 0 ? size : 1));
    for (Py_ssize_t i = 0; i < size; i++) a[i] = (double)(rand_r(seed) % 2001) / 1000.0 - 1.0;
    return a;
}

static void run(Py_ssize_t d, Py_ssize_t m, Py_ssize_t n, int rows, Py_ssize_t extra, int skip,
                int vec, int tiled, unsigned seed)
{
    /* rows: X (n, d) with rows rs = d + extra apart; else FT (d, n), features fs apart */
    const Py_ssize_t rs = d + extra, fs = n + extra;
    const Py_ssize_t size = rows ? (n - 1) * rs + d : (d - 1) * fs + n;
    double *Xraw = filled(size + skip, &seed), *yraw = filled(n + skip, &seed);
    double *wraw = filled(n + skip, &seed);
    double *X = Xraw + skip, *y = yraw + skip, *w = wraw + skip;
    double coef[64 * 8], b0[8], ln[8], h[8], out[2] = {0, 0};
    for (Py_ssize_t i = 0; i < n; i++) w[i] = w[i] + 1.5;
    for (Py_ssize_t j = 0; j < m; j++) {
        for (Py_ssize_t k = 0; k < d; k++) coef[j * d + k] = 0.1 * (double)((j + k) % 5);
        b0[j] = 0.3 * j;
        ln[j] = -1.0;
        h[j] = 0.5;
    }
    double *g1 = calloc(2 * m * d, sizeof(double)), *hs = calloc(2 * m, sizeof(double));
    double *s2 = calloc(m * (d * (d + 1) / 2), sizeof(double)), *r0 = calloc(m, sizeof(double));
    const Py_ssize_t min_d = tiled ? 0 : 1000000;
    Job J = {d, m, n, rows ? n : fs, rows ? rs : 0, min_d, vec, X, y, w, coef, b0, ln, h,
             g1, hs, s2, r0, out, NULL};
    void *raw = malloc(sizeof(double) * job_buf_size(d, m, min_d, vec) + 64);
    J.buf = aligned64(raw);
    pf_lo[0] = (uintptr_t)X; pf_hi[0] = (uintptr_t)(X + size);
    pf_lo[1] = (uintptr_t)y; pf_hi[1] = (uintptr_t)(y + n);
    pf_lo[2] = (uintptr_t)w; pf_hi[2] = (uintptr_t)(w + n);
    const long before = pf_outside;
    run_job(&J);
    if (pf_outside > before)
        printf("outside: d=%ld m=%ld n=%ld rows=%d extra=%ld skip=%d vec=%d tiled=%d\n",
               (long)d, (long)m, (long)n, rows, (long)extra, skip, vec, tiled);
    free(raw); free(Xraw); free(yraw); free(wraw); free(g1); free(hs); free(s2); free(r0);
}

int main(void)
{
    static const Py_ssize_t shapes[][2] = {{3, 2}, {8, 3}, {9, 4}, {20, 5}, {23, 2}};
    static const Py_ssize_t ns[] = {129, 200, 256, 257, 263, 300, 385, 517, 1000};
    for (int s = 0; s < 5; s++)
        for (int c = 0; c < 9; c++)
            for (int rows = 0; rows < 2; rows++)
                for (Py_ssize_t extra = 0; extra < 4; extra += 3)
                    for (int skip = 0; skip < 2; skip++)
                        for (int vec = 0; vec < 2; vec++)
                            for (int tiled = 0; tiled < 2; tiled++)
                                run(shapes[s][0], shapes[s][1], ns[c], rows, extra, skip, vec,
                                    tiled, 17u + (unsigned)(s * 9 + c));
    printf("%ld prefetches, %ld outside the arrays\n", pf_count, pf_outside);
    return pf_count > 0 && pf_outside == 0 ? 0 : 1;
}
