"""Datasets that need no download: scikit-learn's bundled digits, and synthetic two spirals."""
