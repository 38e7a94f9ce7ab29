"""Exact conventions of other libraries, as chains of gradopt's primitives.

* :mod:`gradopt.compat.torch`: ``torch.optim``'s optimizers, with its argument
  names and defaults (``lr``, ``betas``, ``eps``, ``weight_decay``, ...).
* :mod:`gradopt.compat.keras`: Keras 3's optimizers (``learning_rate``,
  ``beta_1``, ``epsilon``, ...) and its two wrappers.
* :mod:`gradopt.compat.swa_utils`: ``torch.optim.swa_utils`` (``AveragedModel``,
  ``SWALR``).

Each reproduces the trajectory of the real library in float32 to within float32
rounding; the tests compare against trajectories recorded from torch 2.13.0 and
Keras 3.15.1 (see ``tests/fixtures/README.md``). Neither library is imported.

Example:
  >>> from gradopt.compat import torch as torch_compat
  >>> opt = torch_compat.adam(lr=1e-3, weight_decay=1e-2)
  >>> opt.init({"w": [1.0, 2.0]}) is not None
  True
"""

from gradopt.compat import keras, swa_utils, torch

__all__ = ["keras", "swa_utils", "torch"]
