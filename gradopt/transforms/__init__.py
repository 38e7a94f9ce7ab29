"""Primitives and strategies: the vocabulary optimizers are chained from.

One family per module: moments and bias correction (``_moments``), adaptive
scalings (``_adaptive``), momentum (``_momentum``), step sizes (``_scale``),
weight decay, clipping, gradient noise, non-finite guards, accumulation,
hyperparameter injection, reduce-on-plateau and packing. Imports
:mod:`gradopt.core` and :mod:`gradopt.schedules` only; the public names are
exported by :mod:`gradopt`.
"""
