"""Sparse Deep Predictive Coding (SDPC): hierarchical convolutional sparse coding with feedback.

Layer i has a convolutional dictionary D_i. Its codes gamma_i >= 0 explain the layer below,
gamma_{i-1}, as D_i^T gamma_i (gamma_0 is the image), and inference minimises the energy

    E = sum_i k_fb^(i-1) * (1/2 ||gamma_{i-1} - D_i^T gamma_i||^2 + lambda_i ||gamma_i||_1).

With k_fb = 0 the layers are independent non-negative Lasso problems solved bottom-up; with
k_fb > 0 each layer is also pulled towards the prediction of the layer above (top-down feedback).
Model from Boutin et al., "Sparse Deep Predictive Coding captures contour integration
capabilities of the early visual system", PLOS Computational Biology, 2021.
"""
