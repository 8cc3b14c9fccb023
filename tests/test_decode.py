"""Tests for videoattn.data.decode and its backends: PyAV and decord against a plain sequential
PyAV decode, on H.264 / MPEG-4 / VP9 files at 25, 29.97, 30 fps, variable frame rate and a long
GOP; VP9 in .webm (Something-Something v2's format) for every backend, checked against the
source frames; the fallback between backends, each imported only when used; every kind of bad
file raising DecodeError naming the file; the same frames from encoded bytes in memory (with
and without a known VideoInfo); decord's console noise kept out of the console; and torchcodec
against PyAV.
"""
from __future__ import annotations

import importlib.util
import io
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import moving_square_frames

from videoattn.data import decode
from videoattn.data.backends import pyav as pyav_backend
from videoattn.data.decode import DecodeError, check_video, decode_frames, probe_num_frames, probe_video, read_frames
from videoattn.video_io import write_video

VFR_PTS = [0, 1, 2, 5, 6, 9, 10, 11, 20, 21] + list(range(22, 62))  # 50 frames, irregular gaps


def sequential_decode(path: Path) -> np.ndarray:
    """Reference: every frame in presentation order, decoded from the start."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


CASES = {
    "h264_25fps": dict(fps=25),
    "h264_29.97fps": dict(fps=29.97),
    "h264_30fps_gop12": dict(fps=30, gop=12),
    "h264_long_gop": dict(fps=30, gop=300),
    "mpeg4": dict(codec="mpeg4", fps=30, gop=12),
    "vp9": dict(codec="libvpx-vp9", fps=30, gop=12),
    "h264_vfr": dict(fps=30, pts=VFR_PTS, time_base=Fraction(1, 60)),
}
INDICES = [45, 3, 3, 17, 0, 49, 25, 26, 12]  # unsorted, repeated, first and last frames


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("case", list(CASES))
def test_frames_match_sequential_decode(make_video, case: str, backend: str) -> None:
    path = make_video(f"{case}.mp4", num_frames=50, **CASES[case])
    reference = sequential_decode(path)
    assert len(reference) == 50
    assert probe_num_frames(path, backend=backend, fallback=False) == 50
    rates = []
    decode_frames(path, lambda n, fps: rates.append(fps) or np.zeros(0, np.int64), backend=backend, fallback=False)
    if "pts" not in CASES[case]:
        assert rates[0] == pytest.approx(float(CASES[case]["fps"]), rel=1e-3)
    frames = read_frames(path, INDICES, backend=backend, fallback=False)
    assert frames.dtype == torch.uint8 and frames.shape == (len(INDICES), 64, 80, 3)
    assert np.array_equal(frames.numpy(), reference[INDICES])


def test_seek_lands_on_the_right_frame_in_a_later_gop(make_video, monkeypatch) -> None:
    """Frames far from the start are reached by one seek to the keyframe before them (no
    decoding from the start); they equal the sequential decode, also on a second read."""
    path = make_video("gop8.mp4", num_frames=60, fps=29.97, gop=8)
    reference = sequential_decode(path)
    seeks: list[int] = []
    original = pyav_backend.PyAVReader._get_seek

    def spy(self, indices, seek_pts):
        seeks.append(seek_pts)
        return original(self, indices, seek_pts)

    monkeypatch.setattr(pyav_backend.PyAVReader, "_get_seek", spy)
    monkeypatch.setattr(pyav_backend.PyAVReader, "_get_sequential", None)  # must not be needed
    for indices in ([41, 42, 43], [59], [33, 8, 57], [41, 42, 43]):
        assert np.array_equal(read_frames(path, indices, fallback=False).numpy(), reference[indices])
    assert len(seeks) == 4  # one pass per read, never a second attempt from the start


@pytest.mark.parametrize("case", ["h264_29.97fps", "vp9"])
def test_decoder_threads_give_the_same_frames(make_video, case: str) -> None:
    path = make_video(f"{case}.mp4", num_frames=50, **CASES[case])
    frames = read_frames(path, INDICES, threads=2, fallback=False)
    assert np.array_equal(frames.numpy(), sequential_decode(path)[INDICES])


def test_counting_fallback_without_timestamps(make_video, monkeypatch) -> None:
    """Files whose packets lack timestamps are decoded from the start, counting frames."""
    path = make_video("nopts.mp4", num_frames=40, fps=25, gop=6)
    original = pyav_backend.PyAVReader._frame_pts
    monkeypatch.setattr(pyav_backend.PyAVReader, "_frame_pts", lambda self: [original(self), None][1])
    monkeypatch.setattr(pyav_backend, "PTS_CACHE", type(pyav_backend.PTS_CACHE)())
    frames = read_frames(path, [33, 2, 2, 39], fallback=False)
    assert np.array_equal(frames.numpy(), sequential_decode(path)[[33, 2, 2, 39]])


def test_decode_frames_returns_unique_frames_and_inverse(make_video) -> None:
    path = make_video("u.mp4", num_frames=20)
    seen = []
    frames, inverse = decode_frames(path, lambda n, fps: seen.append((n, fps)) or np.array([5, 1, 5, 9]))
    assert seen == [(20, 30.0)]
    again, _ = decode_frames(path, lambda n: np.array([9, 1, 5]))  # a one-argument selector gets no fps
    assert torch.equal(again, frames)
    assert frames.shape[0] == 3 and inverse.tolist() == [1, 0, 1, 2]
    assert np.array_equal(frames[inverse].numpy(), sequential_decode(path)[[5, 1, 5, 9]])


def test_falls_back_to_the_other_backend(make_video, monkeypatch) -> None:
    path = make_video("fb.mp4", num_frames=20)

    def broken(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated decoder crash")

    monkeypatch.setattr(pyav_backend.PyAVReader, "__init__", broken)
    frames = read_frames(path, [4, 2])
    assert np.array_equal(frames.numpy(), sequential_decode(path)[[4, 2]])
    with pytest.raises(DecodeError, match="simulated decoder crash"):
        read_frames(path, [4, 2], fallback=False)


_IMPORTS = """
import json, sys
import videoattn.data.decode as decode
loaded = lambda: sorted({"av", "decord", "torchcodec"} & set(sys.modules))
cuda = lambda: {line.split()[-1] for line in open("/proc/self/maps") if "/nvidia/" in line} if sys.platform == "linux" else set()
steps = [loaded()]
decode.read_frames(sys.argv[1], [0])
steps.append(loaded())
before = cuda()
decode.read_frames(sys.argv[1], [0], backend="decord")
steps.append(loaded())
new_cuda = len(cuda() - before)
import decord
preload = getattr(getattr(decord, "_ffi", None) and decord._ffi.base, "_preload_cuda_libs", None)
if preload is not None:  # the control: decord2's own preload, which the backend's import skipped
    preload()
print(json.dumps(dict(steps=steps, new_cuda=new_cuda, preload_cuda=len(cuda() - before) if preload else None)))
"""


def test_decoders_are_imported_only_when_used(make_video) -> None:
    """Importing the front imports no decoder; a PyAV read imports PyAV only (decord, the fallback,
    is not needed); decord is imported when asked for, without the CUDA libraries that decord2
    3.4.0's own import loads from the nvidia pip packages (torch's CUDA wheels install them:
    measured +419 MB resident per process); torchcodec is never imported unless asked for."""
    import json
    import subprocess

    path = make_video("lazy.mp4", num_frames=5)
    out = subprocess.run([sys.executable, "-c", _IMPORTS, str(path)], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["steps"] == [[], ["av"], ["av", "decord"]], found
    assert found["new_cuda"] == 0, found
    if found["preload_cuda"] is not None and importlib.util.find_spec("nvidia") is not None:
        assert found["preload_cuda"] > 0, found  # there was something to skip


def test_out_of_range_and_bad_arguments(make_video) -> None:
    path = make_video("r.mp4", num_frames=10)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        read_frames(path, [3, 10])
    with pytest.raises(ValueError, match="integers"):
        read_frames(path, [1.5])
    with pytest.raises(ValueError, match="backend"):
        read_frames(path, [1], backend="ffmpeg")


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(16000) / 10) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def corrupt_middle(path: Path, seed: int = 0) -> Path:
    """Overwrite 3 kB in the middle of a noisy video's data: decoding fails mid-file."""
    rng = np.random.default_rng(seed)
    data = bytearray(path.read_bytes())
    start = int(len(data) * 0.5)
    data[start : start + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def noisy_video(path: Path, num_frames: int = 40) -> Path:
    frames = np.random.default_rng(1).integers(0, 256, (num_frames, 64, 80, 3), dtype=np.uint8)
    return write_video(path, frames, fps=30, gop=10)


@pytest.fixture
def bad_files(tmp_path: Path, make_video) -> dict[str, Path]:
    good = make_video("good.mp4", num_frames=30)
    files = {
        "missing": tmp_path / "missing.mp4",
        "directory": tmp_path / "a_dir.mp4",
        "empty": tmp_path / "empty.mp4",
        "random_bytes": tmp_path / "random.mp4",
        "text": tmp_path / "notes.mp4",
        "truncated": tmp_path / "truncated.mp4",
        "audio_only": tmp_path / "audio.m4a",
        "corrupt_middle": corrupt_middle(noisy_video(tmp_path / "corrupt.mp4")),
    }
    files["directory"].mkdir()
    files["empty"].write_bytes(b"")
    files["random_bytes"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    files["text"].write_text("this is not a video\n" * 50)
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    write_audio_only(files["audio_only"])
    return files


def test_bad_files_raise_decode_error_naming_the_file(bad_files: dict[str, Path]) -> None:
    for kind, path in bad_files.items():
        indices = [0, 25] if kind == "corrupt_middle" else [0]
        with pytest.raises(DecodeError) as info:
            read_frames(path, indices)
        assert info.value.path == str(path) and str(path) in str(info.value), kind
        assert info.value.reason, kind
    with pytest.raises(DecodeError, match="no such file"):
        read_frames(bad_files["missing"], [0])
    with pytest.raises(DecodeError, match="directory"):
        read_frames(bad_files["directory"], [0])
    with pytest.raises(DecodeError, match="empty"):
        read_frames(bad_files["empty"], [0])


def test_check_video_finds_errors_in_the_middle(tmp_path: Path, bad_files: dict[str, Path], make_video) -> None:
    assert check_video(make_video("fine.mp4", num_frames=30)) == 30
    for kind, path in bad_files.items():
        with pytest.raises(DecodeError) as info:
            check_video(path)
        assert info.value.path == str(path), kind
    with pytest.raises(DecodeError, match="pyav: .*decord: "):  # both decoders tried, both reasons kept
        check_video(bad_files["corrupt_middle"])
    assert check_video(noisy_video(tmp_path / "clean_noise.mp4")) == 40


# ----------------------------------------------------------------------- encoded bytes in memory


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("case", list(CASES))
def test_bytes_and_file_objects_give_the_frames_of_the_file(make_video, case: str, backend: str) -> None:
    path = make_video(f"{case}.mp4", num_frames=50, **CASES[case])
    from_file = read_frames(path, INDICES, backend=backend, fallback=False)
    data = path.read_bytes()
    for source in (data, bytearray(data), memoryview(data), io.BytesIO(data)):
        frames = read_frames(source, INDICES, backend=backend, fallback=False)
        assert torch.equal(frames, from_file), type(source).__name__
    assert probe_num_frames(data, backend=backend, fallback=False) == 50


def test_known_info_skips_the_probe_and_gives_the_same_frames(make_video, monkeypatch) -> None:
    """A VideoInfo as a shard carries it (count, rate, timestamps): PyAV opens the bytes and
    seeks with the given timestamps, without the demux pass; decord samples with its count."""
    path = make_video("vfr.mp4", num_frames=50, **CASES["h264_vfr"])
    data = path.read_bytes()
    info = probe_video(data)
    assert info.num_frames == 50 and info.pts is not None
    assert info.pts.tolist() == [p * int(info.pts[1]) for p in VFR_PTS]  # in the stream's time base
    assert info.fps == probe_video(path).fps and info == decode.VideoInfo(50, info.fps)  # pts not compared
    reference = read_frames(path, INDICES, fallback=False)
    monkeypatch.setattr(pyav_backend.PyAVReader, "_frame_pts", None)  # a probe would fail now
    for backend in ("pyav", "decord"):
        assert torch.equal(read_frames(data, INDICES, backend=backend, fallback=False, info=info), reference), backend
    seen = []
    decode_frames(data, lambda n, fps: seen.append((n, fps)) or np.array([3]), info=decode.VideoInfo(50, 12.5, info.pts))
    assert seen == [(50, 12.5)]  # select gets the given count and rate
    with pytest.raises(ValueError, match="timestamps"):
        decode.VideoInfo(49, 30.0, info.pts)


def test_bad_bytes_raise_decode_error_with_a_reason(bad_files: dict[str, Path], make_video) -> None:
    for kind in ("random_bytes", "text", "truncated", "audio_only", "corrupt_middle"):
        data = bad_files[kind].read_bytes()
        indices = [0, 25] if kind == "corrupt_middle" else [0]
        with pytest.raises(DecodeError) as info:
            read_frames(data, indices, name=f"shard entry {kind}")
        assert info.value.path == f"shard entry {kind}" and info.value.reason, kind
        assert "pyav: " in info.value.reason and "decord: " in info.value.reason, kind
        with pytest.raises(DecodeError):
            check_video(data, name=kind)
    with pytest.raises(DecodeError, match=r"<5000 bytes>: pyav: .*decord: cannot open: Invalid data"):
        read_frames(bad_files["random_bytes"].read_bytes(), [0])
    with pytest.raises(DecodeError, match="empty"):
        read_frames(b"", [0])
    with pytest.raises(TypeError, match="path, bytes or a binary file object"):
        read_frames(12, [0])  # type: ignore[arg-type]
    assert check_video(make_video("ok.mp4", num_frames=30).read_bytes()) == 30


def test_decord_prints_nothing_to_the_console(bad_files: dict[str, Path], capfd) -> None:
    """decord writes its own C++ error lines to fd 2 (for bytes: with the bytes as the file
    name); they go into our reason instead of the console."""
    for kind in ("random_bytes", "truncated", "corrupt_middle"):
        for source in (bad_files[kind], bad_files[kind].read_bytes()):
            with pytest.raises(DecodeError) as info:
                read_frames(source, [0, 25] if kind == "corrupt_middle" else [0], backend="decord")
            assert "decord: " in info.value.reason
            assert "[" not in info.value.reason.split("decord: ")[1][:3]  # no "[14:30:14] src/x.cc:83:" prefix
    out, err = capfd.readouterr()
    assert "video_reader.cc" not in err and "ERROR" not in err and ".cc:" not in err, err[:500]
    assert err == ""
    print("python's own stderr", file=sys.stderr)  # fd 2 is restored afterwards
    assert "python's own stderr" in capfd.readouterr().err


# ------------------------------------------------------------- VP9 in .webm (Something-Something v2)

WEBM_CASES = {
    "12fps_gop12": dict(fps=12, gop=12),  # Something-Something v2's rate
    "30fps_one_gop": dict(fps=30),  # libvpx's default keyframe interval (128): every seek decodes from frame 0
    "vfr": dict(fps=30, pts=VFR_PTS, time_base=Fraction(1, 60)),  # stored in Matroska's 1 ms units
}
WEBM_SIZE = dict(height=64, width=160)  # the moving square's position and the index block repeat only after 288 frames


def source_indices(frames: np.ndarray, source: np.ndarray) -> list[int]:
    """For each decoded frame, the index of the source frame closest to it (mean absolute difference):
    which frame of the video it is, whatever the decoders agree on."""
    diff = np.abs(frames[:, None].astype(np.int16) - source[None].astype(np.int16)).mean(axis=(2, 3, 4))  # [F, S]
    return diff.argmin(axis=1).tolist()


def _ready(backend: str) -> None:
    if backend == "torchcodec":
        _torchcodec_ready()


@pytest.mark.parametrize("backend", decode.BACKENDS)
@pytest.mark.parametrize("case", list(WEBM_CASES))
def test_vp9_webm_gives_the_requested_frames_in_presentation_order(make_video, case: str, backend: str) -> None:
    """VP9 .webm files (as Something-Something v2 ships them), written by write_video: every backend
    counts 50 frames and returns exactly the frames asked for, for random, sorted, repeated and
    late indices, from the file and from its bytes, with one and two decoder threads."""
    _ready(backend)
    path = make_video(f"{case}.webm", num_frames=50, **WEBM_SIZE, **WEBM_CASES[case])
    with av.open(str(path)) as container:
        assert "webm" in container.format.name and container.streams.video[0].codec_context.name == "vp9"
    reference = sequential_decode(path)
    source = moving_square_frames(50, **WEBM_SIZE)
    assert source_indices(reference, source) == list(range(50))  # the reference is frame i at position i
    assert probe_num_frames(path, backend=backend, fallback=False) == 50
    rng = np.random.default_rng(0)
    index_sets = [INDICES, sorted(rng.choice(50, 12, replace=False).tolist()), rng.integers(0, 50, 16).tolist(), [41, 42, 43], [49]]
    for indices in index_sets:
        frames = read_frames(path, indices, backend=backend, fallback=False).numpy()
        assert np.array_equal(frames, reference[indices]), indices
        assert source_indices(frames, source) == list(indices), indices
    data = path.read_bytes()
    assert np.array_equal(read_frames(data, INDICES, backend=backend, fallback=False).numpy(), reference[INDICES])
    assert np.array_equal(read_frames(path, INDICES, backend=backend, fallback=False, threads=2).numpy(), reference[INDICES])


def test_vp9_webm_probe_gives_matroska_timestamps(make_video) -> None:
    """The probe of a variable-frame-rate .webm: 50 frames, their times in Matroska's 1 ms units
    (the 1/60 s times rounded), the same from the file and from its bytes."""
    path = make_video("vfr.webm", num_frames=50, **WEBM_SIZE, **WEBM_CASES["vfr"])
    info = probe_video(path)
    assert info.num_frames == 50 and info.pts is not None
    assert info.pts.tolist() == np.round(np.array(VFR_PTS) * 1000 / 60).astype(int).tolist()
    assert probe_video(path.read_bytes()).pts.tolist() == info.pts.tolist()


@pytest.mark.parametrize("backend", decode.BACKENDS)
def test_one_frame_vp9_webm(make_video, backend: str) -> None:
    """A 1-frame .webm: read exactly, or (decord only, which cannot count the frames of a 1-frame
    Matroska file: decord 0.6.0 and decord2 3.4.0) a DecodeError with its reason, after which the
    default fallback reads it with PyAV."""
    _ready(backend)
    path = make_video("one.webm", num_frames=1, **WEBM_SIZE, fps=12)
    reference = sequential_decode(path)
    assert len(reference) == 1
    try:
        frames = read_frames(path, [0, 0], backend=backend, fallback=False)
    except DecodeError as exc:
        assert backend == "decord" and exc.reason.startswith("decord: "), exc
    else:
        assert np.array_equal(frames.numpy(), reference[[0, 0]])
        assert probe_num_frames(path, backend=backend, fallback=False) == 1
    assert np.array_equal(read_frames(path, [0], backend=backend).numpy(), reference[[0]])


# ------------------------------------------------------------------------------- torchcodec


def _torchcodec_ready() -> bool:
    try:
        decode.check_backend("torchcodec")
    except ImportError as exc:
        if os.environ.get("CI"):  # CI installs FFmpeg (Makefile): a missing library is a failure there
            raise
        pytest.skip(str(exc))
    return True


@pytest.mark.parametrize("case", list(CASES))
def test_torchcodec_gives_the_frames_of_pyav(make_video, case: str) -> None:
    _torchcodec_ready()
    path = make_video(f"{case}.mp4", num_frames=50, **CASES[case])
    reference = read_frames(path, INDICES, backend="pyav", fallback=False)
    for source in (path, path.read_bytes()):
        frames = read_frames(source, INDICES, backend="torchcodec", fallback=False)
        assert frames.dtype == torch.uint8 and frames.device.type == "cpu"
        assert (frames.int() - reference.int()).abs().max().item() == 0
    assert "torchcodec" in decode.available_backends()


def test_torchcodec_bad_input_and_missing_ffmpeg_are_named(bad_files: dict[str, Path], monkeypatch) -> None:
    _torchcodec_ready()
    with pytest.raises(DecodeError, match="torchcodec: "):
        read_frames(bad_files["random_bytes"], [0], backend="torchcodec", fallback=False)
    import ctypes.util

    import torchcodec

    monkeypatch.setattr(torchcodec, "ffmpeg_major_version", None)  # as without FFmpeg's libraries
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None if name in ("avcodec", "avformat") else f"lib{name}.so")
    with pytest.raises(ImportError, match=r"FFmpeg's shared libraries \(missing here: libavcodec, libavformat\).*apt-get install ffmpeg"):
        read_frames(bad_files["random_bytes"], [0], backend="torchcodec")
    assert "torchcodec" not in decode.available_backends()


_OTHER_THREADS = """
import sys, time
import torch
from videoattn.data import decode
from videoattn.data.backends import pyav
torch.set_num_threads(1)  # as in a DataLoader worker: no OpenMP threads waiting for work
if sys.argv[2] == "pyav-default":  # PyAV's own conversion threads (one per CPU)
    pyav.converts_with_threads = lambda: False
start_process, start_thread = time.process_time(), time.thread_time()
for _ in range(20):
    decode.read_frames(sys.argv[1], list(range(0, 60, 4)), backend="pyav", threads=1)
main = time.thread_time() - start_thread
print(time.process_time() - start_process - main, main)
"""


def test_one_decode_thread_converts_frames_in_the_calling_thread(make_video) -> None:
    """threads=1 (the workers' default) also converts frames to RGB in the calling thread: no CPU
    time in other threads of the process (PyAV's default starts a pool of threads, one per CPU,
    for each frame it converts: its CPU time shows with more than one CPU)."""
    import subprocess

    path = make_video("a.mp4", num_frames=60, height=128, width=160)

    def other_and_main(mode: str) -> tuple[float, float]:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # numpy's and torch's pools idle
        out = subprocess.run([sys.executable, "-c", _OTHER_THREADS, str(path), mode], capture_output=True, text=True, check=True, env=env)
        other, main = map(float, out.stdout.split())
        return other, main

    other, main = other_and_main("ours")
    assert pyav_backend.converts_with_threads()  # PyAV >= the one installed here takes threads=
    assert other < 0.005 * main, (other, main)  # measured: 0.01 %
    if (os.cpu_count() or 1) > 1:  # the control: without it, other threads do the conversions
        other, main = other_and_main("pyav-default")
        assert other > 0.02 * main, (other, main)  # measured: 19-22 %, and 40 % more time in the calling thread
