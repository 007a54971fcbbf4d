"""The GINN's gauge sector under Langevin training: an exactly integrated Ornstein–Uhlenbeck process.

Phases theta split into a physical part (E^T theta_perp = 0) and gauge coordinates a with
theta = theta_perp + E a, where E maps site phases to link phases and M = E^T E. The loss is gauge
invariant, so its gradient has no gauge part; covariant gauge fixing adds the drift -(1/xi) E E^T theta,
so a obeys da = -(1/xi) M a dt + sqrt(2T) M^{-1/2} dW (docs/science.md §5). In M's eigenbasis (eigenvalue
m) that is solved exactly over a step dt: a' = e^{-x} a + sqrt(T xi / m^2 (1 - e^{-2x})) zeta with
x = m dt / xi; xi = inf is free diffusion a' = a + sqrt(2 T dt / m) zeta. G = E^T theta = M a then
has stationary variance xi T at every site, whatever the stiffness (no step-size limit).
"""

from __future__ import annotations

import math

import torch

from pipeline.nets.ginn import GINN, apply_gauge, gauge_generator_gram, site_divergence


class GaugeSector:
    """Exact OU update of a GINN's gauge coordinates, and projection of noise off gauge orbits.

    Covariant gauge fixing after Zwanziger 1981 (docs/science.md §5). Holds the eigendecomposition
    (m_eig, m_vec) of M = E^T E, float64, of shapes (n,) and (n, n), n the number of hidden sites.

    Args:
        model: the GINN whose phases are updated in place by `step` and `fix_divergence_free`.
    """

    def __init__(self, model: GINN):
        self.model = model
        self.sizes = [link.theta.shape[0] for link in model.links]
        m = gauge_generator_gram(model)
        self.m_eig, self.m_vec = torch.linalg.eigh(m)

    def divergence(self) -> torch.Tensor:
        """G = E^T theta (float64), concatenated over hidden layers.

        Returns:
            float64 tensor of shape (n,).
        """
        return site_divergence([t.detach().double() for t in self.model.phases()])

    def _to_layers(self, a: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(a, self.sizes))

    def _solve(self, g: torch.Tensor) -> torch.Tensor:
        """a = M^{-1} G."""
        return self.m_vec @ ((self.m_vec.T @ g) / self.m_eig)

    def project_out(self, noise: list[torch.Tensor]) -> list[torch.Tensor]:
        """Remove the gauge-orbit component E M^{-1} E^T eta from a phase noise eta (per layer).

        Args:
            noise: phase noise per layer, eta^l of shape (n_l, n_{l-1}).

        Returns:
            The physical part eta - E M^{-1} E^T eta per layer, same shapes and dtypes as `noise`.
        """
        g = site_divergence([n.double() for n in noise])
        a = self._to_layers(self._solve(g))
        out, prev = [], None
        for n, a_l in zip(noise, a):
            d = a_l[:, None] - (prev[None, :] if prev is not None else 0.0)
            out.append(n - d.to(n.dtype))
            prev = a_l
        return out

    @torch.no_grad()
    def fix_divergence_free(self) -> None:
        """Gauge-transform to G = E^T theta = 0 (a Landau-like gauge); the network function is unchanged."""
        apply_gauge(self.model, self._to_layers(-self._solve(self.divergence())))

    @torch.no_grad()
    def step(self, dt: float, temperature: float, xi: float, generator: torch.Generator) -> None:
        """Advance the gauge coordinates exactly by dt (drift strength 1/xi, xi = inf: none).

        Per eigenmode (m, u_m) of M: a <- e^{-x} a + sqrt(T xi (1 - e^{-2x})) / m * zeta, x = m dt / xi,
        the exact solution of da = -(1/xi) M a dt + sqrt(2T) M^{-1/2} dW; for xi = inf
        a <- a + sqrt(2 T dt / m) zeta (docs/science.md §5). Applied to the phases as a gauge transformation.

        Args:
            dt: time step (the Langevin learning rate).
            temperature: temperature T >= 0.
            xi: gauge parameter, > 0 or inf.
            generator: random stream of the gauge noise zeta (float64).
        """
        a = self.m_vec.T @ self._solve(self.divergence())  # eigen-coordinates of a
        zeta = torch.randn(a.shape, generator=generator, dtype=torch.float64)
        m = self.m_eig
        if math.isinf(xi):
            new = a + torch.sqrt(2 * temperature * dt / m) * zeta
        else:
            x = m * dt / xi
            new = torch.exp(-x) * a + torch.sqrt(temperature * xi / m**2 * (-torch.expm1(-2 * x))) * zeta
        apply_gauge(self.model, self._to_layers(self.m_vec @ (new - a)))

    def predicted_autocorrelation(self, lags: torch.Tensor, dt: float, temperature: float, xi: float) -> torch.Tensor:
        """Site-averaged autocovariance of G at integer lags: xi T mean_m(u_m^2 e^{-m k dt / xi}).

        C(k) = xi T sum_m w_m exp(-m k dt / xi), w_m the site average of u_m^2 (= 1/n for unit eigenvectors,
        so C(k) is xi T times the mode average of exp(-m k dt / xi)); docs/science.md §5.

        Args:
            lags: integer lags k in steps, tensor of shape (n_lags,).
            dt: time step.
            temperature: temperature T.
            xi: gauge parameter (finite).

        Returns:
            float64 tensor of shape (n_lags,).
        """
        w = (self.m_vec**2).mean(0)  # site-average weight of each mode (sums to 1/n * n = 1)
        return (
            temperature * xi * (w[None, :] * torch.exp(-self.m_eig[None, :] * lags[:, None] * dt / xi)).sum(1) / w.sum()
        )
