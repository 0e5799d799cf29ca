"""Build script for wsovvis' optional C extension (everything else is in pyproject.toml).

The YTVIS scorer's run-length loops (``wsovvis/evaluation/_ytvis_rle.c``, ~190 lines of plain C
against the CPython API) are optional: without a compiler the install still succeeds and the
scorer runs the same loops in Python (same numbers, much slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wsovvis.evaluation._ytvis_rle",
            sources=["wsovvis/evaluation/_ytvis_rle.c"],
            extra_compile_args=["-O3", "-std=c99"],
            optional=True,
        )
    ]
)
