"""Make the spoken-digit data sets for the digits TDT model, with espeak-ng and sox.

Each utterance is a string of 1 to 8 digits spoken as words ("three seven two nine";
zero is sometimes spoken "oh", and then the text says "oh"), synthesised by ``espeak-ng``
with one of eight English voices (accents) and a voice *variant* (``-v en-gb+f3``), at a
random speed (words per minute), pitch and word gap; ``sox`` resamples espeak-ng's
22050 Hz output to 16 kHz mono 16-bit (``-R -D``: repeatable, no dither). Then, with a
numpy generator seeded per utterance, espeak-ng's own leading and trailing silence is
trimmed and replaced by a random one (a small time shift), a random gain is applied and
light white noise is added. Every utterance depends only on ``(seed, split, index)``, so
the output is the same whatever the number of worker processes.

Splits (the voice *variants* decide what is held out):

* ``train`` and ``val``: the training variants (:data:`TRAIN_VARIANTS`, plus no variant);
  written to ``build/digits/<split>/`` (not committed).
* ``test``: only the held-out variants (:data:`TEST_VARIANTS`), which the training set
  never uses; 48 clips, each number of digits (1-8) six times and each variant six times
  (a Latin square, no (variant, length) pair twice), committed in ``data/digits/test/``
  (about 2.6 MB; 16-bit WAV is 32 kB per second). Short silences keep the files small.
* ``heldout``: a larger set with the same held-out variants and the training silences,
  written to ``build/digits/heldout/`` for a more precise test WER.

Every split folder gets ``manifest.jsonl``, one JSON object per line: ``path`` (relative
to the manifest's folder), ``text``, ``voice``, ``variant`` (``""`` for none), ``speed``
(words per minute), ``pitch`` (0-99), ``gap`` (extra word gap, 10 ms units), ``gain_db``,
``snr_db`` (``null`` without noise), ``lead`` / ``trail`` (seconds of silence) and
``samples``. ``info.json`` beside it records the tool versions and the parameters.

Usage (from the project root)::

    python data/digits/make_digits.py                       # every split
    python data/digits/make_digits.py --splits train,val    # only some

The output is the same byte for byte for the same espeak-ng, sox and numpy versions.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SAMPLE_RATE = 16000

#: Digit words; index = digit. Zero is sometimes spoken "oh" (:data:`OH_PROBABILITY`).
DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Every word a transcript may contain.
WORDS: tuple[str, ...] = DIGIT_WORDS + ("oh",)
OH_PROBABILITY = 0.3
MIN_DIGITS, MAX_DIGITS = 1, 8

#: espeak-ng's English voices (accents) with its own voice data (``espeak-ng --voices=en``,
#: the ``gmw/`` files; the ``mb/`` voices need MBROLA, which is not installed).
VOICES: tuple[str, ...] = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
    "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
#: Variants (``espeak-ng --voices=variant``, files in ``espeak-ng-data/voices/!v``) used
#: only by the test sets. Each has siblings in training (f4 / f1-f3, f5; m5 / m1-m4, m6-m8;
#: klatt4 / klatt, klatt2, ...), but never itself.
TEST_VARIANTS: tuple[str, ...] = ("f4", "m5", "klatt4", "steph3", "edward2", "iven3", "Annie", "linda")
#: Variants of the training and validation sets; ``""`` is the plain voice.
TRAIN_VARIANTS: tuple[str, ...] = (
    "", "f1", "f2", "f3", "f5", "m1", "m2", "m3", "m4", "m6", "m7", "m8",
    "klatt", "klatt2", "klatt3", "klatt5", "klatt6", "steph", "steph2", "edward", "iven", "iven2", "iven4",
    "Alex", "Alicia", "Andrea", "Andy", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "RicishayMax", "Storm",
    "Tweaky", "adam", "anika", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "croak",
    "david", "ed", "grandma", "grandpa", "gustave", "john", "kaukovalta", "marcelo", "max", "michel",
    "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby",
    "travis", "victor", "zac", "whisper", "whisperf",
)

SPEED_RANGE = (130, 210)  # words per minute
PITCH_RANGE = (25, 75)  # espeak-ng -p, 0-99
GAP_RANGE = (0, 4)  # espeak-ng -g, extra pause between words in 10 ms units
GAIN_DB_RANGE = (-14.0, 0.0)  # peak level relative to 0.9 full scale
SNR_DB_RANGE = (15.0, 40.0)  # white noise relative to the speech RMS
NOISE_PROBABILITY = 0.8
TRIM_THRESHOLD = 0.02  # of the peak: what counts as speech when trimming espeak-ng's silence


@dataclass(frozen=True)
class SplitSpec:
    """How one split is made: its size, variants, silences and output folder."""

    name: str
    index: int  # part of every utterance's seed
    size: int
    variants: tuple[str, ...]
    lead: tuple[float, float]  # seconds of silence before the speech
    trail: tuple[float, float]  # and after
    out_dir: Path
    balanced: bool = False  # lengths and variants cycle (a Latin square) instead of random


def split_specs(out: Path, test_dir: Path, sizes: dict[str, int]) -> dict[str, SplitSpec]:
    """The four splits; ``sizes`` maps split name to number of utterances."""
    return {
        "train": SplitSpec("train", 0, sizes["train"], TRAIN_VARIANTS, (0.0, 0.3), (0.05, 0.3), out / "train"),
        "val": SplitSpec("val", 1, sizes["val"], TRAIN_VARIANTS, (0.0, 0.3), (0.05, 0.3), out / "val"),
        "test": SplitSpec("test", 2, sizes["test"], TEST_VARIANTS, (0.0, 0.08), (0.03, 0.08), test_dir, balanced=True),
        "heldout": SplitSpec("heldout", 3, sizes["heldout"], TEST_VARIANTS, (0.0, 0.3), (0.05, 0.3), out / "heldout"),
    }


@dataclass(frozen=True)
class Utterance:
    """Everything that decides one clip (drawn by :func:`draw`)."""

    path: str
    text: str
    voice: str
    variant: str
    speed: int
    pitch: int
    gap: int
    gain_db: float
    snr_db: float | None
    lead: float
    trail: float
    noise_seed: int


def draw(spec: SplitSpec, i: int, seed: int) -> Utterance:
    """Utterance ``i`` of ``spec``, from a generator seeded with ``(seed, split, i)``."""
    rng = np.random.default_rng([seed, spec.index, i])
    if spec.balanced:  # a Latin square: every length and every variant equally often
        lengths = MAX_DIGITS - MIN_DIGITS + 1
        n_digits = MIN_DIGITS + i % lengths
        variant = spec.variants[(i + i // lengths) % len(spec.variants)]
    else:
        variant = spec.variants[int(rng.integers(len(spec.variants)))]
        n_digits = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
    digits = rng.integers(0, 10, size=n_digits)
    oh = rng.random(n_digits) < OH_PROBABILITY
    words = ["oh" if d == 0 and o else DIGIT_WORDS[d] for d, o in zip(digits.tolist(), oh.tolist())]
    voice = VOICES[int(rng.integers(len(VOICES)))]
    speed = int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1))
    pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    gap = int(rng.integers(GAP_RANGE[0], GAP_RANGE[1] + 1))
    gain_db = round(float(rng.uniform(*GAIN_DB_RANGE)), 2)
    snr_db = round(float(rng.uniform(*SNR_DB_RANGE)), 1) if rng.random() < NOISE_PROBABILITY else None
    lead = round(float(rng.uniform(*spec.lead)), 3)
    trail = round(float(rng.uniform(*spec.trail)), 3)
    noise_seed = int(rng.integers(2**31))
    return Utterance(
        path=f"{i:05d}.wav", text=" ".join(words), voice=voice, variant=variant, speed=speed,
        pitch=pitch, gap=gap, gain_db=gain_db, snr_db=snr_db, lead=lead, trail=trail, noise_seed=noise_seed,
    )


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} not found: install the Debian package {name}")
    return path


def speak(u: Utterance) -> np.ndarray:
    """espeak-ng -> sox: the raw synthesis of ``u`` as 16 kHz mono float32 in [-1, 1]."""
    voice = f"{u.voice}+{u.variant}" if u.variant else u.voice
    espeak = subprocess.run(
        [_tool("espeak-ng"), "-v", voice, "-s", str(u.speed), "-p", str(u.pitch), "-g", str(u.gap),
         "--stdout", u.text],
        check=True, capture_output=True,
    )
    sox = subprocess.run(
        [_tool("sox"), "-V1", "-R", "-D", "-t", "wav", "-", "-t", "raw", "-b", "16", "-e", "signed-integer",
         "-c", "1", "-r", str(SAMPLE_RATE), "-", "rate", "-v", str(SAMPLE_RATE)],
        input=espeak.stdout, check=True, capture_output=True,
    )
    return np.frombuffer(sox.stdout, dtype="<i2").astype(np.float32) / 32768.0


def augment(speech: np.ndarray, u: Utterance) -> np.ndarray:
    """Trim espeak-ng's silence, add ``u.lead`` / ``u.trail`` seconds, gain and noise; int16."""
    peak = float(np.abs(speech).max())
    if peak == 0.0:
        raise RuntimeError(f"espeak-ng produced silence for {u}")
    loud = np.flatnonzero(np.abs(speech) > TRIM_THRESHOLD * peak)
    margin = SAMPLE_RATE // 100  # keep 10 ms around the speech
    speech = speech[max(loud[0] - margin, 0): loud[-1] + margin + 1]
    lead, trail = round(u.lead * SAMPLE_RATE), round(u.trail * SAMPLE_RATE)
    x = np.concatenate([np.zeros(lead, np.float64), speech.astype(np.float64), np.zeros(trail, np.float64)])
    x *= 0.9 * 10.0 ** (u.gain_db / 20.0) / peak
    if u.snr_db is not None:
        rms = float(np.sqrt(np.mean(x[lead: lead + len(speech)] ** 2)))
        noise = np.random.default_rng(u.noise_seed).standard_normal(len(x))
        x += noise * rms * 10.0 ** (-u.snr_db / 20.0)
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16 kHz mono 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def make_one(job: tuple[Utterance, str]) -> dict:
    """Synthesise, augment and write one clip; its manifest entry."""
    u, out_dir = job
    samples = augment(speak(u), u)
    write_wav(Path(out_dir) / u.path, samples)
    entry = asdict(u)
    del entry["noise_seed"]
    entry["samples"] = int(len(samples))
    return entry


def versions() -> dict[str, str]:
    """espeak-ng's and sox's version lines (without install paths)."""
    out = {}
    for tool, cmd in (("espeak-ng", [_tool("espeak-ng"), "--version"]), ("sox", [_tool("sox"), "--version"])):
        line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        line = line.split("Data at:")[0].strip()
        out[tool] = line.split(":", 1)[1].strip() if line.startswith("/") else line
    return out


def make_split(spec: SplitSpec, seed: int, jobs: int) -> list[dict]:
    """Write every clip of ``spec`` and its ``manifest.jsonl`` / ``info.json``; the entries."""
    if spec.out_dir.exists():
        for old in list(spec.out_dir.glob("*.wav")) + [spec.out_dir / "manifest.jsonl"]:
            old.unlink(missing_ok=True)
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    work = [(draw(spec, i, seed), str(spec.out_dir)) for i in range(spec.size)]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            entries = pool.map(make_one, work, chunksize=32)
    else:
        entries = [make_one(w) for w in work]
    with open(spec.out_dir / "manifest.jsonl", "w") as f:
        for entry in entries:
            f.write(json.dumps(entry) + "\n")
    info = {
        "split": spec.name, "seed": seed, "size": spec.size, "variants": list(spec.variants),
        "voices": list(VOICES), "speed_wpm": SPEED_RANGE, "pitch": PITCH_RANGE, "word_gap": GAP_RANGE,
        "gain_db": GAIN_DB_RANGE, "snr_db": SNR_DB_RANGE, "noise_probability": NOISE_PROBABILITY,
        "lead_s": spec.lead, "trail_s": spec.trail, "oh_probability": OH_PROBABILITY,
        "digits": [MIN_DIGITS, MAX_DIGITS], "sample_rate": SAMPLE_RATE,
        "seconds": round(sum(e["samples"] for e in entries) / SAMPLE_RATE, 2),
        "tools": versions(), "numpy": np.__version__,
    }
    (spec.out_dir / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", default="train,val,test,heldout", help="comma-separated: train,val,test,heldout")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "digits", help="folder of train/val/heldout")
    parser.add_argument("--test-dir", type=Path, default=HERE / "test", help="folder of the committed test set")
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=48)
    parser.add_argument("--heldout", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args(argv)
    sizes = {"train": args.train, "val": args.val, "test": args.test, "heldout": args.heldout}
    specs = split_specs(args.out, args.test_dir, sizes)
    names = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = [n for n in names if n not in specs]
    if unknown:
        sys.exit(f"unknown split(s) {', '.join(unknown)}: expected {', '.join(specs)}")
    for name in names:
        start = time.perf_counter()
        entries = make_split(specs[name], args.seed, args.jobs)
        seconds = sum(e["samples"] for e in entries) / SAMPLE_RATE
        print(f"{name}: {len(entries)} clips, {seconds / 60:.1f} min of audio in {specs[name].out_dir} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
