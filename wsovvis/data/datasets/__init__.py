"""Video datasets in the YouTube-VIS / LV-VIS format; builtin splits are registered on import."""
from .ytvis import (
    ensure_ytvis_metadata,
    load_ytvis_categories,
    load_ytvis_json,
    register_ytvis_instances,
    unregister_ytvis_instances,
)
from .builtin import default_datasets_root, register_all_builtin

register_all_builtin()

__all__ = [
    "default_datasets_root",
    "ensure_ytvis_metadata",
    "load_ytvis_categories",
    "load_ytvis_json",
    "register_all_builtin",
    "register_ytvis_instances",
    "unregister_ytvis_instances",
]
