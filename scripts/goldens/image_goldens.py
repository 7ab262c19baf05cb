"""Image-decoding goldens for image-to-video inputs: PNG in every colour type / bit depth / filter /
interlace combination and baseline JPEGs, with the RGB pixels Pillow decodes them to.

Writes Tests/Fixtures/image/:
  <name>.png / <name>.jpg   the encoded images
  image.safetensors         U8 [H, W, 3] per name: np.array(Image.open(file).convert("RGB")),
                            except 16-bit greyscale (see below)
  image.json                versions and a description of each image
  jpg_exif<k>.jpg           EXIF orientation k (2..8): expected = ImageOps.exif_transpose (as diffusers'
                            load_image), and jpg_exif<k>_stored = the pixels as stored
  png_exif<k>.png           the same for PNG's eXIf chunk (k = 3, 6; written by Pillow)

PNGs are written by the small encoder below (numpy + zlib) so that every colour type, bit depth,
per-row filter choice and Adam7 interlacing is covered — Pillow's own writer emits only a few of
them. The expected pixels are always Pillow's decode. Pillow reduces 16-bit samples to 8 bits by
keeping the high byte for RGB/RGBA/LA, but clips "I;16" greyscale (v > 255 -> 255) in convert("L");
for 16-bit greyscale the expected value is Pillow's decoded 16-bit sample >> 8, the same high-byte
rule as the other 16-bit modes. Alpha is dropped, as convert("RGB") does (no compositing).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import torch

from _common import FIXTURES, reset_dir, save_tensors, write_json

OUT_DIR = FIXTURES / "image"
SEED = 6000

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _pack_rows(samples: np.ndarray, depth: int) -> list[bytes]:
    """samples: [h, w, c] ints -> unfiltered scanlines."""
    rows = []
    for row in samples:
        flat = row.reshape(-1)
        if depth == 16:
            rows.append(flat.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(flat.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            out = bytearray((len(flat) * depth + 7) // 8)
            for i, v in enumerate(flat):
                out[i // per] |= int(v) << (8 - depth * (i % per + 1))
            rows.append(bytes(out))
    return rows


def _filter_rows(rows: list[bytes], bpp: int, rng: np.random.Generator) -> bytes:
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for row in rows:
        ftype = int(rng.integers(0, 5))
        enc = bytearray(len(row))
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
            enc[i] = (row[i] - pred) & 0xFF
        out.append(ftype)
        out += enc
        prev = row
    return bytes(out)


def write_png(path, samples: np.ndarray, color: int, depth: int, interlace: bool, rng,
              palette: bytes | None = None, trns: bytes | None = None) -> None:
    h, w, c = samples.shape
    bpp = max(1, c * depth // 8)
    raw = bytearray()
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            raw += _filter_rows(_pack_rows(sub, depth), bpp, rng)
    else:
        raw += _filter_rows(_pack_rows(samples, depth), bpp, rng)
    png = b"\x89PNG\r\n\x1a\n"
    png += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += _chunk(b"PLTE", palette)
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    png += _chunk(b"tEXt", b"Comment\x00kinema image golden")  # an ancillary chunk to skip
    comp = zlib.compress(bytes(raw), 9)
    # Two IDAT chunks: the stream must be concatenated across them.
    half = len(comp) // 2
    png += _chunk(b"IDAT", comp[:half]) + _chunk(b"IDAT", comp[half:])
    png += _chunk(b"IEND", b"")
    path.write_bytes(png)


def _smooth(h: int, w: int, c: int, rng, scale: float = 255.0) -> np.ndarray:
    """A smooth colour field plus mild noise: realistic for JPEG (chroma subsampling stays accurate)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, c))
    for ch in range(c):
        fx, fy, ph = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3), rng.uniform(0, 6.28)
        out[..., ch] = 0.5 + 0.4 * np.sin(fx * xx + fy * yy + ph) + rng.normal(0, 0.03, (h, w))
    return np.clip(out * scale, 0, scale).round()


def run(versions: dict) -> list[str]:
    from PIL import Image
    import PIL

    reset_dir(OUT_DIR)
    rng = np.random.default_rng(SEED)
    expected: dict[str, torch.Tensor] = {}
    described: dict[str, str] = {}

    combos = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8),
              (4, 8), (4, 16), (6, 8), (6, 16)]
    for color, depth in combos:
        for interlace in (False, True):
            if interlace and (color, depth) not in ((0, 1), (0, 4), (0, 16), (2, 8), (2, 16), (3, 2), (4, 8), (6, 16)):
                continue
            h, w = (7, 13) if not interlace else (17, 33)
            c = CHANNELS[color]
            maxv = (1 << depth) - 1
            samples = rng.integers(0, maxv + 1, (h, w, c))
            palette = trns = None
            if color == 3:
                entries = min(1 << depth, 200)
                samples = rng.integers(0, entries, (h, w, 1))
                palette = rng.integers(0, 256, entries * 3).astype(np.uint8).tobytes()
                trns = rng.integers(0, 256, entries // 2).astype(np.uint8).tobytes()
            elif color == 0 and depth == 8:
                trns = struct.pack(">H", 17)
            elif color == 2 and depth == 16:
                trns = struct.pack(">HHH", 1, 2, 3)
            name = f"png_c{color}_d{depth}" + ("_i" if interlace else "")
            path = OUT_DIR / f"{name}.png"
            write_png(path, samples, color, depth, interlace, rng, palette, trns)
            with Image.open(path) as im:
                im.load()
                if color == 0 and depth == 16:
                    arr = (np.array(im).astype(np.int64) >> 8).astype(np.uint8)
                    rgb = np.repeat(arr[..., None], 3, axis=2)
                else:
                    rgb = np.array(im.convert("RGB"))
            assert rgb.shape == (h, w, 3), (name, rgb.shape)
            expected[name] = torch.from_numpy(rgb.copy())
            described[name] = f"PNG colour type {color}, depth {depth}, {'Adam7' if interlace else 'no'} interlace, {w}x{h}"

    jpegs = [
        ("jpg_444", "RGB", dict(quality=90, subsampling=0), (17, 33)),
        ("jpg_422", "RGB", dict(quality=85, subsampling=1), (17, 33)),
        ("jpg_420", "RGB", dict(quality=90, subsampling=2), (17, 33)),
        ("jpg_420_small", "RGB", dict(quality=75, subsampling=2), (7, 13)),
        ("jpg_gray", "L", dict(quality=90), (17, 33)),
        ("jpg_420_rst", "RGB", dict(quality=90, subsampling=2, restart_marker_blocks=2), (24, 40)),
        ("jpg_444_rst", "RGB", dict(quality=95, subsampling=0, restart_marker_rows=1), (17, 33)),
        ("jpg_progressive", "RGB", dict(quality=90, subsampling=2, progressive=True), (17, 33)),
    ]
    for name, mode, opts, (h, w) in jpegs:
        c = 3 if mode == "RGB" else 1
        src = _smooth(h, w, c, rng).astype(np.uint8)
        img = Image.fromarray(src if c == 3 else src[..., 0], mode)
        path = OUT_DIR / f"{name}.jpg"
        img.save(path, "JPEG", **opts)
        with Image.open(path) as im:
            rgb = np.array(im.convert("RGB"))
        expected[name] = torch.from_numpy(rgb.copy())
        described[name] = f"JPEG {mode} {w}x{h} saved by Pillow with {opts}"

    # EXIF orientations 2..8 on one small 4:4:4 JPEG: expected is what diffusers' load_image does,
    # ImageOps.exif_transpose then convert("RGB"); "<name>_stored" is the decode without transposing.
    from PIL import ImageOps
    src = _smooth(5, 9, 3, rng).astype(np.uint8)
    for value in range(2, 9):
        name = f"jpg_exif{value}"
        exif = Image.Exif()
        exif[0x0112] = value
        path = OUT_DIR / f"{name}.jpg"
        Image.fromarray(src, "RGB").save(path, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
        with Image.open(path) as im:
            expected[name] = torch.from_numpy(np.array(ImageOps.exif_transpose(im).convert("RGB")).copy())
        with Image.open(path) as im:
            expected[name + "_stored"] = torch.from_numpy(np.array(im.convert("RGB")).copy())
        described[name] = f"JPEG 9x5 4:4:4 with EXIF orientation {value}"

    # PNG carries EXIF in an eXIf chunk (raw TIFF, no "Exif\0\0" prefix); Pillow reads it and
    # exif_transpose applies it as for JPEG. Orientations 6 (rotate 90° clockwise) and 3 (180°).
    for value in (3, 6):
        name = f"png_exif{value}"
        exif = Image.Exif()
        exif[0x0112] = value
        path = OUT_DIR / f"{name}.png"
        Image.fromarray(src, "RGB").save(path, "PNG", exif=exif.tobytes())
        with Image.open(path) as im:
            expected[name] = torch.from_numpy(np.array(ImageOps.exif_transpose(im).convert("RGB")).copy())
        expected[name + "_stored"] = torch.from_numpy(src.copy())
        described[name] = f"PNG 9x5 RGB with an eXIf chunk, orientation {value}"

    save_tensors(OUT_DIR / "image.safetensors", expected, metadata={"producer": "image_goldens.py"})
    write_json(OUT_DIR / "image.json", {"versions": {**versions, "pillow": PIL.__version__}, "images": described})
    size = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    return [f"image: {len(expected)} images, {size} bytes in {OUT_DIR}"]
