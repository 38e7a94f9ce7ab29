"""Named optimizers, one family per module, each a chain of public primitives.

Imports :mod:`gradopt.core`, :mod:`gradopt.schedules` and
:mod:`gradopt.transforms` only; the public names are exported by :mod:`gradopt`.
"""
