"""Make the speech clips the notebooks use, with espeak-ng and sox (Debian packages).

Writes 16 kHz mono 16-bit WAV files next to this script:

* ``speech_15s.wav``: exactly 240000 samples (the 15 s window of the exported models);
  several sentences, then silence to the end.
* ``speech_short.wav``: one sentence, about 3 s.

Run ``python data/make_clips.py`` (``make data``). The output is deterministic for a
given espeak-ng and sox version; the versions used are written to ``clips.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE_RATE = 16000
WINDOW = 240000

CLIPS = {
    "speech_15s.wav": (
        "The neural engine limits every tensor axis to sixteen thousand three hundred "
        "eighty four elements. A fifteen second waveform has two hundred and forty "
        "thousand samples, so the fused model fails on the phone."
    ),
    "speech_short.wav": "Parakeet listens on the neural engine.",
}
VOICE = "en-us"
SPEED_WPM = 165


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"{tool} not found: install the Debian package ({'espeak-ng' if 'espeak' in tool else 'sox'})")
    return path


def _version(cmd: list[str]) -> str:
    """The version line a tool prints, without the install paths some tools add."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = (out.stdout or out.stderr).strip().splitlines()[0]
    line = line.split("Data at:")[0]  # espeak-ng appends its data folder
    return line.split(":", 1)[1].strip() if line.startswith("/") else line.strip()


def synthesize(text: str, out: Path, pad_to: int | None = None) -> int:
    """Speak ``text`` into ``out`` (16 kHz mono s16); pad with silence to ``pad_to`` samples."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            [_require("espeak-ng"), "-v", VOICE, "-s", str(SPEED_WPM), "-w", str(raw), text],
            check=True,
        )
        effects = ["rate", "-v", str(SAMPLE_RATE), "channels", "1"]
        staged = Path(tmp) / out.name
        subprocess.run(
            [_require("sox"), "-V1", "-R", "-D", str(raw), "-b", "16", "-e", "signed-integer", str(staged), *effects],
            check=True,
        )
        with wave.open(str(staged)) as w:
            frames = w.getnframes()
        if pad_to is not None:
            if frames > pad_to:
                sys.exit(f"{out.name}: speech is {frames} samples, longer than {pad_to}; shorten the text")
            padded = Path(tmp) / ("padded_" + out.name)
            subprocess.run(
                [_require("sox"), "-V1", "-R", "-D", str(staged), str(padded), "pad", "0", f"{pad_to - frames}s"],
                check=True,
            )
            staged = padded
        shutil.move(str(staged), out)
    with wave.open(str(out)) as w:
        return w.getnframes()


def main() -> None:
    info = {
        "espeak-ng": _version([_require("espeak-ng"), "--version"]),
        "sox": _version([_require("sox"), "--version"]),
        "voice": VOICE,
        "speed_wpm": SPEED_WPM,
        "sample_rate": SAMPLE_RATE,
        "clips": {},
    }
    for name, text in CLIPS.items():
        samples = synthesize(text, HERE / name, pad_to=WINDOW if name == "speech_15s.wav" else None)
        info["clips"][name] = {"text": text, "samples": samples, "seconds": samples / SAMPLE_RATE}
        print(f"{name}: {samples} samples ({samples / SAMPLE_RATE:.2f} s)")
    (HERE / "clips.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
