"""Registry names of the meta-architectures, including the VNext ``"SeqFormer"`` alias."""
import os
import subprocess
import sys

from detectron2.modeling import META_ARCH_REGISTRY

import wsovvis.modeling  # noqa: F401  (registers)
from wsovvis.modeling import WSSeqFormer, WSVidEoMT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_class_names_and_vnext_alias():
    assert META_ARCH_REGISTRY.get("WSVidEoMT") is WSVidEoMT
    assert META_ARCH_REGISTRY.get("WSSeqFormer") is WSSeqFormer
    assert META_ARCH_REGISTRY.get("SeqFormer") is WSSeqFormer


def test_alias_taken_first_keeps_its_owner_and_warns():
    """Import order decides who owns "SeqFormer"; wsovvis says so instead of failing silently."""
    code = (
        "from detectron2.modeling import META_ARCH_REGISTRY\n"
        "class SeqFormer: pass\n"
        "META_ARCH_REGISTRY.register(SeqFormer)\n"
        "import wsovvis.modeling\n"
        "assert META_ARCH_REGISTRY.get('SeqFormer') is SeqFormer\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "META_ARCHITECTURE 'SeqFormer' is __main__.SeqFormer" in out.stderr
