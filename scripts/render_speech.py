"""Render a speech evaluation set with Festival: 22 sentences by 11 voices in 6 languages, 16 kHz.

The project may use no recordings beyond the allowed music packages, so its speech set is
synthetic: Festival's diphone, unit-selection and HTS voices from Debian, which are built from
recorded human speech (diphones or units of one speaker, or a statistical model of one). It is not
a read-speech corpus, and the figures measured on it say so. Nothing here is ever trained on.

    apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k \\
        festvox-itapc16k festvox-czech-dita festvox-czech-machac festvox-suopuhe-lj festvox-suopuhe-mv \\
        festvox-ca-ona-hts festvox-ru
    python scripts/render_speech.py data/speech/test

Each sentence is rendered by ``text2wave``, resampled to 16 kHz with resampy where the voice runs at
another rate, its leading and trailing silence trimmed, normalised to a peak of -1 dBFS and written
as 16-bit FLAC.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import resampy
import soundfile as sf

RATE = 16000
PEAK = 10 ** (-1 / 20)

# (voice, language, two sentences written for this set)
VOICES = [
    ("kal_diphone", "en", "The quick brown fox jumps over the lazy dog near the river bank.",
     "Please call the office before noon if the train is running late again."),
    ("ked_diphone", "en", "A cold wind swept across the empty harbour just after sunset.",
     "She counted seven boats, three gulls and one old man mending his nets."),
    ("cmu_us_slt_arctic_hts", "en", "We will meet at the library on Thursday to finish the report.",
     "Nobody expected the concert to sell out in less than an hour."),
    ("lp_diphone", "it", "Il sole splende sopra le colline e i bambini corrono verso il mare.",
     "La biblioteca resta aperta fino alle nove di sera durante l'estate."),
    ("pc_diphone", "it", "Domani mattina andremo al mercato a comprare frutta fresca.",
     "Il treno per Milano parte dal binario quattro tra dieci minuti."),
    ("czech_dita", "cs", "Dnes ráno jsme šli na procházku do parku u řeky.",
     "Večer budeme poslouchat koncert v rozhlase."),
    ("czech_machac", "cs", "Vlak přijede na nádraží přesně v osm hodin večer.",
     "Na zahradě rostou jablka, hrušky a švestky."),
    ("suo_fi_lj_diphone", "fi", "Aurinko paistaa ja lapset leikkivät pihalla koko päivän.",
     "Kirjasto on auki iltaan asti joka arkipäivä."),
    ("hy_fi_mv_diphone", "fi", "Huomenna menemme kauppaan ostamaan leipää ja maitoa.",
     "Juna lähtee asemalta kello seitsemän aamulla."),
    ("upc_ca_ona_hts", "ca", "El sol brilla sobre les muntanyes i els nens juguen al parc.",
     "Demà al matí anirem al mercat a comprar pa i fruita."),
    ("msu_ru_nsh_clunits", "ru", "Сегодня утром мы гуляли в парке у реки.",
     "Поезд приходит на вокзал ровно в восемь часов вечера."),
]


def render(voice: str, text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "text.txt", Path(folder) / "speech.wav"
        source.write_text(text + "\n", encoding="utf-8")
        subprocess.run(["text2wave", "-eval", f"(voice_{voice})", str(source), "-o", str(target)],
                       check=True, capture_output=True, timeout=120)
        audio, rate = sf.read(target, dtype="float64", always_2d=True)
    audio = audio.mean(1)
    if rate != RATE:
        audio = resampy.resample(audio, rate, RATE)
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    audio = audio[max(loud[0] - RATE // 20, 0) : loud[-1] + RATE // 20]
    return audio * (PEAK / np.abs(audio).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    for number, (voice, language, *sentences) in enumerate(VOICES, 1):
        for part, text in enumerate(sentences, 1):
            name = args.dest / f"{number:02d}{'ab'[part - 1]}-{language}-{voice}.flac"
            if name.exists():
                continue
            audio = render(voice, text)
            sf.write(name, audio.astype(np.float32), RATE, subtype="PCM_16")
            print(f"{name.name}  {len(audio) / RATE:.1f} s", flush=True)


if __name__ == "__main__":
    main()
