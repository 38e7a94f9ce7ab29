"""gradopt: JAX optimizers built from pure, composable gradient transformations."""

from gradopt._base import (
    Bound,
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
    named_chain,
)
from gradopt._early_stopping import EarlyStopping
from gradopt._scale import ScaleByScheduleState, scale, scale_by_learning_rate

__version__ = "0.1.0"

__all__ = [
    "Bound",
    "EarlyStopping",
    "EmptyState",
    "GradientTransformation",
    "ScaleByScheduleState",
    "apply_updates",
    "chain",
    "identity",
    "named_chain",
    "scale",
    "scale_by_learning_rate",
]
