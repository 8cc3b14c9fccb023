"""The 3D attention blocks of Non-local's family (NL, GC, SE, CGNL, Local Relation, Relation
module, Transformer encoder) and their name registry."""
from videoattn.blocks.cgnl3d import CGNL3d
from videoattn.blocks.global_context3d import GlobalContext3d
from videoattn.blocks.local_relation3d import LocalRelation3d, LocalRelationBlock3d
from videoattn.blocks.nonlocal3d import NonLocal3d
from videoattn.blocks.registry import BLOCKS, list_blocks, make_block
from videoattn.blocks.relation_module3d import RelationModule3d
from videoattn.blocks.squeeze_excite3d import SqueezeExcite3d
from videoattn.blocks.transformer_encoder3d import TransformerEncoder3d

__all__ = [
    "BLOCKS",
    "CGNL3d",
    "GlobalContext3d",
    "LocalRelation3d",
    "LocalRelationBlock3d",
    "NonLocal3d",
    "RelationModule3d",
    "SqueezeExcite3d",
    "TransformerEncoder3d",
    "list_blocks",
    "make_block",
]
