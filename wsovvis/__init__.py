"""wsovvis: weakly-supervised open-vocabulary video instance segmentation on detectron2."""
__version__ = "0.1.0"

import warnings as _warnings

# detectron2 v0.6 and fvcore decorate a few helpers with torch.jit.script at import time; torch
# >= 2.10 warns about every one of them. The warning concerns those libraries, not wsovvis users.
_warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
