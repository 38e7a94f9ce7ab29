"""Learning-rate schedules: pure functions ``step -> value``.

A schedule is a callable object that compares by value (a :class:`gradopt.Bound`
of a module-level function), so two schedules built from equal arguments are
equal and an optimizer holding one does not recompile. Pass it as the
``learning_rate`` of any optimizer; :func:`gradopt.scale_by_learning_rate`
evaluates it at the number of previous updates (0 for the first update).

Schedules accept a Python int, an int32 array or a traced step, and evaluate
elementwise on an array of steps. Their arguments may be traced scalars too, so
a sweep over, say, the peak value can be vmapped::

    jax.vmap(lambda peak: schedules.cosine(peak, 1000)(step))(peaks)

Concrete arguments are validated at construction (a ValueError or TypeError
naming the argument, the value, the allowed range and the fix). Values are
float32 (float64 with ``jax_enable_x64``).

Each docstring gives the formula and the PyTorch (``torch.optim.lr_scheduler``)
or Keras (``keras.optimizers.schedules``) class it matches; the tests compare
with values recorded from those classes.
"""

from gradopt.schedules._combine import from_callable, join, product
from gradopt.schedules._cyclic import cosine, cosine_with_restarts, onecycle, warmup
from gradopt.schedules._decay import (
    constant,
    exponential,
    inverse_time,
    linear,
    multistep,
    piecewise_constant,
    polynomial,
    step,
)

__all__ = [
    "constant",
    "cosine",
    "cosine_with_restarts",
    "exponential",
    "from_callable",
    "inverse_time",
    "join",
    "linear",
    "multistep",
    "onecycle",
    "piecewise_constant",
    "polynomial",
    "product",
    "step",
    "warmup",
]
