"""Run behaviour as Lightning callbacks: precise BN, backbone freezing, the non-finite-loss stop,
prediction and feature writing, the report of unreadable videos, and the inserted blocks'
training dynamics (BlockDynamics). ``VideoClassifier`` turns
the ones its options ask for on (``configure_callbacks``); any may also be listed in
``trainer.callbacks`` of a config.
"""
from videoattn.callbacks.block_dynamics import BlockDynamics
from videoattn.callbacks.features import FeatureWriter
from videoattn.callbacks.freeze import FreezeBackbone
from videoattn.callbacks.nonfinite import NonFiniteLossError, StopOnNonFiniteLoss
from videoattn.callbacks.precise_bn import PreciseBN
from videoattn.callbacks.predictions import PredictionsCSV
from videoattn.callbacks.video_report import VideoReport

__all__ = ["BlockDynamics", "FeatureWriter", "FreezeBackbone", "NonFiniteLossError", "PreciseBN", "PredictionsCSV", "StopOnNonFiniteLoss", "VideoReport"]
