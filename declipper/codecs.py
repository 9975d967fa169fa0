"""Lossy codecs as libsndfile runs them: MP3, Ogg Vorbis and Ogg Opus, encoded and decoded in memory.

Why here: most clipped music reaches users through one of these codecs, after the clipping. To
measure what coding does to detection and restoration (benchmarks/lossy_codecs.py), and to
train on what users bring, a clipped signal goes through the same libsndfile encoders that
``declipper`` itself reads and writes with. libsndfile sets each codec's rate by one number, its
compression level in [0, 1]; the formulas below turn the usual settings into it.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf

OPUS_RATE = 48000  # the rate Opus is benchmarked at
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the rates libsndfile's Opus encoder takes
# MPEG-1 rates only: at the MPEG-2 rates (16-24 kHz) libsndfile's decoder leaves the codec's delay in,
# 1105 samples measured, so the decoded signal no longer lines up with the input
MP3_RATES = (32000, 44100, 48000)


@dataclass(frozen=True)
class Codec:
    """One codec setting, by its usual name: mp3-128 (kbps, constant), vorbis-q4 (quality), opus-128 (kbps)."""

    name: str

    def __post_init__(self):
        if not re.fullmatch(r"mp3-\d+|vorbis-q\d+|opus-\d+", self.name):
            raise ValueError(f"unknown codec {self.name!r}: use mp3-KBPS, vorbis-qN or opus-KBPS")

    @property
    def family(self) -> str:
        return self.name.split("-")[0]

    @property
    def setting(self) -> int:
        return int(self.name.split("-")[1].lstrip("q"))

    @property
    def suffix(self) -> str:
        return {"mp3": ".mp3", "vorbis": ".ogg", "opus": ".opus"}[self.family]

    def compression_level(self, channels: int) -> float:
        """libsndfile's level for this setting (its sources: mpeg_l3_encode.c, ogg_vorbis.c, ogg_opus.c)."""
        if self.family == "mp3":  # constant bit rate from 320 (level 0) down to 32 kbps (level 1)
            return (320 - self.setting) / (320 - 32)
        if self.family == "vorbis":  # quality q / 10 = 1 - level
            return 1 - self.setting / 10
        # Opus: (1 - level) * 250 + 6 kbps per channel
        return 1 - (1000 * self.setting / channels - 6000) / 250000

    def takes(self, rate: int) -> bool:
        """Whether libsndfile can code audio at this rate with this codec."""
        return {"mp3": rate in MP3_RATES, "opus": rate in OPUS_RATES}.get(self.family, True)

    def encode(self, audio: np.ndarray, rate: int) -> bytes:
        """The coded file, from [frames, channels] float audio."""
        if not self.takes(rate):
            raise ValueError(f"{self.name} cannot code audio at {rate} Hz")
        buffer = io.BytesIO()
        format, subtype = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS"),
                           "opus": ("OGG", "OPUS")}[self.family]
        extra = {"bitrate_mode": "CONSTANT"} if self.family == "mp3" else {}
        level = min(max(self.compression_level(audio.shape[1]), 0.0), 1.0)
        sf.write(buffer, audio, rate, format=format, subtype=subtype, compression_level=level, **extra)
        return buffer.getvalue()

    def round_trip(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """Encoded and decoded again, as float (never clamped) and as long as the input."""
        decoded, _ = sf.read(io.BytesIO(self.encode(audio, rate)), dtype="float32", always_2d=True)
        if len(decoded) < len(audio):
            decoded = np.concatenate([decoded, np.zeros((len(audio) - len(decoded), audio.shape[1]), np.float32)])
        return decoded[: len(audio)]
