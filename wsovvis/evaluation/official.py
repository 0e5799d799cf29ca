"""Load the official youtubevos/cocoapi evaluator (``ytvos.py`` / ``ytvoseval.py``) for parity runs.

The official files (https://github.com/youtubevos/cocoapi, ``PythonAPI/pycocotools``) do not run on
a current stack as they are. :func:`load_official` reads the user's unmodified copy and applies, in
memory, only the non-logic fixes every VIS framework applies to its vendored copy:

- ``from . import mask`` -> ``from pycocotools import mask`` (the PyPI pycocotools C extension);
- the unused ``matplotlib`` imports of ``ytvos.py`` are dropped;
- ``np.float`` -> ``float`` (removed in NumPy 1.24);
- ``int(...)`` around the ``np.linspace`` sample counts (float counts are rejected);
- the Python 2 name ``unicode`` -> ``str`` (``loadRes`` of a list).

Nothing is copied into this project; the benchmark and the parity test use it when given
``--official DIR`` / ``WSOVVIS_OFFICIAL_YTVIS=DIR``.
"""

import os
import re
import types
from typing import Tuple

__all__ = ["load_official"]

_HOW_TO_GET = (
    "point it at youtubevos/cocoapi's PythonAPI/pycocotools directory "
    "(git clone https://github.com/youtubevos/cocoapi; DIR may also be the clone or its PythonAPI)"
)

# (pattern, replacement, applies to) - each fix is a no-op on files that already have it
_FIXES = [
    (r"^from \. import mask as maskUtils$", "from pycocotools import mask as maskUtils", "both"),
    (r"^(import matplotlib.*|from matplotlib.*)$", "", "ytvos"),
    (r"\bnp\.float\b(?!_|\d)", "float", "both"),
    (r"np\.linspace\(([^,]+), ([^,]+), (np\.round\(.*\) \+ 1), endpoint=True\)",
     r"np.linspace(\1, \2, int(\3), endpoint=True)", "ytvoseval"),
    (r"\bunicode\b", "str", "ytvos"),
]


def _find_dir(directory: str) -> str:
    for sub in ("", "pycocotools", os.path.join("PythonAPI", "pycocotools")):
        d = os.path.join(directory, sub)
        if all(os.path.isfile(os.path.join(d, f)) for f in ("ytvos.py", "ytvoseval.py")):
            return d
    raise ValueError(f"official evaluator directory {directory!r} has no ytvos.py/ytvoseval.py; "
                     + _HOW_TO_GET)


def _module(path: str, name: str) -> types.ModuleType:
    with open(path, encoding="utf-8") as f:
        source = f.read()
    for pattern, replacement, where in _FIXES:
        if where in ("both", name):
            source = re.sub(pattern, replacement, source, flags=re.MULTILINE)
    module = types.ModuleType(f"_official_{name}")
    module.__file__ = path
    try:
        exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - the user's own file
    except Exception as e:
        raise ValueError(
            f"cannot load the official {path} ({type(e).__name__}: {e}); it must be the "
            f"unmodified youtubevos/cocoapi file or a copy with the same edits; " + _HOW_TO_GET
        ) from e
    return module


def load_official(directory: str) -> Tuple[type, type]:
    """The official ``YTVOS`` and ``YTVOSeval`` classes, loaded from ``directory``.

    Args:
        directory: youtubevos/cocoapi's ``PythonAPI/pycocotools`` (or the clone, or
            ``PythonAPI``), holding the unmodified ``ytvos.py`` and ``ytvoseval.py``.

    Returns:
        ``(YTVOS, YTVOSeval)``.

    Raises:
        ValueError: the files are missing or do not load; the message says what to do.
    """
    d = _find_dir(directory)
    ytvos = _module(os.path.join(d, "ytvos.py"), "ytvos")
    ytvoseval = _module(os.path.join(d, "ytvoseval.py"), "ytvoseval")
    for cls, mod in (("YTVOS", ytvos), ("YTVOSeval", ytvoseval)):
        if not hasattr(mod, cls):
            raise ValueError(f"{mod.__file__} defines no {cls}; " + _HOW_TO_GET)
    return ytvos.YTVOS, ytvoseval.YTVOSeval
