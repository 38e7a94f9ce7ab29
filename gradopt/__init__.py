"""gradopt: JAX optimizers built from pure, composable gradient transformations."""

from gradopt import data, schedules
from gradopt.core._base import Bound, EmptyState, GradientTransformation, apply_updates
from gradopt.core._chain import branch, chain, divide, identity, named_chain, quotient
from gradopt.optimizers._adafactor import adafactor
from gradopt.optimizers._adam import adam, adamax, adamw, amsgrad, nadam
from gradopt.optimizers._adam_variants import (
    adabelief,
    adamaxw,
    adan,
    ademamix,
    adopt,
    nadamw,
    radam,
    yogi,
)
from gradopt.optimizers._dadapt import DAdaptAdamWState, ProdigyState, dadapt_adamw, prodigy
from gradopt.optimizers._layerwise import fromage, lamb, lars, novograd
from gradopt.optimizers._lookahead import LookaheadState, lookahead, lookahead_slow_params
from gradopt.optimizers._muon import muon
from gradopt.optimizers._polyak import polyak_sgd
from gradopt.optimizers._sam import SAMState, sam
from gradopt.optimizers._schedule_free import schedule_free_adamw, schedule_free_sgd
from gradopt.optimizers._sgd import adadelta, adagrad, rmsprop, sgd
from gradopt.optimizers._sign import lion, sign_sgd, signum
from gradopt.optimizers._sm3 import sm3
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
from gradopt.transforms._ascent import normalize_by_global_norm, sam_ascent
from gradopt.transforms._averaging import (
    AverageParametersState,
    average_parameters,
    averaged_params,
)
from gradopt.transforms._cautious import CautiousState, cautious
from gradopt.transforms._clipping import clip, clip_by_global_norm, clip_by_norm, global_norm
from gradopt.transforms._factored import (
    FactoredRmsState,
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)
from gradopt.transforms._guards import (
    NonFiniteError,
    SkipNonfiniteState,
    TerminateOnNaN,
    all_finite,
    check_skips,
    skip_nonfinite,
)
from gradopt.transforms._inject import InjectHyperparamsState, inject_hyperparams, set_hyperparams
from gradopt.transforms._layerwise import (
    LayerwiseRmsState,
    rescale_params,
    scale_by_layerwise_rms,
    scale_by_trust_ratio,
)
from gradopt.transforms._loss_scale import LossScaleState, loss_scaling, scale_loss
from gradopt.transforms._mixed_moments import (
    AdanState,
    AdemamixState,
    AdoptState,
    quarter_power,
    scale_by_adan,
    scale_by_ademamix,
    scale_by_adopt,
)
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
from gradopt.transforms._orthogonalize import newton_schulz, orthogonalize, scale_by_shape
from gradopt.transforms._packed import PackedState, packed
from gradopt.transforms._packed_params import pack_params
from gradopt.transforms._partition import (
    MaskedNode,
    MaskedState,
    PartitionState,
    freeze,
    masked,
    partition,
    set_to_zero,
)
from gradopt.transforms._plateau import ReduceOnPlateauState, reduce_on_plateau
from gradopt.transforms._polyak import scale_by_polyak
from gradopt.transforms._real_only import real_only
from gradopt.transforms._rprop import RpropState, scale_by_rprop
from gradopt.transforms._scale import ScaleByScheduleState, scale, scale_by_learning_rate
from gradopt.transforms._schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_eval_params,
)
from gradopt.transforms._second_moments import (
    BeliefState,
    RectifiedState,
    rectified_root_mean_square,
    scale_by_belief,
    scale_by_yogi,
)
from gradopt.transforms._sign import LionState, scale_by_lion, scale_by_sign
from gradopt.transforms._sm3 import ScaleBySM3State, scale_by_sm3
from gradopt.transforms._weight_decay import add_decayed_weights

__version__ = "0.1.0"

__all__ = [
    "scale_by_sm3",
    "ScaleBySM3State",
    "sm3",
    "sam_ascent",
    "normalize_by_global_norm",
    "sam",
    "SAMState",
    "prodigy",
    "dadapt_adamw",
    "ProdigyState",
    "DAdaptAdamWState",
    "lookahead_slow_params",
    "lookahead",
    "LookaheadState",
    "schedule_free_eval_params",
    "schedule_free",
    "ScheduleFreeState",
    "schedule_free_sgd",
    "schedule_free_adamw",
    "scale_by_param_block_rms",
    "scale_by_factored_rms",
    "clip_by_block_rms",
    "FactoredRmsState",
    "adafactor",
    "partition",
    "scale_by_shape",
    "orthogonalize",
    "newton_schulz",
    "muon",
    "AccumulateState",
    "AdadeltaState",
    "AdanState",
    "AddNoiseState",
    "AverageParametersState",
    "AdemamixState",
    "AdoptState",
    "BeliefState",
    "BiasCorrectionState",
    "Bound",
    "CautiousState",
    "EarlyStopping",
    "EmaState",
    "EmptyState",
    "GradientTransformation",
    "HeavyBallState",
    "InjectHyperparamsState",
    "LossScaleState",
    "MaskedNode",
    "MaskedState",
    "LayerwiseRmsState",
    "LionState",
    "MaxNormState",
    "NesterovEmaState",
    "NonFiniteError",
    "PackedState",
    "PartitionState",
    "RectifiedState",
    "ReduceOnPlateauState",
    "RpropState",
    "ScaleByRmsState",
    "ScaleByScheduleState",
    "SkipNonfiniteState",
    "SumOfSquaresState",
    "TerminateOnNaN",
    "TraceState",
    "accumulate",
    "adabelief",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "add_decayed_weights",
    "add_gradient_noise",
    "ademamix",
    "adopt",
    "all_finite",
    "amsgrad",
    "apply_updates",
    "average_parameters",
    "averaged_params",
    "bias_correction",
    "branch",
    "cautious",
    "chain",
    "check_skips",
    "clip",
    "clip_by_global_norm",
    "clip_by_norm",
    "data",
    "divide",
    "ema",
    "ema_of_squares",
    "freeze",
    "fromage",
    "global_norm",
    "heavy_ball",
    "identity",
    "infinity_norm",
    "inject_hyperparams",
    "lamb",
    "lars",
    "lion",
    "lookahead_params",
    "loss_scaling",
    "masked",
    "nadam",
    "nadamw",
    "named_chain",
    "novograd",
    "pack_params",
    "packed",
    "quotient",
    "real_only",
    "polyak_sgd",
    "quarter_power",
    "radam",
    "rectified_root_mean_square",
    "reduce_on_plateau",
    "rescale_params",
    "rmsprop",
    "root_mean_square",
    "scale",
    "scale_by_adadelta",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_belief",
    "scale_by_layerwise_rms",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_max_norm",
    "scale_by_nesterov_ema",
    "scale_by_polyak",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_sum_of_squares",
    "scale_loss",
    "scale_by_sign",
    "scale_by_trust_ratio",
    "scale_by_yogi",
    "schedules",
    "set_hyperparams",
    "set_to_zero",
    "sgd",
    "sign_sgd",
    "signum",
    "skip_nonfinite",
    "trace",
    "yogi",
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
