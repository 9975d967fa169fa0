"""How many pure test tones does detection take for clipping? None should be.

Usage: python benchmarks/tone_detection.py

Sines at 20 Hz-10 kHz, 8-192 kHz, amplitudes 0.5, 1 and 32767/32768, 0.2, 1 and 10 s long, in
phase 0 or 0.3, and quantised to 16 bits: each is unclipped, so every level found is a false
detection. Run it on an older commit to compare (5c86131: 1206 of 1242).
"""
from __future__ import annotations

import numpy as np

from declipper.detection import estimate_levels


def main() -> None:
    total = flagged = 0
    for rate in (8000, 16000, 44100, 48000, 96000, 192000):
        for frequency in (20, 50, 100, 440, 997, 1000, 3000, 10000):
            if frequency >= rate / 2.2:
                continue
            for amplitude in (0.5, 1.0, 32767 / 32768):
                for seconds in (0.2, 1, 10):
                    t = np.arange(int(seconds * rate)) / rate
                    for kind in ("phase 0", "phase 0.3", "16-bit"):
                        x = amplitude * np.sin(2 * np.pi * frequency * t + (0.3 if kind == "phase 0.3" else 0.0))
                        if kind == "16-bit":
                            x = np.round(x * 32767) / 32768
                        total += 1
                        flagged += estimate_levels(x.astype(np.float32)[:, None]).any_clipped
    print(f"{flagged} of {total} unclipped tones taken for clipped")


if __name__ == "__main__":
    main()
