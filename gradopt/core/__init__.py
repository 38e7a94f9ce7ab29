"""The protocol and its machinery: the lowest layer, imports JAX only.

``_base`` (the ``GradientTransformation`` protocol, ``apply_updates``),
``_chain`` (``chain``, ``branch``, ``divide``), ``_elementwise`` (the fused
one-pass-per-leaf stages), ``_numerics`` (dtypes, counters, saturation) and
``_checks`` (argument validation). The public names are exported by
:mod:`gradopt`; nothing here is imported from a higher layer.
"""
