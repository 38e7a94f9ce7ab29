"""Shared pieces of :mod:`gradopt.compat.torch`: argument checks in torch.optim's
terms and the ``chain(<maximize>, <coupled weight decay>, *rule)`` assembly."""

from __future__ import annotations

import numpy as np

from gradopt.core._base import GradientTransformation
from gradopt.core._chain import chain
from gradopt.core._checks import check_scalar, concrete_value
from gradopt.transforms._scale import scale
from gradopt.transforms._weight_decay import add_decayed_weights


def _where(name: str) -> str:
    return f"gradopt.compat.torch.{name}"


def _non_negative(where: str, name: str, value) -> None:
    check_scalar(where, name, value, low=0.0, fix=f"torch.optim requires {name} >= 0.")


def _positive(where: str, name: str, value) -> None:
    check_scalar(
        where,
        name,
        value,
        low=0.0,
        low_open=True,
        fix=f"torch.optim accepts {name}=0, but gradopt needs {name} > 0 (a zero denominator "
        "gives inf or NaN updates); use a small value such as 1e-8.",
    )


def _below_one(where: str, name: str, value) -> None:
    check_scalar(
        where,
        name,
        value,
        low=0.0,
        high=1.0,
        high_open=True,
        fix=f"gradopt needs {name} in [0, 1) (at 1 the average never forgets); 0.9 is usual.",
    )


def _check_betas(where: str, betas) -> tuple:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise TypeError(
            f"{where}: betas must be a pair (beta1, beta2) such as (0.9, 0.999), got {betas!r}."
        )
    for i, b in enumerate(betas):
        check_scalar(
            where,
            f"betas[{i}]",
            b,
            low=0.0,
            high=1.0,
            high_open=True,
            fix="Each beta lies in [0, 1), as torch.optim requires.",
        )
    return tuple(betas)


def _is_zero(value) -> bool:
    """True for a concrete zero; a traced value is taken to be non-zero."""
    return concrete_value(value) == 0.0


def _assemble(rule, *, weight_decay, maximize, coupled=True) -> GradientTransformation:
    """``chain(<maximize>, <coupled weight decay>, *rule)``.

    The coupled decay stage is there whatever the value of ``weight_decay``
    (0 changes nothing), so that the state's structure does not depend on it.
    """
    pre = [scale(-1.0)] if maximize else []
    if coupled:
        pre.append(add_decayed_weights(weight_decay))
    return chain(*pre, *rule)


def _decoupled(weight_decay, decoupled: bool, lr) -> list:
    """The decoupled decay stage (``w *= 1 - lr*wd`` before the step), placed before lr.

    torch multiplies by ``1 - lr*wd`` rounded to float32, which shifts the decay
    by up to 6e-8 a step: 1e-5 relative after 200 steps at ``lr*wd = 1e-3``.
    For concrete values the coefficient is adjusted so that ``lr * wd`` equals
    ``1 - float32(1 - lr*wd)`` exactly as torch applies it.
    """
    if not decoupled:
        return []
    if _is_zero(weight_decay):
        return [add_decayed_weights(weight_decay)]
    lr_value, wd_value = concrete_value(lr), concrete_value(weight_decay)
    if lr_value and wd_value is not None and not callable(lr):
        factor = float(np.float32(1.0 - lr_value * wd_value))
        weight_decay = (1.0 - factor) / lr_value
    return [add_decayed_weights(weight_decay)]
