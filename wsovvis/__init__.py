"""wsovvis: weakly-supervised open-vocabulary video instance segmentation on detectron2."""
__version__ = "0.1.0"
