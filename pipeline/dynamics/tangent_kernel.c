/* The lean (signal, tangent) kernel chain of pipeline.dynamics.chain.tangent_chain, fused: one pass over the
 * units per layer and sigma_w2 instead of eight tensor passes (docs/science.md §7a). Built and loaded by
 * pipeline/dynamics/native.py; the Python path `_tangent_chunk` is the reference it is tested against.
 *
 * Per network and layer, with e = (e1, e2) the previous transition's N standard normal pairs and (f11, f21, f22,
 * ct) its 2 x 2 factor and tangent normalization, the rows are h = f11 e1, a = phi(h), d = phi'(h), and the next
 * kernel needs the sums  a^2, a d e1, a d e2, d^2 e1^2, d^2 e1 e2, d^2 e2^2  [+ a, d e1, d e2 for the gauge].
 * Rows are float32 (as the float32 torch path), lane sums float32, every scalar after the sums float64; the
 * sums are bitwise the same on every CPU (LANES below).
 * No fast-math: NaN and inf propagate as in torch (a network whose tangent dies turns NaN and is dropped).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { ACT_TANH = 0, ACT_RELU = 1, ACT_LINEAR = 2, ACT_ERF = 3 };

/* tanh as Eigen's float rational approximation (clamped at +-7.9053, where it rounds to +-1): plain arithmetic,
 * so the unit loop vectorizes; within 3e-7 of tanh (tests/dynamics/test_native.py). */
static inline float tanh_f(float x) {
    x = x > 7.90531110763549805f ? 7.90531110763549805f : (x < -7.90531110763549805f ? -7.90531110763549805f : x);
    const float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

/* erf as Eigen's float rational approximation on [-4, 4] (erf rounds to +-1 beyond): within 3e-7 of erf. */
static inline float erf_f(float x) {
    x = x > 4.0f ? 4.0f : (x < -4.0f ? -4.0f : x);
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

/* exp(-y) for y >= 0 by Cephes' expf: n = round(-y / ln 2) by the float magic-number rounding (no float-to-int
 * conversion, which kept the loop scalar), a degree-6 polynomial of the remainder, times 2^n built in the exponent
 * bits; y clamped at 87 (exp(-87) = 1.6e-38, the smallest normals). */
static inline float exp_neg_f(float y) {
    const float x = -(y > 87.0f ? 87.0f : y);
    union { float f; uint32_t i; } t = {.f = x * 1.44269504088896341f + 12582912.0f}; /* 1.5 * 2^23 */
    const float n = t.f - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { uint32_t i; float f; } scale = {.i = (t.i - 0x4B400000u + 127u) << 23}; /* unsigned: no UB for NaN */
    return p * scale.f;
}

/* Sums run in LANES fixed partial sums (unit j into lane j % LANES), added in lane order at the end: the same
 * arithmetic whatever SIMD width the compiler picks for this CPU (16 floats, or 2 x 8, or 4 x 4), so every x86
 * or ARM machine gives the same bits (with -ffp-contract=off: no FMA where another CPU has none). */
#define LANES 16

/* The unit sums of one (network, sigma_w2) at scale f: out[0..5] = a^2, a d e1, a d e2, d^2 e1^2, d^2 e1 e2,
 * d^2 e2^2, and with `gauge` out[6..8] = a, d e1, d e2. One loop per activation and gauge flag, so each
 * vectorizes without a branch inside. */
#define UNIT_BODY(ACT_A, ACT_D, GAUGE, J, L)                                                                     \
    {                                                                                                            \
        const float h = f * e1[J];                                                                                \
        const float a = (ACT_A);                                                                                  \
        const float d = (ACT_D);                                                                                  \
        const float ad = a * d, dd = d * d;                                                                       \
        s0[L] += a * a; s1[L] += ad * e1[J]; s2[L] += ad * e2[J];                                                 \
        s3[L] += dd * q11[J]; s4[L] += dd * q12[J]; s5[L] += dd * q22[J];                                         \
        if (GAUGE) { s6[L] += a; s7[L] += d * e1[J]; s8[L] += d * e2[J]; }                                        \
    }

#define UNIT_SUMS(ACT_A, ACT_D, GAUGE)                                                                           \
    for (int64_t j0 = 0; j0 < n; j0 += LANES) {                                                                  \
        if (n - j0 >= LANES) {                                                                                   \
            _Pragma("omp simd")                                                                                  \
            for (int l = 0; l < LANES; l++) UNIT_BODY(ACT_A, ACT_D, GAUGE, j0 + l, l)                            \
        } else {                                                                                                 \
            for (int l = 0; l < n - j0; l++) UNIT_BODY(ACT_A, ACT_D, GAUGE, j0 + l, l)                           \
        }                                                                                                        \
    }

#define BY_GAUGE(ACT_A, ACT_D)                                                                                   \
    if (gauge) { UNIT_SUMS(ACT_A, ACT_D, 1) } else { UNIT_SUMS(ACT_A, ACT_D, 0) }

/* phi(h) and phi'(h) of each activation, as expressions of h (and of a = phi(h) for the slope) */
#define TANH_A tanh_f(h)
#define TANH_D (1.0f - a * a)
#define RELU_A (h > 0.0f ? h : 0.0f)
#define RELU_D (h > 0.0f ? 1.0f : 0.0f)
#define ERF_A erf_f(h)
#define ERF_D (1.12837916709551257f * exp_neg_f(h * h)) /* 2 / sqrt(pi) exp(-h^2) */
#define LINEAR_A h
#define LINEAR_D 1.0f

static void unit_sums(int act, int gauge, int64_t n, float f, const float *restrict e1, const float *restrict e2,
                      const float *restrict q11, const float *restrict q12, const float *restrict q22,
                      double *out) {
    float s0[LANES] = {0}, s1[LANES] = {0}, s2[LANES] = {0}, s3[LANES] = {0}, s4[LANES] = {0}, s5[LANES] = {0},
          s6[LANES] = {0}, s7[LANES] = {0}, s8[LANES] = {0};
    if (act == ACT_TANH) {
        BY_GAUGE(TANH_A, TANH_D)
    } else if (act == ACT_RELU) {
        BY_GAUGE(RELU_A, RELU_D)
    } else if (act == ACT_ERF) {
        BY_GAUGE(ERF_A, ERF_D)
    } else {
        BY_GAUGE(LINEAR_A, LINEAR_D)
    }
    const float *sums[9] = {s0, s1, s2, s3, s4, s5, s6, s7, s8};
    for (int k = 0; k < 9; k++) {
        double t = 0;
        for (int l = 0; l < LANES; l++) t += sums[k][l];
        out[k] = t;
    }
}

/* Layers l0 .. l0 + nl - 1 of S networks.
 *   gain[K] = sigma_w2 / N; sb2 = sigma_b2; c = (xi - 1) / N (the gauge term; 0 for xi = 1)
 *   draws (S, nb, N, 2): the block's standard normals as drawn (unit-major pairs), nb >= nl layers per network
 *   prev (S, 2, N): the previous transition's (e1, e2) rows, read when l0 > 0, written with the block's last
 *   g0 (S, K, 3): layer 0's kernel (g11, g12, g22) before the gain, read when l0 == 0
 *   state (S, K, 5): f11, f21, f22, ct, total (sum of 0.5 ln ||t||^2 over layers >= burn_in), read and written
 *   ee (S, 3): float64 sums of e1^2, e1 e2, e2^2 of the last draw, written
 *   scratch: 5 N floats
 */
void tangent_block(int act, int64_t S, int64_t K, int64_t N, int64_t l0, int64_t nl, int64_t nb, int64_t burn_in,
                   const double *gain, double sb2, double c, const float *draws, float *prev, const double *g0,
                   double *state, double *ee, float *scratch) {
    float *q11 = scratch, *q12 = scratch + N, *q22 = scratch + 2 * N, *e1 = scratch + 3 * N, *e2 = scratch + 4 * N;
    double sums[9];
    for (int64_t s = 0; s < S; s++) {
        float *p1 = prev + s * 2 * N, *p2 = p1 + N;
        double *st = state + s * K * 5, *es = ee + s * 3;
        for (int64_t i = 0; i < nl; i++) {
            const int64_t layer = l0 + i;
            if (layer) { /* the previous draw's monomials, shared by every sigma_w2 */
                for (int64_t j = 0; j < N; j++) {
                    q11[j] = p1[j] * p1[j]; q12[j] = p1[j] * p2[j]; q22[j] = p2[j] * p2[j];
                }
            }
            const float *draw = draws + (s * nb + i) * N * 2;
            double a11[LANES] = {0}, a12[LANES] = {0}, a22[LANES] = {0}, e11 = 0, e12 = 0, e22 = 0;
            for (int64_t j0 = 0; j0 < N; j0 += LANES) {
                const int m = N - j0 < LANES ? (int)(N - j0) : LANES;
#pragma omp simd
                for (int l = 0; l < m; l++) {
                    const float x = draw[2 * (j0 + l)], y = draw[2 * (j0 + l) + 1];
                    e1[j0 + l] = x; e2[j0 + l] = y;
                    a11[l] += (double)(x * x); a12[l] += (double)(x * y); a22[l] += (double)(y * y);
                }
            }
            for (int l = 0; l < LANES; l++) { e11 += a11[l]; e12 += a12[l]; e22 += a22[l]; }
            for (int64_t k = 0; k < K; k++) {
                double *f = st + k * 5, g11, g12, g22;
                if (layer) {
                    const double f11 = f[0], f21 = f[1], f22 = f[2], ct = f[3];
                    unit_sums(act, c != 0.0, N, (float)f11, p1, p2, q11, q12, q22, sums);
                    g11 = sums[0];
                    g12 = ct * (f21 * sums[1] + f22 * sums[2]);
                    g22 = (ct * ct) * (f21 * f21 * sums[3] + 2 * f21 * f22 * sums[4] + f22 * f22 * sums[5]);
                    if (c != 0.0) {
                        const double sa = sums[6], sb = ct * (f21 * sums[7] + f22 * sums[8]);
                        g11 += c * sa * sa; g12 += c * sa * sb; g22 += c * sb * sb;
                    }
                } else {
                    const double *g = g0 + (s * K + k) * 3;
                    g11 = g[0]; g12 = g[1]; g22 = g[2];
                }
                g11 = gain[k] * g11 + sb2; g12 *= gain[k]; g22 *= gain[k];
                const double f11 = sqrt(g11), f21 = f11 > 0 ? g12 / f11 : 0.0;
                const double r = g22 - f21 * f21, f22 = sqrt(r < 0 ? 0.0 : r); /* NaN stays NaN, as clamp_min */
                /* ||t||^2 of the drawn tangent f21 e1 + f22 e2: 0 when every slope vanished (NaN downstream) */
                const double tt = f21 * f21 * e11 + 2 * f21 * f22 * e12 + f22 * f22 * e22;
                if (layer >= burn_in) f[4] += 0.5 * log(tt);
                f[0] = f11; f[1] = f21; f[2] = f22; f[3] = 1.0 / sqrt(tt);
            }
            memcpy(p1, e1, N * sizeof(float));
            memcpy(p2, e2, N * sizeof(float));
            es[0] = e11; es[1] = e12; es[2] = e22;
        }
    }
}

/* phi and phi' of x[0..n-1] into a and d, by the expressions of the unit loop (tests check them against libm) */
void activation_values(int act, int64_t n, const float *x, float *a_out, float *d_out) {
    for (int64_t j = 0; j < n; j++) {
        const float h = x[j];
        float a, d;
        if (act == ACT_TANH) { a = TANH_A; d = TANH_D; }
        else if (act == ACT_RELU) { a = RELU_A; d = RELU_D; }
        else if (act == ACT_ERF) { a = ERF_A; d = ERF_D; }
        else { a = LINEAR_A; d = LINEAR_D; }
        a_out[j] = a; d_out[j] = d;
    }
}
