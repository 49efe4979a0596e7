/*
 * A C test of the E-step kernel without Python: _kernel.c is included and
 * run_job called on a random chunk, against a row-by-row E-step written out
 * here, for the plain loops and the vector-extension code, both layouts and
 * the fused and tiled Gram.  Built by tests/core/test_kernel_build.py with a
 * cross compiler (aarch64) and run under qemu-user, where no Python of that
 * architecture is at hand; the Python C API is only declared (no symbol of
 * libpython is called).  Prints the largest error relative to each sum's
 * scale and exits 0 when all are below 1e-12.
 */
#include "_kernel.c"

#include <math.h>
#include <stdio.h>

static double rnd(unsigned long long *s)  /* uniform on (-1, 1) */
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(*s >> 11) / 9007199254740992.0) * 2.0 - 1.0;
}

/* the largest |a - b| over n values, over the largest |b| */
static double rel_err(const double *a, const double *b, Py_ssize_t n)
{
    double err = 0.0, scale = 1e-300;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > err) err = fabs(a[i] - b[i]);
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return err / scale;
}

static double check(Py_ssize_t d, Py_ssize_t m, Py_ssize_t n, int rows, int vec, Py_ssize_t min_d,
                    unsigned long long seed)
{
    const Py_ssize_t np_ = d * (d + 1) / 2;
    double *X = malloc(sizeof(double) * (n * d + 1)), *y = malloc(sizeof(double) * n);
    double *w = malloc(sizeof(double) * n), coef[64 * 8], b0[8], ln[8], h[8];
    double *g1 = calloc(2 * m * d + 1, sizeof(double)), *hs = calloc(2 * m, sizeof(double));
    double *s2 = calloc(m * np_ + 1, sizeof(double)), *r0 = calloc(m, sizeof(double));
    double *eg1 = calloc(2 * m * d + 1, sizeof(double)), *ehs = calloc(2 * m, sizeof(double));
    double *es2 = calloc(m * np_ + 1, sizeof(double)), *er0 = calloc(m, sizeof(double));
    double out[2] = {0, 0}, eout[2] = {0, 0};
    for (Py_ssize_t i = 0; i < n * d; i++) X[i] = rnd(&seed) * 2.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        y[i] = rnd(&seed) * 3.0;
        w[i] = 1.0 + 0.5 * rnd(&seed);
    }
    for (Py_ssize_t j = 0; j < m; j++) {
        for (Py_ssize_t k = 0; k < d; k++) coef[j * d + k] = 0.3 * rnd(&seed);
        b0[j] = rnd(&seed);
        const double s2j = 1.0 + 0.5 * rnd(&seed);
        ln[j] = log(1.0 / m) - 0.5 * log(2.0 * 3.141592653589793 * s2j);
        h[j] = 0.5 / s2j;
    }
    /* rows: X is (n, d) C-ordered, FT = X.T; else X holds FT (d, n) itself */
    Job J = {d, m, n, rows ? n : n, rows ? d : 0, min_d, vec, X, y, w, coef, b0, ln, h,
             g1, hs, s2, r0, out, NULL};
    void *raw = malloc(sizeof(double) * job_buf_size(d, m, min_d, vec) + 64);
    J.buf = aligned64(raw);
    run_job(&J);
    for (Py_ssize_t i = 0; i < n; i++) {  /* the E-step one row at a time */
        double G[8], R[8], mx = -INFINITY, S = 0.0;
        const double *x = rows ? X + i * d : NULL;
        for (Py_ssize_t j = 0; j < m; j++) {
            double r = y[i] - b0[j];
            for (Py_ssize_t k = 0; k < d; k++) r -= coef[j * d + k] * (rows ? x[k] : X[k * n + i]);
            R[j] = r;
            G[j] = ln[j] - r * r * h[j];
            if (G[j] > mx) mx = G[j];
        }
        for (Py_ssize_t j = 0; j < m; j++) S += exp(G[j] - mx);
        eout[0] += w[i] * (log(S) + mx);
        eout[1] += w[i] * mx;
        for (Py_ssize_t j = 0; j < m; j++) {
            const double g = w[i] * exp(G[j] - mx) / S, r = R[j];
            ehs[j] += g;
            ehs[m + j] += g * r;
            er0[j] += g * r * r;
            Py_ssize_t pos = 0;
            for (Py_ssize_t k = 0; k < d; k++) {
                const double xk = rows ? x[k] : X[k * n + i];
                eg1[j * d + k] += g * xk;
                eg1[(m + j) * d + k] += g * r * xk;
                for (Py_ssize_t l = k; l < d; l++, pos++)
                    es2[j * np_ + pos] += g * xk * (rows ? x[l] : X[l * n + i]);
            }
        }
    }
    double err = rel_err(out, eout, 2);
    const double parts[4] = {rel_err(g1, eg1, 2 * m * d), rel_err(hs, ehs, 2 * m),
                             rel_err(s2, es2, m * np_), rel_err(r0, er0, m)};
    for (int p = 0; p < 4; p++) err = parts[p] > err ? parts[p] : err;
    free(raw); free(X); free(y); free(w); free(g1); free(hs); free(s2); free(r0);
    free(eg1); free(ehs); free(es2); free(er0);
    return err;
}

int main(void)
{
    static const Py_ssize_t cases[][3] = {{3, 2, 300}, {9, 4, 1000}, {19, 5, 1000},
                                          {22, 3, 263}, {49, 5, 517}};
    double worst = 0.0;
    int runs = 0;
    for (int c = 0; c < 5; c++)
        for (int rows = 0; rows < 2; rows++)
            for (int vec = 0; vec < 2; vec++)
                for (int tiled = 0; tiled < 2; tiled++) {
                    const Py_ssize_t d = cases[c][0], m = cases[c][1], n = cases[c][2];
                    const double e = check(d, m, n, rows, vec, tiled ? 0 : 1000000,
                                           1234567ULL + 31ULL * c);
                    printf("d=%ld m=%ld n=%ld rows=%d vec=%d tiled=%d err=%.3g\n", (long)d,
                           (long)m, (long)n, rows, vec, tiled, e);
                    worst = e > worst ? e : worst;
                    runs++;
                }
    printf("%d runs, worst %.3g\n", runs, worst);
    return worst < 1e-12 ? 0 : 1;
}
