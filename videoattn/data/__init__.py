"""Kinetics-style video data: frame-accurate decoding, annotation formats, clip sampling,
tensor transforms, the dataset, samplers, collation and the Lightning DataModule.
KineticsDataModule is imported on first use, so decoding tools and worker processes do not
pay for importing Lightning.
"""
from typing import Any

from videoattn.data.annotations import VideoRecord, load_annotations, read_class_list, read_predict_source
from videoattn.data.clip import ClipSettings
from videoattn.data.collate import VideoCollate
from videoattn.data.datasets import VideoClipDataset
from videoattn.data.decode import DecodeError, check_video, decode_frames, read_frames
from videoattn.data.samplers import ShardedEvalSampler, train_sampler

__all__ = [
    "ClipSettings",
    "DecodeError",
    "KineticsDataModule",
    "ShardedEvalSampler",
    "VideoClipDataset",
    "VideoCollate",
    "VideoRecord",
    "check_video",
    "decode_frames",
    "load_annotations",
    "read_class_list",
    "read_frames",
    "read_predict_source",
    "train_sampler",
]


def __getattr__(name: str) -> Any:
    if name == "KineticsDataModule":
        from videoattn.data.datamodule import KineticsDataModule

        return KineticsDataModule
    raise AttributeError(f"module 'videoattn.data' has no attribute {name!r}")
