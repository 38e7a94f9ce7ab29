"""Early stopping: a small host-side object with the semantics of Keras 3's EarlyStopping."""

from __future__ import annotations

from typing import Any

from gradopt.core._checks import check_choice, check_flag, check_scalar

_WHERE = "gradopt.EarlyStopping"


class EarlyStopping:
    """Stop training when a monitored value has stopped improving.

    Call :meth:`update` once per epoch with the monitored value (and, with
    ``restore_best_weights=True``, the current parameters); it returns True
    when training should stop. The rule, epoch by epoch (``e`` counts the calls
    from 0, ``d = min_delta`` taken as ``|min_delta|``)::

        if e < start_from_epoch:             ignore the value
        wait += 1
        improved = best is None or value + d < best        (mode "min")
                   best is None or value - d > best        (mode "max")
        if improved:
            best, best_epoch = value, e
            if baseline is None or value beats baseline by d:  wait = 0
        elif wait >= patience and e > 0:
            stop (stopped_epoch = e)

    This is, line for line, ``keras.callbacks.EarlyStopping`` of Keras 3,
    checked against its recorded behaviour (``tests/fixtures/early_stopping.json``).
    Consequences worth knowing. An improving epoch never stops training. With
    a ``baseline``, epochs that improve on the best so far but not on the
    baseline do not reset the wait, so once ``patience`` monitored epochs have
    gone by without beating the baseline, the first epoch that does not improve
    stops training. A NaN value is never an improvement, but a NaN *first*
    value becomes ``best`` and nothing compares better than NaN afterwards
    (guard against NaN losses with :func:`gradopt.all_finite` or
    :class:`gradopt.TerminateOnNaN`). ``update`` keeps counting after it has
    returned True, as Keras would if training went on.

    Args:
      monitor: the name of the monitored quantity, used for ``mode="auto"``
        and in messages. Defaults to ``"val_loss"``.
      patience: number of epochs without improvement after which to stop.
      min_delta: the smallest change that counts as an improvement (its
        absolute value is used, as in Keras).
      mode: ``"min"``, ``"max"`` or ``"auto"`` (``"min"`` when ``monitor``
        without a ``val_`` prefix is ``"loss"``; any other name needs an
        explicit mode).
      baseline: a value the monitored quantity must beat for the wait to reset.
      restore_best_weights: keep a reference to the parameters given with the
        best value (``best_params``); the caller restores them when it stops.
        As in Keras, until an epoch has been monitored the first monitored
        epoch's parameters are the best ones.
      start_from_epoch: number of initial epochs during which values are ignored.

    Attributes:
      best: the best value seen so far (None before the first monitored epoch).
      best_epoch: the epoch (0-based) of ``best``.
      best_params: the parameters given at ``best_epoch`` (with
        ``restore_best_weights=True``), else None.
      stopped_epoch: the epoch at which :meth:`update` last returned True, 0 if
        it has not (as in Keras).
      wait: epochs counted since the wait was last reset.
      epoch: the number of calls to :meth:`update` so far.

    Example:
      >>> import gradopt
      >>> stopper = gradopt.EarlyStopping(patience=2, restore_best_weights=True)
      >>> for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7, 0.4]):
      ...     params = {"epoch": epoch}  # the parameters after this epoch
      ...     if stopper.update(loss, params):
      ...         params = stopper.best_params
      ...         break
      >>> epoch, params
      (3, {'epoch': 1})

    References:
      Prechelt, "Early Stopping - But When?", in Neural Networks: Tricks of the
      Trade, 1998. Keras 3, ``keras.callbacks.EarlyStopping``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ):
        if not isinstance(monitor, str):
            raise TypeError(f"{_WHERE}: monitor must be a string, got {monitor!r}.")
        _check_count("patience", patience)
        _check_count("start_from_epoch", start_from_epoch)
        check_scalar(_WHERE, "min_delta", min_delta)
        check_choice(_WHERE, "mode", mode, ("auto", "min", "max"))
        if baseline is not None:
            check_scalar(_WHERE, "baseline", baseline)
        check_flag(_WHERE, "restore_best_weights", restore_best_weights)
        if mode == "auto":
            if monitor.removeprefix("val_") != "loss":
                raise ValueError(
                    f"{_WHERE}: mode='auto' cannot tell whether monitor={monitor!r} should be "
                    "minimised or maximised (only 'loss' and 'val_loss' are known). Pass "
                    "mode='min' or mode='max'."
                )
            mode = "min"
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.mode = mode
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far (Keras' ``on_train_begin``)."""
        self.epoch = 0
        self.wait = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.best_params: Any = None
        self.stopped_epoch = 0
        self.stop_training = False

    def _improves(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def update(self, value, params: Any = None) -> bool:
        """Record one epoch's monitored value; return True if training should stop.

        Args:
          value: the monitored value (a Python number or a scalar array; it is
            brought to the host with ``float``).
          params: the current parameters, kept as ``best_params`` when they are
            the best so far and ``restore_best_weights=True``; ignored otherwise.

        Returns:
          True from the epoch at which patience runs out (and on any later call
          that also finds no improvement), else False.
        """
        epoch = self.epoch
        self.epoch += 1
        value = float(value)
        if epoch < self.start_from_epoch:
            return False
        if self.restore_best_weights and self.best_params is None:
            self.best_params = params
            self.best_epoch = epoch
        self.wait += 1
        if self._improves(value, self.best):
            self.best = value
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_params = params
            if self.baseline is None or self._improves(value, self.baseline):
                self.wait = 0
            return False
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.stop_training = True
            return True
        return False

    def __repr__(self) -> str:
        best = "None" if self.best is None else f"{self.best:g}"
        return (
            f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, "
            f"patience={self.patience}, epoch={self.epoch}, best={best}, "
            f"best_epoch={self.best_epoch}, wait={self.wait})"
        )


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{_WHERE}: {name} must be a non-negative integer, got {value!r}.")
