"""Shared pytest configuration: keep torch on one thread so the suite behaves on small CI machines."""
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore", message=".*pkg_resources.*")

import torch  # noqa: E402

torch.set_num_threads(1)
