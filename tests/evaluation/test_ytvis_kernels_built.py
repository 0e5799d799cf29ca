"""The evaluator's compiled kernels are built wherever a C compiler and the Python headers exist.

The extension is optional (``setup.py``: ``optional=True``), so a failed build would otherwise go
unnoticed: every packed-path test would skip and the scorer would silently run ~6x slower.
"""

import os
import shutil
import sysconfig

import pytest

from wsovvis.evaluation import ytvis_packed


def _compiler_and_headers() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    return shutil.which(cc) is not None and os.path.exists(header)


@pytest.mark.skipif(not _compiler_and_headers(), reason="no C compiler or Python headers here")
def test_kernels_are_built_where_they_can_be():
    assert ytvis_packed._kernels is not None, (
        "wsovvis.evaluation._ytvis_kernels is missing although a compiler and Python.h exist: "
        "rerun `make env` (pip install -e .) and read its build log"
    )
    for name in ("pack_json", "video_iou", "accumulate"):
        assert callable(getattr(ytvis_packed._kernels, name))
