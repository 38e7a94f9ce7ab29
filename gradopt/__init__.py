"""gradopt: JAX optimizers built from pure, composable gradient transformations."""

from gradopt import data, schedules
from gradopt.core._base import Bound, EmptyState, GradientTransformation, apply_updates
from gradopt.core._chain import branch, chain, divide, identity, named_chain, quotient
from gradopt.optimizers._adam import adam, adamax, adamw, amsgrad, nadam
from gradopt.optimizers._sgd import adadelta, adagrad, rmsprop, sgd
from gradopt.training._early_stopping import EarlyStopping
from gradopt.transforms._accumulate import AccumulateState, accumulate
from gradopt.transforms._adaptive import (
    AdadeltaState,
    MaxNormState,
    ScaleByRmsState,
    SumOfSquaresState,
    infinity_norm,
    root_mean_square,
    scale_by_adadelta,
    scale_by_max_norm,
    scale_by_rms,
    scale_by_sum_of_squares,
)
from gradopt.transforms._clipping import clip, clip_by_global_norm, clip_by_norm, global_norm
from gradopt.transforms._guards import (
    NonFiniteError,
    SkipNonfiniteState,
    TerminateOnNaN,
    all_finite,
    check_skips,
    skip_nonfinite,
)
from gradopt.transforms._inject import InjectHyperparamsState, inject_hyperparams, set_hyperparams
from gradopt.transforms._moments import (
    BiasCorrectionState,
    EmaState,
    NesterovEmaState,
    bias_correction,
    ema,
    ema_of_squares,
    scale_by_nesterov_ema,
)
from gradopt.transforms._momentum import (
    HeavyBallState,
    TraceState,
    heavy_ball,
    lookahead_params,
    trace,
)
from gradopt.transforms._noise import AddNoiseState, add_gradient_noise
from gradopt.transforms._packed import PackedState, packed
from gradopt.transforms._packed_params import pack_params
from gradopt.transforms._plateau import ReduceOnPlateauState, reduce_on_plateau
from gradopt.transforms._scale import ScaleByScheduleState, scale, scale_by_learning_rate
from gradopt.transforms._weight_decay import add_decayed_weights

__version__ = "0.1.0"

__all__ = [
    "AccumulateState",
    "AdadeltaState",
    "AddNoiseState",
    "BiasCorrectionState",
    "Bound",
    "EarlyStopping",
    "EmaState",
    "EmptyState",
    "GradientTransformation",
    "HeavyBallState",
    "InjectHyperparamsState",
    "MaxNormState",
    "NesterovEmaState",
    "NonFiniteError",
    "PackedState",
    "ReduceOnPlateauState",
    "ScaleByRmsState",
    "ScaleByScheduleState",
    "SkipNonfiniteState",
    "SumOfSquaresState",
    "TerminateOnNaN",
    "TraceState",
    "accumulate",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_decayed_weights",
    "add_gradient_noise",
    "all_finite",
    "amsgrad",
    "apply_updates",
    "bias_correction",
    "branch",
    "chain",
    "check_skips",
    "clip",
    "clip_by_global_norm",
    "clip_by_norm",
    "data",
    "divide",
    "ema",
    "ema_of_squares",
    "global_norm",
    "heavy_ball",
    "identity",
    "infinity_norm",
    "inject_hyperparams",
    "lookahead_params",
    "nadam",
    "named_chain",
    "pack_params",
    "packed",
    "quotient",
    "reduce_on_plateau",
    "rmsprop",
    "root_mean_square",
    "scale",
    "scale_by_adadelta",
    "scale_by_learning_rate",
    "scale_by_max_norm",
    "scale_by_nesterov_ema",
    "scale_by_rms",
    "scale_by_sum_of_squares",
    "schedules",
    "set_hyperparams",
    "sgd",
    "skip_nonfinite",
    "trace",
]

# Second-order methods and matrix preconditioners (issue 18)
from gradopt.optimizers._lbfgs import lbfgs  # noqa: E402
from gradopt.optimizers._newton import (  # noqa: E402
    gauss_newton,
    hessian_free,
    levenberg_marquardt,
    newton,
)
from gradopt.optimizers._shampoo import shampoo, soap  # noqa: E402
from gradopt.optimizers._sophia import sophia  # noqa: E402
from gradopt.transforms._curvature import NewtonState, scale_by_newton  # noqa: E402
from gradopt.transforms._lbfgs import ScaleByLbfgsState, scale_by_lbfgs  # noqa: E402
from gradopt.transforms._linesearch import (  # noqa: E402
    ZoomLinesearchInfo,
    ZoomLinesearchState,
    scale_by_zoom_linesearch,
)
from gradopt.transforms._matrix_free import (  # noqa: E402
    CurvatureSolveState,
    scale_by_gauss_newton,
    scale_by_hessian_free,
)
from gradopt.transforms._shampoo import ShampooBlock, ShampooState, scale_by_shampoo  # noqa: E402
from gradopt.transforms._soap import SoapState, scale_by_soap  # noqa: E402
from gradopt.transforms._sophia import SophiaState, scale_by_sophia  # noqa: E402

__all__ += [
    "CurvatureSolveState",
    "ShampooBlock",
    "ShampooState",
    "SoapState",
    "SophiaState",
    "scale_by_shampoo",
    "scale_by_soap",
    "scale_by_sophia",
    "shampoo",
    "soap",
    "sophia",
    "NewtonState",
    "ScaleByLbfgsState",
    "ZoomLinesearchInfo",
    "ZoomLinesearchState",
    "gauss_newton",
    "hessian_free",
    "lbfgs",
    "levenberg_marquardt",
    "newton",
    "scale_by_gauss_newton",
    "scale_by_hessian_free",
    "scale_by_lbfgs",
    "scale_by_newton",
    "scale_by_zoom_linesearch",
]

# Imported last: the compat modules are built from the public names above.
from gradopt import compat as compat  # noqa: E402  (explicit re-export)
