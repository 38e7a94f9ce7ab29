"""Argument checks shared by the synchronous algorithms (mesh, axis, transform)."""

from __future__ import annotations

from jax.sharding import Mesh


def check_transform(tx, where: str, name: str = "tx") -> None:
    """TypeError unless ``tx`` has callable ``init`` and ``update`` (gradopt or optax)."""
    if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
            f"{where}: `{name}` is {tx!r} of type {type(tx).__name__}, which is not a gradient "
            "transformation. Pass an object with `init` and `update` methods, such as "
            "gradopt.adam(1e-3) or any optax.GradientTransformation."
        )


def check_mesh_axis(mesh, axis, where: str) -> int:
    """The size of ``mesh``'s axis ``axis``; TypeError/ValueError naming the bad argument."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{where}: `mesh` is {mesh!r} of type {type(mesh).__name__}; pass a "
            "jax.sharding.Mesh, e.g. jax.make_mesh((jax.device_count(),), ('data',))."
        )
    if axis not in mesh.axis_names:
        raise ValueError(
            f"{where}: `axis` is {axis!r}, but the mesh has the axes {list(mesh.axis_names)}. "
            "Pass one of them (or build the mesh with that axis name)."
        )
    return int(mesh.shape[axis])


def check_positive_int(value, name: str, where: str) -> int:
    """ValueError unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: `{name}` must be an integer >= 1, got {value!r}.")
    return value
