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
#else
#include <math.h>
#define SM_CLONES
#endif

#define BLOCK 256

/* "omp simd" (honoured under -fopenmp-simd) lets the sums be vectorised. */
#if defined(__GNUC__)
#define SM_PRAGMA(x) _Pragma(#x)
#define SIMD SM_PRAGMA(omp simd)
#define SM_INLINE static inline __attribute__((always_inline))
#else
#define SM_PRAGMA(x)
#define SIMD
#define SM_INLINE static inline
#endif

typedef struct {
    Py_ssize_t d, m, n, fstride, rowstride;
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

SM_CLONES
static void run_job(Job *J)
{
    const Py_ssize_t d = J->d, m = J->m, n = J->n;
    const Py_ssize_t npairs = d * (d + 1) / 2;
    double *R = J->buf;              /* m x BLOCK residuals             */
    double *G = R + m * BLOCK;       /* m x BLOCK log-density, then w g */
    double *M = G + m * BLOCK;       /* BLOCK row maxima                */
    double *S = M + BLOCK;           /* BLOCK sums of exp, then w / sum */
    double *T = S + BLOCK;           /* BLOCK scratch: w g x_k          */
    double *Fbuf = T + BLOCK;        /* d x BLOCK features of row-major input */
    double loglik = 0.0, class_ll = 0.0;

    for (Py_ssize_t start = 0; start < n; start += BLOCK) {
        const Py_ssize_t nb = (n - start < BLOCK) ? n - start : BLOCK;
        const double *yb = J->y + start, *wb = J->w + start;
        /* Feature k of row start + i is F[k * fs + i] in this block. */
        const double *F = J->F + start;
        Py_ssize_t fs = J->fstride;
        if (J->rowstride) {  /* (n, d) rows: transpose the block, in cache */
            const double *X = J->F + start * J->rowstride;
            const Py_ssize_t rs = J->rowstride;
            for (Py_ssize_t k = 0; k < d; k++) {
                double *Fk = Fbuf + k * BLOCK;
                const double *Xk = X + k;
                SIMD
                for (Py_ssize_t i = 0; i < nb; i++) Fk[i] = Xk[i * rs];
            }
            F = Fbuf;
            fs = BLOCK;
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            double *Rj = R + j * BLOCK, *Gj = G + j * BLOCK;
            const double *cj = J->coef + j * d;
            const double b0 = J->b0[j], ln = J->lognorm[j], h = J->inv2s2[j];
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) Rj[i] = yb[i] - b0;
            for (Py_ssize_t k = 0; k < d; k++) {
                const double c = cj[k], *Fk = F + k * fs;
                SIMD
                for (Py_ssize_t i = 0; i < nb; i++) Rj[i] -= c * Fk[i];
            }
            SIMD
            for (Py_ssize_t i = 0; i < nb; i++) Gj[i] = ln - Rj[i] * Rj[i] * h;
        }
        memcpy(M, G, nb * sizeof(double));
        for (Py_ssize_t j = 1; j < m; j++) {
            const double *Gj = G + j * BLOCK;
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
            double *Gj = G + j * BLOCK;
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
            double *Gj = G + j * BLOCK, *Rj = R + j * BLOCK;
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
    J.buf = malloc(sizeof(double) * (2 * J.m + 3 + J.d) * BLOCK);
    if (J.buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    run_job(&J);
    Py_END_ALLOW_THREADS
    free(J.buf);
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

static PyMethodDef methods[] = {
    {"estep_chunk", (PyCFunction)(void (*)(void))estep_chunk, METH_FASTCALL,
     "Add one chunk's E-step sums for one parameter set (see stats._BlockRun)."},
    {"ml_mstep", (PyCFunction)(void (*)(void))ml_mstep_py, METH_FASTCALL,
     "The plain ML M-step of online EM (see plain_mstep.ml_mstep_arrays); False: not plain."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "Compiled E-step kernel of streammix.", -1, methods,
};

PyMODINIT_FUNC PyInit__kernel(void)
{
    return PyModule_Create(&module);
}
