"""Host-side helpers for training loops (early stopping).

Plain Python around the jitted step; imports :mod:`gradopt.core` only. The
public names are exported by :mod:`gradopt`.
"""
