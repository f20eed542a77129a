/* gradc/runtime.h — the public header of gradc's runtime library.
 *
 * Generated code and the programs that call it include this header: it
 * defines the status codes that generated functions return, the flags of
 * NAME_grad, and the small library (messages, the tape of control flow)
 * that generated objects link against (`pkg-config --libs gradc`). */
#ifndef GRADC_RUNTIME_H
#define GRADC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every generated function. */
enum {
    GRADC_OK = 0,
    GRADC_EDIM = 1,      /* a dimension is negative, or a size overflows */
    GRADC_EMAXITER = 2,  /* a while loop reached its iteration limit */
    GRADC_ENOMEM = 3,    /* an allocation failed */
    GRADC_EINDEX = 4,    /* an index or slice bound is out of range */
};

/* Flags of NAME_grad. */
#define GRADC_ACCUMULATE 1u   /* add to the gradient buffers instead of overwriting */

/* A message for a status code ("success", "while loop reached its iteration limit", …). */
const char *gradc_strerror(int status);

/* ---- used by generated code; not needed by callers ---- */

/* The tape of a gradient function with control flow: the forward sweep pushes
 * the values the reverse sweep needs (loop counts, overwritten values) and
 * the reverse sweep pops them in the opposite order.
 *
 * Where recorded values live.  When every loop around a push is a `for`
 * whose count is a literal or a dimension (no `while`, no --checkpoint
 * segments), the most the function ever holds is a function of the
 * dimensions: it is a region of `work` (counted in NAME_work_size, checked for
 * overflow like every size: GRADC_EDIM), used as a stack, and such a function
 * allocates nothing when the caller passes `work` (with `work == NULL` the one
 * malloc'd work includes it).  Any other function with pushes (a push inside
 * a `while`, or a for whose count is a recorded trip count) uses the tape
 * below for all of them.
 *
 * Allocation policy of the tape: it lives in the generated function's stack
 * frame, starts empty, grows with realloc by doubling (at least 512 doubles),
 * and is freed before the function returns — on success and on every error.
 * It is the one allocation such a function makes when the caller passes its
 * own `work`; a failed growth makes the function return GRADC_ENOMEM. */
typedef struct gradc_tape {
    double *data;
    size_t len, cap;
} gradc_tape;

/* Appends x[0..n); returns GRADC_OK or GRADC_ENOMEM. */
int gradc_tape_push(gradc_tape *t, const double *x, int64_t n);
/* Removes the last n entries into x[0..n), in the order they were pushed. */
void gradc_tape_pop(gradc_tape *t, double *x, int64_t n);
void gradc_tape_free(gradc_tape *t);

/* The bytes of work a generated function needs, or -1 (a negative
 * dimension, an overflow, over 2^60 bytes).  d: the dimensions its shapes
 * use; tab: {nd, ns, nc}, then ns pairs (i, j): a shape d[i]×d[j], then nc
 * buffer classes (i, j, plus, count): count buffers of d[i]×d[j] (+ d[i]
 * when plus) doubles, each rounded up to 64 bytes; d[0..nd) are checked
 * for being >= 0.  cls (when not NULL): each class's buffer size and
 * offset in work. */
int64_t gradc_layout(const int64_t *d, const int32_t *tab, int64_t *cls);

/* Dense linear algebra on row-major n×n matrices.  `scratch` is caller
 * memory (from `work`) of n*n + n doubles; none of them allocates. */
double gradc_det(int64_t n, const double *a, double *scratch);
/* log(det a): NaN where det a < 0, -inf where a is singular.  A NaN entry
 * gives NaN (det, logdet) or an all-NaN inverse. */
double gradc_logdet(int64_t n, const double *a, double *scratch);
/* out = inv(a) (out may not alias a); a singular a gives all NaN. */
void gradc_inv(int64_t n, const double *a, double *out, double *scratch);
/* A \ B without inv(A) (spec §8).  gradc_lu: f = the LU factors of the
 * n×n a with partial pivoting, n*n doubles, then n pivots in the room of n
 * more doubles (a NaN entry gives NaN factors).  gradc_lu_solve: x = a \ b,
 * or a' \ b when trans, from those factors, b and x n×k (x may not alias b;
 * scratch: n*k doubles); a singular a gives Inf or NaN entries. */
void gradc_lu(int64_t n, const double *a, double *f);
void gradc_lu_solve(int64_t n, int64_t k, const double *f, int32_t trans, const double *b,
                    double *x, double *scratch);
/* l = the lower Cholesky factor of a (l*l' = a), reading a's lower triangle
 * only; every entry NaN unless that is positive definite. */
void gradc_chol(int64_t n, const double *a, double *l);
/* c[m×n] = a[m×k] · b[k×n], row-major, through cblas_dgemm. */
void gradc_dgemm(int64_t m, int64_t n, int64_t k, const double *a, const double *b, double *c);
/* c[m×n] = op(a) · op(b) (+ c with GRADC_GEMM_ACC), row-major; op(a) is
 * m×k: a itself, or with GRADC_GEMM_TA the transpose of a stored k×m (no
 * transposed copy is made).  OpenBLAS for large products, loops for small
 * ones (kernels.c). */
#define GRADC_GEMM_TA 1
#define GRADC_GEMM_TB 2
#define GRADC_GEMM_ACC 4
/* y = x, or y += x when add, n entries: a buffer stored into the caller's
 * output, added under GRADC_ACCUMULATE. */
void gradc_store(int32_t add, int64_t n, const double *x, double *y);
/* ‖x‖₂ of n entries: one pass, rescaled only on overflow or underflow. */
double gradc_norm(int64_t n, const double *x);
void gradc_gemm(int32_t flags, int64_t m, int64_t n, int64_t k, const double *a, const double *b,
                double *c);
/* c = alpha · op(a) · op(b) (+ c with GRADC_GEMM_ACC): a factor of the
 * product is BLAS's alpha, not a pass of its own (2 .* X'*T into a gradient). */
void gradc_gemm_scaled(int32_t flags, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                       const double *b, double *c);
/* One product over rows lo .. R-1 of the row-major R×C matrix M (passes.c):
 * gradc_pass_n: out[i] += kc * (M x)[i] when out, *dot += w[i] * (M x)[i]
 * when w; gradc_pass_t: out += kc * M(lo..R-1 rows)' * v(lo..R-1);
 * gradc_pass_nt: both from one read of M.  A NULL x or v is a fill: every
 * entry is the constant after it.  a*b + c is fused where the target has
 * FMA; the _nofma kernels (for -O0 code) never fuse. */
void gradc_pass_n(int64_t lo, int64_t R, int64_t C, const double *M, const double *x, double xfill,
                  double *out, double kc, const double *w, double *dot);
void gradc_pass_t(int64_t lo, int64_t R, int64_t C, const double *M, const double *v, double vfill,
                  double *out, double kc);
void gradc_pass_nt(int64_t lo, int64_t R, int64_t C, const double *M, const double *x, double xfill,
                   double *out, double kc, const double *w, double *dot, const double *v, double vfill,
                   double *out_t, double kt);
void gradc_pass_n_nofma(int64_t lo, int64_t R, int64_t C, const double *M, const double *x, double xfill,
                        double *out, double kc, const double *w, double *dot);
void gradc_pass_t_nofma(int64_t lo, int64_t R, int64_t C, const double *M, const double *v, double vfill,
                        double *out, double kc);
void gradc_pass_nt_nofma(int64_t lo, int64_t R, int64_t C, const double *M, const double *x, double xfill,
                         double *out, double kc, const double *w, double *dot, const double *v,
                         double vfill, double *out_t, double kt);
/* Products with a diag or fill factor, in O(m·n) (kernels.c).  An operand
 * passed as NULL is a fill: all its entries are the constant after it.
 * c[m×n] = diag(d)·op(b), or op(b)·diag(d) with GRADC_SCALE_COLS; op(b) is
 * m×n: b, or with GRADC_GEMM_TB the transpose of b stored n×m. */
#define GRADC_SCALE_COLS 8
void gradc_scale(int32_t flags, int64_t m, int64_t n, const double *d, double dk, const double *b, double bk,
                 double *c);
/* c[m×n] = fill(k)[m×K]·op(x)[K×n] (every row the column sums of op(x),
 * times k), or with GRADC_SUMS_ROWS op(x)[m×K]·fill(k)[K×n] (every column
 * the row sums); op(x) as above with GRADC_GEMM_TB. */
#define GRADC_SUMS_ROWS 16
void gradc_sums(int32_t flags, int64_t m, int64_t n, int64_t K, double k, const double *x, double xk, double *c);
/* out[i] = Σ_p op(a)[i][p]·w[p]·op(b)[p][i] (i < m, p < K): the diagonal of
 * op(a)·diag(w)·op(b) without the product (transpose flags as gradc_gemm's;
 * w NULL: every weight wk). */
void gradc_diag_gemm(int32_t flags, int64_t m, int64_t K, const double *a, double ak, const double *w, double wk,
                     const double *b, double bk, double *out);

/* Special functions (runtime/special.c), shared by gradc's interpreter.
 * gradc_lgamma is lgamma without the global signgam (thread-safe);
 * gradc_polygamma(k, x) is the k-th derivative of digamma (k an integer
 * 0..64; trigamma is k = 1). */
double gradc_lgamma(double x);
double gradc_digamma(double x);
double gradc_polygamma(double k, double x);

#ifdef __cplusplus
}
#endif
#endif
