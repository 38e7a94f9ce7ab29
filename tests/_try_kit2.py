import time, jax, jax.numpy as jnp
import gradopt
from gradopt.testing import check_transform
from gradopt.testing import _check as K
from tests.registry import BY_NAME
from tests.test_conformance import make_params
for name in ["sgd", "adam", "rmsprop", "clip", "accumulate", "inject_hyperparams"]:
    e = BY_NAME[name]
    for cp, jit in ((False, True), (True, False), (True, True)):
        orig = K._check_complex
        K._check_complex = (lambda *a, jit_=jit, **k: orig(*a, jit=jit_))
        t=time.time()
        check_transform(e.make(), make_params(), pass_params=e.needs_params, extra_args=e.extra_args, complex_params=cp, bfloat16=False, vmap=False, chains=False)
        K._check_complex = orig
        print(name, cp, jit, round(time.time()-t,2))
