"""The four 3D attention blocks (NL, GC, SE, CGNL) and their name registry."""
from videoattn.blocks.cgnl3d import CGNL3d
from videoattn.blocks.global_context3d import GlobalContext3d
from videoattn.blocks.nonlocal3d import NonLocal3d
from videoattn.blocks.registry import BLOCKS, list_blocks, make_block
from videoattn.blocks.squeeze_excite3d import SqueezeExcite3d

__all__ = [
    "BLOCKS",
    "CGNL3d",
    "GlobalContext3d",
    "NonLocal3d",
    "SqueezeExcite3d",
    "list_blocks",
    "make_block",
]
