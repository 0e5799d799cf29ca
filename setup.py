"""Build script for wsovvis' optional C extension (everything else is in pyproject.toml).

The YTVIS scorer's kernels (``wsovvis/evaluation/_ytvis_kernels.c``) are plain C against the
CPython API. The extension is optional: without a compiler the install still succeeds and the
scorer uses its pure numpy/pycocotools path, which gives the same numbers, only slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wsovvis.evaluation._ytvis_kernels",
            sources=["wsovvis/evaluation/_ytvis_kernels.c"],
            depends=["wsovvis/evaluation/_ytvis_iou.h", "wsovvis/evaluation/_ytvis_accumulate.h"],
            # no FMA contraction: the float64 arithmetic must be numpy's, operation by operation
            extra_compile_args=["-O3", "-std=c99", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
