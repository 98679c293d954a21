"""Types shared by the runtime backends and the evaluation protocol (kept here so evaluation imports runtime,
never the reverse)."""
from typing import Callable

import numpy as np

# A model as the protocol sees it: (N, 3, H, W) float32 normalized images -> (N, C, H, W) logits.
Predict = Callable[[np.ndarray], np.ndarray]
