"""A per-element linear fit of per-structure values, shrunk toward one per-atom value, with the
strength chosen by leave-one-out: the energy shift of a pre-trained head against new labels
(`lamm.analysis.zero_shot`; the change-bias refit of a copied head, `init_head: auto` and the
anchors' rows use it). A scratch run's element references are not fitted this way
(`lamm.data.referencing`: least squares), nor is the composition baseline: absolute atomic
energies differ by eV between elements, and on a handful of structures leave-one-out can favor
pulling them together.

For structures i with c_iZ atoms of element Z (n_i in all) and values y_i (eV):

    x_Z = a + d_Z
    (a, d) = argmin sum_i (y_i - n_i a - sum_Z c_iZ d_Z)^2 + lam sum_Z d_Z^2

The per-atom value a is not shrunk; the deviations d are, by lam (atoms^2). lam = 0 is plain
least squares (minimum norm). The strength is the one of RIDGE_STRENGTHS with the lowest exact
leave-one-out error, mean absolute per atom: for a linear smoother with leverages h_ii the
left-out residual is e_i / (1 - h_ii), so no refit is needed. Where the structures pin every
element down, that is lam = 0 or close to it; where they do not (as many elements as
structures), least squares interpolates the noise into the per-element values and the
leave-one-out error says so. A strength whose fit passes through a point (h_ii = 1: leave-one-out
undefined) is not chosen; if none is left (a single structure), the strongest is taken.
"""

from __future__ import annotations

import numpy as np

# ridge strengths lam (atoms^2) the leave-one-out choice tries; 0 is plain least squares
RIDGE_STRENGTHS = (0.0, *np.logspace(-3, 6, 28).tolist())
_INTERPOLATING = 1.0 - 1e-6  # a leverage this close to 1: the fit passes through the point


def ridge_per_element(
    counts: np.ndarray, values: np.ndarray, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """(x [p] per element, leverages h_ii [n]) of the fit at `strength`.

    counts: [n, p] atoms of each of p elements (every structure has atoms); values: [n].
    """
    if strength == 0.0:  # plain least squares, minimum norm
        pseudo_inverse = np.linalg.pinv(counts)  # [p, n]
        return pseudo_inverse @ values, np.einsum("ip,pi->i", counts, pseudo_inverse)
    design = np.hstack([counts.sum(axis=1, keepdims=True), counts])  # [n, 1 + p]: n_i, c_iZ
    penalty = np.full(design.shape[1], float(strength))
    penalty[0] = 0.0  # the common per-atom value is not shrunk
    gram = design.T @ design + np.diag(penalty)
    solved = np.linalg.solve(gram, design.T)  # [1 + p, n]
    coefficients = solved @ values
    return coefficients[0] + coefficients[1:], np.einsum("ik,ki->i", design, solved)


def loo_strength(counts: np.ndarray, values: np.ndarray) -> float:
    """The strength of RIDGE_STRENGTHS with the lowest leave-one-out MAE per atom (module
    docstring)."""
    natoms = counts.sum(axis=1)
    best, best_error = RIDGE_STRENGTHS[-1], np.inf
    for strength in RIDGE_STRENGTHS:
        fitted, leverage = ridge_per_element(counts, values, strength)
        if (leverage > _INTERPOLATING).any():
            continue  # leave-one-out is undefined where the fit interpolates
        error = np.mean(np.abs((values - counts @ fitted) / (1.0 - leverage)) / natoms)
        if error < best_error:
            best, best_error = strength, error
    return best
