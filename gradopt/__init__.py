"""gradopt: JAX optimizers built from pure, composable gradient transformations."""

from gradopt._adaptive import (
    AdadeltaState,
    MaxNormState,
    ScaleByRmsState,
    SumOfSquaresState,
    scale_by_adadelta,
    scale_by_max_norm,
    scale_by_rms,
    scale_by_sum_of_squares,
)
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
from gradopt._moments import (
    BiasCorrectionState,
    EmaState,
    NesterovEmaState,
    bias_correction,
    ema,
    ema_of_squares,
    scale_by_nesterov_ema,
)
from gradopt._momentum import HeavyBallState, TraceState, heavy_ball, lookahead_params, trace
from gradopt._scale import ScaleByScheduleState, scale, scale_by_learning_rate
from gradopt._weight_decay import add_decayed_weights

__version__ = "0.1.0"

__all__ = [
    "AdadeltaState",
    "BiasCorrectionState",
    "Bound",
    "EarlyStopping",
    "EmaState",
    "EmptyState",
    "GradientTransformation",
    "HeavyBallState",
    "MaxNormState",
    "NesterovEmaState",
    "ScaleByRmsState",
    "ScaleByScheduleState",
    "SumOfSquaresState",
    "TraceState",
    "add_decayed_weights",
    "apply_updates",
    "bias_correction",
    "chain",
    "ema",
    "ema_of_squares",
    "heavy_ball",
    "identity",
    "lookahead_params",
    "named_chain",
    "scale",
    "scale_by_adadelta",
    "scale_by_learning_rate",
    "scale_by_max_norm",
    "scale_by_nesterov_ema",
    "scale_by_rms",
    "scale_by_sum_of_squares",
    "trace",
]
