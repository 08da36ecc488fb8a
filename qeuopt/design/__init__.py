"""Designs: published orthogonal arrays, Taguchi analysis and Optuna search."""

from qeuopt.design.arrays import list_arrays, orthogonal_array

__all__ = ["list_arrays", "orthogonal_array"]
