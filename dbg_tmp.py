import numpy as np, json, jax, jax.numpy as jnp
import gradopt
from gradopt.compat import keras as kc
A=dict(np.load('tests/fixtures/keras.npz')); P=dict(np.load('tests/fixtures/optimizers.npz'))
names=["dense_kernel","dense_bias","conv_kernel"]
init={n: jnp.asarray(P[f"init_{i}"]) for i,n in enumerate(names)}
for cid, opt in [("keras24", kc.schedule_free_adamw())]:
    params=init; state=opt.init(params)
    for t in range(10):
        g={n: jnp.asarray(P[f"grads_{i}"][t]) for i,n in enumerate(names)}
        u,state=opt.update(g,state,params); params=gradopt.apply_updates(params,u)
        print(cid, t+1, [float(np.max(np.abs(np.asarray(params[n])-A[f"{cid}_{i}"][t]))) for i,n in enumerate(names)])
