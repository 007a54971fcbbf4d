"""Independent references for theory tests: scalar activations from Python's `math` and scipy quadrature.

A helper module, not a test module (no tests are collected from it): the theory test modules of this folder import
their references from here. Nothing here imports the package: these are the brute-force code paths the theory is
checked against.
"""

import math

from scipy import integrate, optimize

PHI = {  # phi and phi', written out by hand
    "tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "erf": (math.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x)),
    "relu": (lambda x: max(x, 0.0), lambda x: float(x > 0)),
    "gelu": (
        lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))),
        lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi),
    ),
    "swish": (
        lambda x: x / (1 + math.exp(-x)),
        lambda x: 1 / (1 + math.exp(-x)) + x * math.exp(-x) / (1 + math.exp(-x)) ** 2,
    ),
}


def gauss_mean(f, q: float) -> float:
    """E f(sqrt(q) z), z ~ N(0, 1), by adaptive quadrature (scipy.integrate.quad) on [-12, 12]."""
    s = math.sqrt(q)
    val, _ = integrate.quad(
        lambda z: f(s * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -12, 12, epsabs=1e-14, limit=400
    )
    return val


def q_star_quad(name: str, sigma_w2: float, sigma_b2: float) -> float:
    """Root of sigma_w2 E phi^2 + sigma_b2 - q on (sigma_b2 / 2, 50] by Brent's method (finite q* > 0 only)."""
    phi = PHI[name][0]
    return optimize.brentq(
        lambda q: sigma_w2 * gauss_mean(lambda x: phi(x) ** 2, q) + sigma_b2 - q,
        max(sigma_b2 / 2, 1e-9),
        50.0,
        xtol=1e-14,
        rtol=1e-14,
    )


def chi1_quad(name: str, sigma_w2: float, q: float) -> float:
    """chi_1 = sigma_w2 E phi'(sqrt(q) z)^2 by scipy quad."""
    dphi = PHI[name][1]
    return sigma_w2 * gauss_mean(lambda x: dphi(x) ** 2, q)


def kernel_quad(f, g, q1: float, q2: float, c: float) -> float:
    """E f(u1) g(u2), (u1, u2) centred Gaussian with variances q1, q2 and correlation c, by scipy dblquad."""
    s = math.sqrt(1 - c * c)

    def integrand(z2, z1):
        u1 = math.sqrt(q1) * z1
        u2 = math.sqrt(q2) * (c * z1 + s * z2)
        return f(u1) * g(u2) * math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)

    val, _ = integrate.dblquad(integrand, -9, 9, -9, 9, epsabs=1e-12, epsrel=1e-11)
    return val


def variance_map_quad(name: str, q: float, sigma_w2: float, sigma_b2: float, xi: float = 1.0) -> float:
    """q' = sigma_w2 [E phi^2 - (1 - xi) (E phi)^2] + sigma_b2 by scipy quad (docs/science.md §1, §4)."""
    phi = PHI[name][0]
    m = gauss_mean(phi, q)
    return sigma_w2 * (gauss_mean(lambda x: phi(x) ** 2, q) - (1 - xi) * m * m) + sigma_b2


def q_star_quad_xi(name: str, sigma_w2: float, sigma_b2: float, xi: float) -> float:
    """Root of the xi variance map minus q by Brent's method (finite q* > 0 only)."""
    return optimize.brentq(
        lambda q: variance_map_quad(name, q, sigma_w2, sigma_b2, xi) - q,
        max(sigma_b2 / 2, 1e-9),
        50.0,
        xtol=1e-14,
        rtol=1e-14,
    )


def gauss_expect(f, q: float) -> float:
    """E f(h), h ~ N(0, q), by scipy quad in h, split at 0 and at +-1, +-5 (the activation's scale)."""
    s = math.sqrt(q)

    def g(h):
        return f(h) * math.exp(-h * h / (2 * q)) / (s * math.sqrt(2 * math.pi))

    pts = [-40 * s, -5.0, -1.0, 0.0, 1.0, 5.0, 40 * s] if s > 5 else [-40 * s, 0.0, 40 * s]
    pts = sorted(set(pts))
    return sum(integrate.quad(g, a, b, epsabs=0, epsrel=1e-13, limit=400)[0] for a, b in zip(pts[:-1], pts[1:]))
