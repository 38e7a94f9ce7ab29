import time, jax, jax.numpy as jnp
import gradopt
from gradopt.testing import check_transform, check_refuses_complex
from tests.registry import REGISTRY
from tests.test_conformance import make_params
t0=time.time()
for e in REGISTRY:
    t=time.time()
    try:
        if e.supports_complex:
            check_transform(e.make(), make_params(), pass_params=e.needs_params, extra_args=e.extra_args, complex_params=True, complex_laws=not e.stochastic, bfloat16=False, vmap=False, chains=False)
        elif e.supports_complex is False:
            check_refuses_complex(e.make(), make_params(), name=e.name.split("-")[0])
        print("ok", e.name, round(time.time()-t,2))
    except Exception as ex:
        print("FAIL", e.name, type(ex).__name__, str(ex)[:600])
print(time.time()-t0)
