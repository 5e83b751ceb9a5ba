"""The numbers the paper reports, transcribed (CIFAR-10, beta = lambda = 1 unless varied).

Values are ``(mean, standard error)``; ``COLLAPSE`` marks the paper's "Model
Collapse" cells. Units as in the paper (classification in %, MSE and variance
in the paper's unstated units: its MSE matches the kit's per-image sum of
squared errors on [0, 1]; its variance does not match any per-image sum, see
``lsr_utils.measurement.report``).
"""
from __future__ import annotations

COLLAPSE = "model collapse"
SWEEP_VALUES = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 15.0, 20.0)

# Appendix C.1, Table 1: columns beta = SWEEP_VALUES (lambda = 1).
TABLE1 = {
    "mse_vae": [(54.56, 0.30), (54.07, 0.29), (53.80, 0.29), (55.9, 0.3), (84.64, 0.42), (111.49, 0.53),
                (132.56, 0.61), (150.40, 0.66)],
    "mse_lsr_gan": [COLLAPSE, (153.09, 0.66), (139.75, 0.63), (163.06, 0.73), (177.22, 0.86), (229.53, 1.07),
                    (265.74, 1.19), (302.17, 1.47)],
    "variance_vae": [(3.03e-5, 2.44e-7), (2.7e-3, 1.89e-5), (0.05, 3e-4), (0.17, 0.01), (4.94, 0.03),
                     (21.02, 0.13), (50.80, 0.34), (89.25, 0.61)],
    "variance_lsr_gan": [COLLAPSE, (0.04, 4.3e-3), (0.23, 2.8e-3), (1.67, 0.02), (416.83, 5.10), (2667.45, 37.73),
                         (4920.23, 47.43), (4234.5, 58.73)],
    "absolute_vae": [(44.08, 0.22), (45.66, 0.21), (45.01, 0.17), (42.56, 0.13), (28.17, 0.13), (21.26, 0.20),
                     (18.89, 0.18), (17.70, 0.23)],
    "absolute_lsr_gan": [COLLAPSE, (43.29, 0.18), (45.06, 0.23), (47.19, 0.13), (40.23, 0.18), (32.58, 0.21),
                         (27.93, 0.21), (26.18, 0.17)],
    "relative_vae": [(45.69, 0.21), (44.11, 0.20), (43.38, 0.21), (43.75, 0.25), (28.34, 0.15), (21.59, 0.21),
                     (18.90, 0.18), (16.90, 0.21)],
    "relative_lsr_gan": [COLLAPSE, (45.02, 0.18), (44.71, 0.16), (48.41, 0.25), (43.54, 0.18), (37.90, 0.17),
                         (33.68, 0.20), (31.91, 0.19)],
}

# Appendix C.2, Table 2: columns lambda = SWEEP_VALUES (beta = 1); LSR-GAN rows.
TABLE2 = {
    "mse_lsr_gan": [(285.99, 1.39), (231.34, 1.14), (193.72, 0.90), (163.06, 0.73), (104.15, 0.46), (90.66, 0.43),
                    (86.81, 0.42), (84.69, 0.40)],
    "variance_lsr_gan": [(68.54, 1.17), (15.06, 0.25), (3.96, 0.08), (1.67, 0.02), (0.70, 0.01), (0.54, 0.00),
                         (0.50, 0.00), (0.48, 0.00)],
    "absolute_lsr_gan": [(35.52, 0.23), (45.2, 0.21), (46.96, 0.28), (47.19, 0.13), (47.21, 0.20), (47.45, 0.18),
                         (47.89, 0.21), (48.72, 0.23)],
    "relative_lsr_gan": [(36.37, 0.18), (46.40, 0.20), (48.08, 0.21), (48.41, 0.25), (48.65, 0.15), (48.72, 0.30),
                         (48.79, 0.28), (50.22, 0.21)],
}

# Section 2.2 (beta = lambda = 1). Sharpness: mean ± the paper's spread; FID: single values.
SECTION_2_2 = {
    "sharpness_vae": (0.17, 0.03),
    "sharpness_lsr_gan": (0.28, 0.08),
    "fid_test_vae": (89.8, None),
    "fid_test_lsr_gan": (44.1, None),
    "fid_random_vae": (138.6, None),
    "fid_random_lsr_gan": (47.4, None),
}

# Section 2.3: the classifier's accuracy on raw CIFAR-10 test images.
CLASSIFIER_ACCURACY = 84.0

ROW_LABELS = {
    "mse_vae": "Mean Square Error (VAE)",
    "mse_lsr_gan": "Mean Square Error (LSR-GAN)",
    "variance_vae": "Variance (VAE)",
    "variance_lsr_gan": "Variance (LSR-GAN)",
    "absolute_vae": "Absolute Classification (VAE), %",
    "absolute_lsr_gan": "Absolute Classification (LSR-GAN), %",
    "relative_vae": "Relative Classification (VAE), %",
    "relative_lsr_gan": "Relative Classification (LSR-GAN), %",
    "sharpness_vae": "Sharpness (VAE)",
    "sharpness_lsr_gan": "Sharpness (LSR-GAN)",
    "fid_test_vae": "FID, test-seeded (VAE)",
    "fid_test_lsr_gan": "FID, test-seeded (LSR-GAN)",
    "fid_random_vae": "FID, random-seeded (VAE)",
    "fid_random_lsr_gan": "FID, random-seeded (LSR-GAN)",
}


def paper_value(table: dict, key: str, value: float):
    """The paper's cell for ``key`` at sweep value ``value`` (None if the value is not in the sweep)."""
    for v, cell in zip(SWEEP_VALUES, table.get(key, [])):
        if abs(v - value) < 1e-9:
            return cell
    return None


def _text(cell) -> str:
    if cell == COLLAPSE:
        return COLLAPSE
    m, se = cell
    return f"{m:.4g}" + (f" ± {se:.2g}" if se is not None else "")


def paper_cell(key: str, beta: float, lam: float) -> str | None:
    """The paper's CIFAR-10 value of metric ``key`` at (beta, lambda), as text, where the paper measured it."""
    cells = []
    if abs(lam - 1) < 1e-9:
        cells.append(paper_value(TABLE1, key, beta))
    if abs(beta - 1) < 1e-9:
        cells.append(paper_value(TABLE2, key, lam))
        if abs(lam - 1) < 1e-9:
            cells.append(SECTION_2_2.get(key))
            if key == "classifier_raw_accuracy":
                cells.append((CLASSIFIER_ACCURACY, None))
    cell = next((c for c in cells if c is not None), None)
    return None if cell is None else _text(cell)
