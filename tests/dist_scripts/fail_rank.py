"""Under the launcher: process 1 raises at once, process 0 would sleep for two minutes."""

import os
import time

if os.environ["GRADOPT_PROCESS_ID"] == "1":
    raise RuntimeError("boom in process 1")
print("process 0 sleeping", flush=True)
time.sleep(120)
