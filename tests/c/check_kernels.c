/* C-level check of the row primitives and an elementwise kernel at every
 * instruction-set level this CPU supports, against scalar double references.
 * Built without Python (for a cross-compiled ARM run under qemu, see
 * .ci/arm_check.sh), so Py_ssize_t is defined here.  Exit status 0: all good.
 */
#include <stddef.h>
#include <stdio.h>
#include <math.h>
#include <stdint.h>
typedef ptrdiff_t Py_ssize_t;
#include "_xf_rows.h"
#include "_xf_elementwise.h"

static int failures = 0;

static void check(const char *what, int level, Py_ssize_t c, double got, double want, double tol)
{
    int ok = (isnan(want) && isnan(got)) || got == want || fabs(got - want) <= tol * (1 + fabs(want));
    if (!ok) {
        failures++;
        if (failures < 20)
            printf("FAIL %s level %s c=%ld: got %.9g want %.9g\n", what,
                   xf_level_names[level], (long)c, got, want);
    }
}

/* Deterministic pseudo-random logits in [-8, 8). */
static float next_value(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) * (16.0 / 16777216.0) - 8.0);
}

static void check_rows(int level, Py_ssize_t c)
{
    float x[1100], e[1100], g[1100];
    unsigned state = (unsigned)c;
    for (Py_ssize_t j = 0; j < c; j++)
        x[j] = next_value(&state);
    double m_ref = -INFINITY, sum_ref = 0.0;
    for (Py_ssize_t j = 0; j < c; j++)
        m_ref = x[j] > m_ref ? x[j] : m_ref;
    for (Py_ssize_t j = 0; j < c; j++)
        sum_ref += exp((double)x[j] - m_ref);
    float m = xf_row_max_f32(x, c);
    check("row_max", level, c, m, m_ref, 0);
    double l1p;
    double others = xf_row_exp_sum_f32(x, c, m, e, &l1p);
    check("row_exp_sum", level, c, 1 + others, sum_ref, 1e-6);
    check("row_exp_sum log1p", level, c, l1p, log(sum_ref), 1e-6);
    for (Py_ssize_t j = 0; j < c; j++)
        check("row_exp_sum e", level, c, e[j], exp((double)x[j] - m_ref), 3e-7);
    xf_row_sub_f32(x, c, m, (float)l1p, g);
    for (Py_ssize_t j = 0; j < c; j++)
        check("row_sub", level, c, g[j], (double)x[j] - m_ref - log(sum_ref), 1e-6);
    double w_sum;
    double dot = xf_row_target_dot_f32(x, c, m, NULL, NULL, 0, 1, &w_sum);
    double dot_ref = 0;
    for (Py_ssize_t j = 0; j < c; j++)
        dot_ref += (double)x[j] - m_ref;
    check("row_target_dot", level, c, dot, dot_ref, 1e-6);
    check("row_target_dot c_sum", level, c, w_sum, (double)c, 0);
    e[c] = g[c] = 42.0f;   /* nothing past the row may be written */
    xf_row_scale_sub_f32(e, c, 0.5f, 0.25f, NULL, NULL, 0, 1);
    for (Py_ssize_t j = 0; j < c; j++)
        check("row_scale_sub", level, c, e[j], 0.5 * exp((double)x[j] - m_ref) - 0.25, 1e-6);
    xf_row_sub_f32(x, c, m, 0.5f, g);
    check("row_scale_sub past the row", level, c, e[c], 42.0, 0);
    check("row_sub past the row", level, c, g[c], 42.0, 0);
}

/* Exps in float's subnormal range and of -inf: gradual underflow, not a
 * flush to 0 (the AVX2 exp builds 2^n its own way), and exactly 0. */
static void check_exp_underflow(int level)
{
    enum { C = 64 };
    float x[C], e[C];
    for (Py_ssize_t j = 0; j < C; j++)
        x[j] = j == 0 ? 0.0f : j == 1 ? -INFINITY : -86.0f - 0.3f * (float)j;   /* to -104.9 */
    double l1p;
    xf_row_exp_sum_f32(x, C, xf_row_max_f32(x, C), e, &l1p);
    check("exp(0)", level, C, e[0], 1.0, 0);
    check("exp(-inf)", level, C, e[1], 0.0, 0);
    for (Py_ssize_t j = 2; j < C; j++) {
        double want = exp((double)x[j]);
        /* within one subnormal step (2^-149) and 1e-6 relative */
        check("exp underflow", level, C, e[j] / 1.4012984643e-45, want / 1.4012984643e-45,
              1e-6 + 1.0 / (1 + want / 1.4012984643e-45));
    }
}

/* The sum of all terms but one max term, in rows where that is delicate:
 * ties for the max, a max that is not finite, a NaN. */
static void check_exp_sum_edges(int level)
{
    static const float rows[][5] = {
        {0.0f, 0.0f, -1.0f, 0.0f, -2.0f},            /* three max terms */
        {-3.0f, 2.0f, 2.0f, -1.0f, 0.5f},
        {INFINITY, 0.0f, 1.0f, -1.0f, 0.0f},         /* +inf: NaN */
        {NAN, 0.0f, -1.0f, 2.0f, 0.0f},              /* NaN: NaN */
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},   /* all -inf: NaN */
    };
    for (int r = 0; r < 5; r++) {
        for (Py_ssize_t n = 1; n <= 5; n++) {
            float e[5];
            double l1p;
            float m = xf_row_max_f32(rows[r], n);
            double others = xf_row_exp_sum_f32(rows[r], n, m, e, &l1p);
            double want = -1.0, mref = -INFINITY;
            int nan_row = 0;
            for (Py_ssize_t j = 0; j < n; j++) {
                nan_row |= rows[r][j] != rows[r][j];
                mref = rows[r][j] > mref ? rows[r][j] : mref;
            }
            for (Py_ssize_t j = 0; j < n; j++)
                want += exp((double)rows[r][j] - mref);
            if (nan_row || !isfinite(mref))
                want = NAN;
            check("row_exp_sum edges", level, n, others, want, 1e-6);
        }
    }
}

/* The same in long rows, whose max terms fall in full vectors and in later
 * blocks of the sums: 1 to 3 ties, a dominant max (the others' sum ~1e-8,
 * which must keep its relative accuracy), a NaN or +inf late in the row.
 * The six rows then go through xf_rows_max and xf_rows_exp_sum together,
 * which must give each row's results exactly. */
static void check_exp_sum_long(int level)
{
    static const Py_ssize_t lengths[] = {17, 40, 100, 300, 700};
    static float rows[6 * 700], e[6 * 700], e_rows[6 * 700], m[6];
    double others_row[6], others_rows[6];
    for (int li = 0; li < 5; li++) {
        Py_ssize_t n = lengths[li];
        for (int kind = 0; kind < 6; kind++) {
            float *x = rows + kind * n;
            unsigned state = (unsigned)(n * 7 + kind);
            for (Py_ssize_t j = 0; j < n; j++)
                x[j] = next_value(&state) * 0.5f - (kind == 3 ? 30.0f : 4.5f);   /* < 0 */
            Py_ssize_t ties = kind < 3 ? kind + 1 : 1;
            for (Py_ssize_t t = 0; t < ties; t++)
                x[(n - 1) * (t + 1) / (ties + 1) + t] = 0.0f;
            if (kind == 4)
                x[n - 2] = NAN;
            if (kind == 5)
                x[n - 1] = INFINITY;
            double l1p, want = -1.0;
            m[kind] = xf_row_max_f32(x, n);
            others_row[kind] = xf_row_exp_sum_f32(x, n, m[kind], e + kind * n, &l1p);
            for (Py_ssize_t j = 0; j < n; j++)
                want += exp((double)x[j]);
            if (kind >= 4)
                want = NAN;
            check("row_exp_sum long", level, n, others_row[kind], want, 1e-6);
        }
        float m_rows[6];
        xf_rows_max_f32(rows, n, 6, m_rows);
        for (int r = 0; r < 6; r++)
            check("rows_max", level, n, m_rows[r], m[r], 0);
        xf_rows_exp_sum_f32(rows, n, 6, m, e_rows, others_rows);
        for (int r = 0; r < 6; r++)
            check("rows_exp_sum", level, n, others_rows[r], others_row[r], 0);
        for (Py_ssize_t j = 0; j < 6 * n; j++)
            check("rows_exp_sum e", level, n, e_rows[j], e[j], 0);
    }
}

/* The double instances share the code above; check their exp and sums. */
static void check_rows_f64(int level, Py_ssize_t c)
{
    double x[1100], e[1100];
    unsigned state = (unsigned)c + 1;
    for (Py_ssize_t j = 0; j < c; j++)
        x[j] = next_value(&state) * 10.0;
    double m_ref = -INFINITY, sum_ref = 0.0;
    for (Py_ssize_t j = 0; j < c; j++)
        m_ref = x[j] > m_ref ? x[j] : m_ref;
    for (Py_ssize_t j = 0; j < c; j++)
        sum_ref += exp(x[j] - m_ref);
    double m = xf_row_max_f64(x, c), l1p;
    check("row_max f64", level, c, m, m_ref, 0);
    double others = xf_row_exp_sum_f64(x, c, m, e, &l1p);
    check("row_exp_sum f64", level, c, 1 + others, sum_ref, 1e-14);
    check("row_exp_sum f64 log1p", level, c, l1p, log(sum_ref), 1e-14);
    for (Py_ssize_t j = 0; j < c; j++)
        check("row_exp_sum f64 e", level, c, e[j], exp(x[j] - m_ref), 1e-15);
}

static void check_tile(int level, Py_ssize_t c, Py_ssize_t nr)
{
    float x[XF_LANES * 40], tile[XF_LANES * 40], g[XF_LANES * 40];
    float m[XF_LANES], others[XF_LANES], l1p[XF_LANES], a[XF_LANES], s[XF_LANES], b[XF_LANES];
    unsigned state = (unsigned)(c * 31 + nr);
    for (Py_ssize_t i = 0; i < nr * c; i++)
        x[i] = next_value(&state);
    xf_tile_load_f32(x, c, nr, tile, m);
    xf_tile_exp_f32(tile, c, m, tile, others, l1p);
    for (Py_ssize_t k = 0; k < XF_LANES; k++) {
        a[k] = 2.0f;
        s[k] = 0.5f;
        b[k] = 0.25f;
    }
    xf_tile_store_f32(tile, c, nr, a, s, b, NULL, g);
    for (Py_ssize_t k = 0; k < nr; k++) {
        double mk = -INFINITY, sum = 0;
        for (Py_ssize_t j = 0; j < c; j++)
            mk = x[k * c + j] > mk ? x[k * c + j] : mk;
        for (Py_ssize_t j = 0; j < c; j++)
            sum += exp((double)x[k * c + j] - mk);
        check("tile_load max", level, c, m[k], mk, 0);
        check("tile_exp others", level, c, 1 + others[k], sum, 1e-6);
        check("tile_exp log1p", level, c, l1p[k], log(sum), 1e-6);
        for (Py_ssize_t j = 0; j < c; j++)
            check("tile_store", level, c, g[k * c + j],
                  2 * exp((double)x[k * c + j] - mk) - 0.75, 1e-6);
    }
}

static void check_bce_logits(int level)
{
    enum { N = 1000 };
    float x[N], t[N], w[N], loss[N], grad[N];
    unsigned state = 7;
    for (int i = 0; i < N; i++) {
        x[i] = 3 * next_value(&state);
        t[i] = (float)(i % 3 == 0);
        w[i] = 1;
    }
    /* weights given as ones, then absent (NULL: the kernel's loop without them) */
    for (int weighted = 1; weighted >= 0; weighted--) {
        double total = xf_bce_logits_block_f32(x, t, weighted ? w : NULL, weighted ? w : NULL,
                                               N, 1.0f, loss, grad);
        double total_ref = 0;
        for (int i = 0; i < N; i++) {
            double xi = x[i];
            double li = fmax(xi, 0) - xi * t[i] + log1p(exp(-fabs(xi)));
            total_ref += li;
            check("bce_logits loss", level, N, loss[i], li, 1e-6);
            check("bce_logits grad", level, N, grad[i], 1 / (1 + exp(-xi)) - t[i], 1e-6);
        }
        check("bce_logits sum", level, N, total, total_ref, 1e-6);
    }
}

/* The label scan's count: out-of-range labels (negative, n_classes, huge)
 * and ignored ones at every position of vectors and tails. */
static void check_count_bad_labels(int level)
{
    enum { N = 203 };
    static const int64_t odd[] = {-1, 10, -100, INT64_MIN, INT64_MAX, 11};
    int64_t y[N];
    for (int step = 1; step <= 7; step += 3) {
        Py_ssize_t ign;
        for (int i = 0; i < N; i++) {
            y[i] = i % 10;
            if (i % (5 * step) == 3)
                y[i] = -100;   /* the ignore_index below */
            if (i % (7 * step) == 5)
                y[i] = odd[i % 6];
        }
        for (Py_ssize_t n = 0; n <= N; n += n < 20 ? 1 : 61) {
            Py_ssize_t b = 0, g = 0;
            for (Py_ssize_t i = 0; i < n; i++) {
                g += y[i] == -100;
                b += y[i] != -100 && (y[i] < 0 || y[i] >= 10);
            }
            Py_ssize_t got = xf_count_bad_labels(y, n, 10, -100, &ign);
            check("count_bad_labels", level, n, (double)got, (double)b, 0);
            check("count_bad_labels ignored", level, n, (double)ign, (double)g, 0);
        }
    }
}

int main(void)
{
    int best = xf_best_level, levels = 0;
    for (int level = 0; level <= best; level++) {
        xf_choose_level(xf_level_names[level]);
        if (xf_level != level) {
            printf("FAIL: XENTFAST_SIMD=%s chose level %d\n", xf_level_names[level], xf_level);
            return 1;
        }
        for (Py_ssize_t c = 1; c <= 1100; c += c < 40 ? 1 : 97) {
            check_rows(level, c);
            check_rows_f64(level, c);
        }
        for (Py_ssize_t c = 1; c <= 40; c++)
            for (Py_ssize_t nr = 1; nr <= XF_LANES; nr += 5)
                check_tile(level, c, nr);
        check_exp_underflow(level);
        check_exp_sum_edges(level);
        check_exp_sum_long(level);
        check_bce_logits(level);
        check_count_bad_labels(level);
        printf("level %s checked\n", xf_level_names[level]);
        levels++;
    }
    xf_choose_level("no-such-level");
    if (xf_env_status != XF_ENV_UNKNOWN || xf_level != best) {
        printf("FAIL: an unknown level name is not ignored\n");
        return 1;
    }
    printf("%s: %d level(s), %d failure(s)\n", failures ? "FAILED" : "OK", levels, failures);
    return failures != 0;
}
