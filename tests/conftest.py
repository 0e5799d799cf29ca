"""Shared pytest configuration: keep torch on one thread so the suite behaves on small CI machines."""
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore", message=".*pkg_resources.*")

import torch  # noqa: E402

torch.set_num_threads(1)


# --- data layer (wsovvis.data): a tiny synthetic dataset shared by every part's tests ---------
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_synthetic_dataset(tmp_path_factory):
    """Paths dict of a freshly generated "tiny" synthetic dataset (seed 0), shared by the session.

    Keys: ``root``, ``preset``, ``seed``, ``categories``, ``summary`` and ``splits`` ->
    {"train", "val"} -> {"img_root", "gt_json", "pseudo_mask_root"}. Treat it as read-only.
    """
    from wsovvis.data.synthetic import generate_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "tiny"
    return generate_synthetic_dataset(str(root), preset="tiny", seed=0)
