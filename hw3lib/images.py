"""One image file to pixels: its format, bit depth, palette and channel mode, and resizing.

:func:`read_image` turns a file into float32 pixels ``(H, W, C)`` in [0, 1] for one of the
channel modes of :data:`MODES`:

- **Formats**: PNG, JPEG, BMP, GIF, TIFF and WebP (the names of :data:`SUFFIXES`), recognised
  by their first bytes. A file whose bytes are of another format than its name says (a JPEG
  named ``.png``) is refused naming both; one of an image format not read (a phone's HEIC, a
  PSD: :func:`other_format`) naming that format, to convert. Animated GIFs and multi-page
  TIFFs give their first frame; a photo's EXIF orientation is applied, as image viewers do.
- **Bit depth**: 8-bit values are divided by 255, 16-bit grey values (Pillow mode ``I;16``)
  by 65535: exact, never clipped (Pillow's own ``convert("L")`` clips them at 255), and
  inverted where a TIFF stores them white-is-zero (which Pillow leaves as stored). Pillow
  reads 16-bit colour PNGs, and 16-bit grey PNGs with alpha, at 8-bit precision. Signed or 32-bit
  integer and floating-point images (modes ``I`` and ``F``, and signed 8-bit TIFFs, which Pillow
  reads as unsigned) have no known range and are refused.
- **Channels**: a palette image goes through its palette to RGB (RGBA when it has
  transparency) first, as does an image with a transparent colour (PNG ``tRNS``; in a 16-bit
  grey image, its pixels of that value get alpha 0; in a 16-bit colour one, read at 8 bits,
  those of its colour at 8 bits), and a Lab colour image to RGB (Pillow's only
  conversion of Lab). Colour becomes grey by Pillow's ITU-R 601-2 luma,
  ``L = 0.299 R + 0.587 G + 0.114 B``; grey becomes colour by repeating it; an image without
  alpha gets alpha 1. An image with transparent pixels is refused for a mode without alpha
  ("L", "RGB"), which would show whatever colour those pixels hide.
- **Resizing** (``size``): each channel is resized in float32 with Pillow's bilinear filter
  (``Image.resize(..., Image.Resampling.BILINEAR)``, which averages every covered source pixel
  when shrinking), stretched to ``(H, W)``: the aspect ratio is not kept. A JPEG four or more
  times that size is first decoded at a reduced scale (1/2, 1/4 or 1/8: libjpeg's DCT
  scaling, Pillow's ``Image.draft``) that keeps it at least twice the size: a 12-megapixel photo
  resized to 64x64 loads 10 times as fast, its pixels within 3/255 of a full decode's. Another
  8-bit grey or RGB image is first shrunk by the largest whole factor per side that divides it
  and keeps it :data:`REDUCE_MARGIN` times the size (block means, Pillow's ``Image.reduce``):
  a 12-megapixel PNG loads 2 times as fast (its decompression is the rest), a BMP 6 times, its
  pixels within 3/255 too.

Errors are :class:`DataError` naming the file, its cause and a fix.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .checks import dead_link, is_int

MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}  # Pillow mode -> number of channels C


def check_mode(mode):
    """ValueError unless ``mode`` is one of :data:`MODES` (a list or dict is refused so too,
    not failed as unhashable)."""
    if not (isinstance(mode, str) and mode in MODES):
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
# file name ending -> format; the first ending of each format is the one to rename a file to
SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF",
            ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"GIF87a": "GIF",
              b"GIF89a": "GIF", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
READABLE = ", ".join(sorted(set(SUFFIXES.values())))  # the formats read, for messages
# the first bytes of image formats that hw3lib does not read -> their names, so such a file is named
# an image to convert, not "not an image" (a HEIF's or AVIF's brand follows "ftyp": see other_format)
OTHER_SIGNATURES = {b"8BPS": "Photoshop (PSD)", b"\x00\x00\x01\x00": "Windows icon (ICO)",
                    b"\xffO\xffQ": "JPEG 2000", b"\x00\x00\x00\x0cjP  \r\n\x87\n": "JPEG 2000",
                    b"\xff\n": "JPEG XL", b"\x00\x00\x00\x0cJXL \r\n\x87\n": "JPEG XL", b"qoif": "QOI"}
HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"hevc": "HEIC",
               b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}
TIFF_PHOTOMETRIC = 262  # the TIFF tag saying what a grey pixel's value means (0: WhiteIsZero)
TIFF_SAMPLE_FORMAT = 339  # the TIFF tag saying how values are stored (2: signed integers)
RESAMPLE = Image.Resampling.BILINEAR
# an 8-bit grey or RGB image other than a JPEG, to be resized, is first shrunk by whole factors
# while each side stays at least this many times its size: within 3/255 of the pixels resized whole
REDUCE_MARGIN = 5


class DataError(Exception):
    """A dataset file or folder is missing, unreadable, malformed, or fails its checksum."""


def parse_image_size(value) -> tuple[int, int] | None:
    """``(H, W)`` from ``None`` (no resizing), an int ``S`` (``S x S``), ``"H"``, ``"HxW"`` or
    a pair; ValueError unless both are integers >= 1."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = [int(part) for part in value.lower().split("x")]
        elif is_int(value):
            parts = [int(value)]
        elif len(value) == 2 and all(is_int(part) for part in value):
            parts = [int(part) for part in value]
        else:
            parts = []
        if len(parts) == 1:
            parts *= 2
        if len(parts) == 2 and min(parts) >= 1:
            return parts[0], parts[1]
    except (TypeError, ValueError):
        pass
    raise ValueError(f"image_size must be an integer S (S x S pixels) or 'HxW' with H, W >= 1, "
                     f"e.g. 32 or 28x28, got {value!r}")


# what a path that is neither a regular file nor a folder is (its st_mode's S_IFMT)
SPECIAL_FILES = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFSOCK: "a socket",
                 stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def open_file(path: Path):
    """``path`` opened for reading in binary; DataError as :func:`read_bytes` says. A named pipe,
    socket or device (``/dev/zero`` linked as ``img.png``) is refused before it is read, never
    waited on (a pipe without a writer) or read without end."""
    try:
        # O_NONBLOCK: a named pipe without a writer opens at once, to be refused below
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # which a socket gives
            raise _unreadable(path, exc) from (None if exc.errno in (errno.ENOENT, errno.EISDIR) else exc)
        mode = os.stat(path).st_mode
    else:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            return os.fdopen(fd, "rb")
        os.close(fd)
    if stat.S_ISDIR(mode):
        raise DataError(f"{path} is a folder, not an image file. Fix: give the paths of image "
                        "files (e.g. those in it, sorted(Path(folder).iterdir())).")
    raise DataError(f"{path} is {SPECIAL_FILES.get(stat.S_IFMT(mode), 'a special file')}, not an "
                    "image file. Fix: replace it with the image file, or remove it.")


def _unreadable(path: Path, exc: OSError) -> DataError:
    """The DataError for ``path`` that could not be opened or read (``exc``): a broken symbolic
    link or one in a loop, a missing file, or a file it may not read."""
    if dead := dead_link(path):
        return DataError(f"{path} is {dead}. Fix: point it at an existing file or remove it.")
    if isinstance(exc, FileNotFoundError):
        return DataError(f"no file {path}: check the path (a file of a folder being read may have "
                         "been moved or deleted meanwhile). Fix: give an existing file's path, "
                         "or read the folder again.")
    return DataError(f"cannot read {path}: {exc.strerror or exc}. "
                     "Fix: make the file readable (check its permissions) or replace it.")


def read_bytes(path: Path) -> bytes:
    """The file's bytes; DataError for a broken symbolic link, a missing file (moved or deleted
    since its folder was listed, or a wrong path), a folder, a named pipe, socket or device
    (:func:`open_file`) or an unreadable file."""
    with open_file(path) as f:
        return _read(f, path)


def _read(f, path: Path, size: int = -1) -> bytes:
    """Up to ``size`` bytes (-1: all the rest) of ``f``, the file opened at ``path``; DataError
    when they cannot be read."""
    try:
        return f.read(size)
    except OSError as exc:
        raise _unreadable(path, exc) from exc


def rename_suffix(fmt: str) -> str:
    """The ending to rename a file of format ``fmt`` (a value of :data:`SUFFIXES`) to."""
    return next(suffix for suffix, each in SUFFIXES.items() if each == fmt)


def sniff(body: bytes) -> str | None:
    """The image format (a value of :data:`SUFFIXES`) that ``body`` starts with, or None."""
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for sig, fmt in SIGNATURES.items() if body.startswith(sig)), None)


def other_format(head: bytes) -> str | None:
    """The name of the image format hw3lib does not read that ``head`` (a file's first 16 bytes)
    starts with: HEIC/HEIF/AVIF (phones' photos), PSD, ICO, JPEG 2000, JPEG XL, QOI, or a
    Netpbm image (PBM/PGM/PPM); None for any other."""
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return HEIF_BRANDS[head[8:12]]
    if re.match(rb"P[1-6]\s", head):
        return "Netpbm (PBM/PGM/PPM)"
    return next((name for sig, name in OTHER_SIGNATURES.items() if head.startswith(sig)), None)


# {(category, message): [paths]} of Pillow's warnings inside warnings_gathered(), else None
_GATHERED = contextvars.ContextVar("hw3lib_image_warnings", default=None)
# on a thread while decode_image decodes, the list it catches warnings into, else None
_THREAD_CAUGHT = contextvars.ContextVar("hw3lib_thread_warnings", default=None)
# warnings_on_threads' hold on the process's filters: [its catch_warnings, threads within it]
_ROUTING_LOCK = threading.Lock()
_ROUTING = [None, 0]


class _Decoding(type):
    """The metaclass of :class:`_WhileDecoding`."""

    def __subclasscheck__(cls, category):
        return _THREAD_CAUGHT.get() is not None


class _WhileDecoding(Warning, metaclass=_Decoding):
    """As a warnings filter's category, every warning raised on a thread while
    :func:`decode_image` decodes there (:func:`_caught_warnings`), and none other."""


@contextlib.contextmanager
def warnings_gathered():
    """Within it, Pillow's warnings about the files :func:`decode_image` reads are gathered,
    and issued at the end once per kind, naming the first file and counting the others: a
    folder of photos from one camera with an EXIF quirk gives one line, not one per photo.
    Nested in another, it gathers into the outer one."""
    if _GATHERED.get() is not None:
        yield
        return
    gathered = {}
    token = _GATHERED.set(gathered)
    try:
        yield
    finally:
        _GATHERED.reset(token)
    for (category, message), paths in gathered.items():
        others = f" and {len(paths) - 1} other file(s)" if len(paths) > 1 else ""
        warnings.warn(f"{paths[0]}{others}: {message}", category, stacklevel=3)


@contextlib.contextmanager
def warnings_on_threads():
    """Within it, images may be read on other threads (:func:`read_on_thread`); entered by the
    thread that starts them. ``warnings.catch_warnings`` swaps the process's filters and is not
    safe on several threads at once (two overlapping reads left the process with the first
    one's filters); instead, while any thread is within this, a warning raised on a thread
    while it decodes an image passes the filters and goes to that thread's own list (a filter
    for :class:`_WhileDecoding` comes first); any other meets the caller's filters, on every
    thread, as on one. The first thread in adds that filter, the last out puts them back."""
    with _ROUTING_LOCK:
        if not _ROUTING[1]:
            catcher = warnings.catch_warnings()
            catcher.__enter__()
            warnings.simplefilter("always", _WhileDecoding)
            warnings.showwarning = _router(warnings.showwarning)
            _ROUTING[0] = catcher
        _ROUTING[1] += 1
    try:
        yield
    finally:
        with _ROUTING_LOCK:
            _ROUTING[1] -= 1
            if not _ROUTING[1]:
                _ROUTING[0].__exit__(None, None, None)


def _router(show):
    """A ``warnings.showwarning`` that puts a warning raised within :func:`_caught_warnings` in
    its list, and shows any other with ``show``."""
    def route(message, category, filename, lineno, file=None, line=None):
        caught = _THREAD_CAUGHT.get()
        if caught is None:
            show(message, category, filename, lineno, file, line)
        else:
            caught.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
    return route


def read_on_thread(path: str | os.PathLike, mode: str, size=None, fix: str | None = None):
    """:func:`read_image` on a thread within :func:`warnings_on_threads`: ``(pixels or the
    DataError, warnings)``, ``warnings`` Pillow's about the file for :func:`gather_warnings`,
    called by the thread that started it in file order, so that the file a warning names first
    is the first in order, whichever thread finished first."""
    gathered = {}
    token = _GATHERED.set(gathered)
    try:
        return read_image(path, mode, size, fix), gathered
    except DataError as err:
        return err, gathered
    finally:
        _GATHERED.reset(token)


def gather_warnings(gathered: dict) -> None:
    """Pillow's warnings that :func:`read_on_thread` returned, gathered as :func:`decode_image`
    gathers them (issued naming their file outside :func:`warnings_gathered`)."""
    for (category, message), paths in gathered.items():
        for path in paths:
            _report(path, category, message)


def _report(path: Path, category, message: str) -> None:
    """Pillow's warning ``message`` about ``path`` gathered within :func:`warnings_gathered`, else
    issued naming the file (from :func:`decode_image`, attributed to its caller)."""
    gathered = _GATHERED.get()
    if gathered is None:
        warnings.warn(f"{path}: {message}", category, stacklevel=4)
    else:
        gathered.setdefault((category, message), []).append(path)


@contextlib.contextmanager
def _caught_warnings():
    """The list of the warnings (``warnings.WarningMessage``) raised on this thread within it,
    whatever the filters (:func:`warnings_on_threads`): another thread's, reading or training
    meanwhile, are not this image's."""
    caught = []
    with warnings_on_threads():
        token = _THREAD_CAUGHT.set(caught)
        try:
            yield caught
        finally:
            _THREAD_CAUGHT.reset(token)


def decode_image(path: Path, fix: str | None = None,
                 size: tuple[int, int] | None = None) -> Image.Image:
    """Read and fully decode one image file as stored (EXIF orientation applied, first frame);
    a JPEG to be resized to ``size`` ``(H, W)`` at the smallest of its reduced scales that
    keeps it at least twice that size either way up, another shrunk by whole factors
    (:func:`_reduced`; see the module docstring).
    Pillow's warnings about it (corrupt EXIF data, say) are issued again naming ``path`` (or
    gathered, inside :func:`warnings_gathered`); its warning about an image between its pixel
    limit and twice that, which is read, is not.

    DataError names ``path`` and the cause: empty, not an image, of another format than its
    name, too large for Pillow, truncated or corrupt; ``fix`` (one sentence) replaces the advice
    that goes with it.
    """
    expected = SUFFIXES.get(path.suffix.lower())
    with open_file(path) as f:  # the rest is read only by Pillow, behind an image's first bytes:
        head = _read(f, path, 16)  # a 50 GB file of something else, named .png, is refused at once,
        found = sniff(head)  # and junk after an image's end is never read
        if found is not None and expected in (None, found):
            f.seek(0)
            try:
                return _decode(f, path, found, size)
            except Image.DecompressionBombError as exc:  # "Image size (N pixels) exceeds limit of ..."
                pixels = int(re.search(r"\d+", str(exc))[0])
                cause = (f"{path} is too large: {pixels:,} pixels, over the {2 * Image.MAX_IMAGE_PIXELS:,} "
                         "that Pillow reads (its guard against decompression bombs)")
                advice = "downscale it (a few thousand pixels a side at most) or remove it"
            except Image.UnidentifiedImageError:  # corrupt, or a variant Pillow lacks
                cause = (f"{path} is a truncated or corrupt {found} file, or a kind of {found} that "
                         "Pillow does not read (a bit depth, sample format or compression it lacks)")
                advice = "replace it with an intact copy, save it as an 8-bit PNG, or remove it"
            except Exception as exc:  # Pillow reports corrupt data with many exception types
                if isinstance(exc, OSError) and exc.errno is not None:  # not Pillow's: unreadable
                    raise _unreadable(path, exc) from exc
                cause = f"{path} is a truncated or corrupt {found} file ({type(exc).__name__}: {exc})"
                advice = "replace it with an intact copy or remove it"
        elif not head:
            cause, advice = f"{path} is empty (0 bytes)", "replace it with the image or remove it"
        elif other := other_format(head):
            cause = (f"{path} is an image in the {other} format, which hw3lib does not read "
                     f"(it reads {READABLE})")
            advice = "convert it to PNG or JPEG, or remove it"
        elif found is None:
            cause = (f"{path} is not an image file that hw3lib reads (it starts with {head[:8]!r}; "
                     f"readable: {READABLE})")
            advice = "replace it with the image, or remove it"
        else:
            cause = f"{path} is a {found} file, but its name says {expected}"
            advice = f"rename it to end in {rename_suffix(found)} ({found} is read too)"
    raise DataError(f"{cause}. {fix or f'Fix: {advice}.'}")


def _decode(f, path: Path, found: str, size: tuple[int, int] | None) -> Image.Image:
    """:func:`decode_image`'s image from the open file ``f`` of format ``found``, its Pillow
    warnings issued again naming ``path`` (or gathered); Pillow's errors raised as they come."""
    with _caught_warnings() as caught:
        im = Image.open(f, formats=[found])
        if found == "PNG" and "transparency" in im.info:
            im.info["transparency"] = _png_transparency(im)
        if size is not None:  # a bound for both sides, before the EXIF rotation
            im.draft(im.mode, (2 * max(size),) * 2)  # only JPEG's loader takes a draft
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        if found == "TIFF":
            im = _tiff_corrected(im)
        if size is not None and found != "JPEG":
            im = _reduced(im, size)
    for warning in caught:  # Pillow's name no file ("Corrupt EXIF data")
        if not issubclass(warning.category, Image.DecompressionBombWarning):  # under 2x: read
            _report(path, warning.category, str(warning.message))
    return im


def _tiff_corrected(im: Image.Image) -> Image.Image:
    """The loaded TIFF ``im`` as its file means it where Pillow reads it otherwise: 16-bit grey
    stored white-is-zero (photometric 0: 0 is white), which Pillow inverts only at 8 bits or
    fewer, inverted; signed 8-bit grey, which Pillow reads as unsigned ("L": -1 as 255), in mode
    ``I``, which :func:`to_pixels` refuses as it does Pillow's other signed images; any other as
    it is."""
    if im.mode.startswith("I;16") and im.tag_v2.get(TIFF_PHOTOMETRIC) == 0:
        return Image.fromarray(65535 - np.asarray(im, dtype=np.uint16))
    if im.mode == "L" and 2 in im.tag_v2.get(TIFF_SAMPLE_FORMAT, ()):  # 2: signed integers
        return im.convert("I")
    return im


def _png_transparency(im: Image.Image):
    """The transparent grey or colour (tRNS) of the PNG ``im``, not yet loaded, at the scale of
    the pixels Pillow decodes: it keeps the value as stored, but spreads 2- and 4-bit grey pixels
    over 0-255 and reads 16-bit colour at 8 bits (its high byte), so that none of them matched."""
    value, rawmode = im.info["transparency"], im.tile[0][3]
    if rawmode in ("L;2", "L;4"):
        return value * 255 // (2 ** int(rawmode[2]) - 1)
    return tuple(v >> 8 for v in value) if rawmode == "RGB;16B" else value


def _reduced(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``im`` (8-bit grey or RGB, no transparent colour) shrunk by a whole factor per side that
    divides it (Pillow's ``Image.reduce``: block means), the largest that keeps the side at least
    :data:`REDUCE_MARGIN` times ``size`` ``(H, W)``'s; any other image as it is."""
    if im.mode not in ("L", "RGB") or "transparency" in im.info:
        return im
    factors = tuple(max((k for k in range(2, side // (REDUCE_MARGIN * target) + 1) if side % k == 0), default=1)
                    for side, target in zip(im.size, size[::-1]))
    return im.reduce(factors) if factors != (1, 1) else im


class TransparentPixels(DataError):
    """An image has transparent pixels, which the channel mode it is read in would drop."""


def _refuse_dropped_alpha(path: Path, mode: str, lowest: int) -> None:
    """:class:`TransparentPixels` when ``mode`` has no alpha and the image at ``path`` has
    transparent pixels (its ``lowest`` alpha, of 255, below 255)."""
    if lowest < 255 and not mode.endswith("A"):
        raise TransparentPixels(f"{path} has transparent pixels (alpha down to {lowest} of 255), which "
                        f"mode {mode} would drop. Fix: keep the alpha with TrainConfig(mode='{mode}A'), "
                        "or flatten the image.")


def to_pixels(im: Image.Image, mode: str, path: Path) -> np.ndarray:
    """float32 ``(H, W, C)`` in [0, 1] of ``im`` in ``mode`` (a key of :data:`MODES`), converted
    as the module docstring says; DataError (naming ``path``) where that would corrupt it."""
    if im.mode.startswith("I;16"):
        raw = np.asarray(im)
        grey, alpha = raw.astype(np.float32) / 65535, np.ones(raw.shape, np.float32)
        if "transparency" in im.info:  # PNG tRNS: one grey value is transparent
            alpha[raw == im.info["transparency"]] = 0
            _refuse_dropped_alpha(path, mode, lowest=255 * int(alpha.min()))
        channels = [grey] * (3 if mode.startswith("RGB") else 1)
        return np.stack(channels + [alpha] * mode.endswith("A"), axis=-1)
    if im.mode in ("I", "F"):
        kind = "signed or 32-bit integer" if im.mode == "I" else "32-bit floating-point"  # I: int16 too
        raise DataError(f"{path} holds {kind} pixels, whose range is unknown. Fix: save it with "
                        "8 or 16 bits per channel, unsigned.")
    if im.mode == "LAB":  # a Lab colour TIFF (Photoshop's): Pillow converts it to RGB alone
        im = im.convert("RGB")
    if im.mode in ("P", "PA") or "transparency" in im.info:  # a palette, or a transparent colour
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    if im.mode in ("LA", "La", "RGBA", "RGBa"):
        _refuse_dropped_alpha(path, mode, lowest=im.getchannel("A").getextrema()[0])
    try:
        pixels = np.asarray(im.convert(mode), dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"{path} is stored in mode {im.mode}, which Pillow cannot convert to "
                        f"{mode} ({exc}). Fix: save it as 8-bit grey or RGB.") from None
    pixels = pixels.reshape(im.height, im.width, -1)
    pixels /= 255  # in place: a photo's float32 pixels are held once, not twice
    return pixels


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``pixels`` float32 ``(H, W, C)`` resized to ``size`` ``(H', W')`` with :data:`RESAMPLE`
    (values stay within the input's range)."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c]))
                                .resize(size[::-1], RESAMPLE)) for c in range(pixels.shape[2])], axis=-1)


def read_image(path: str | os.PathLike, mode: str, size=None, fix: str | None = None) -> np.ndarray:
    """One image file as float32 ``(H, W, C)`` in [0, 1], ``C = MODES[mode]``, resized to
    ``size`` (``S`` or ``(H, W)``: :func:`parse_image_size`) when given. DataError names the
    file and the cause; ``fix`` replaces the advice for a problem with the file itself
    (:func:`decode_image`); ValueError for a bad ``mode`` or ``size``, before the file is read."""
    check_mode(mode)
    path, size = Path(path), parse_image_size(size)
    pixels = to_pixels(decode_image(path, fix, size), mode, path)
    return pixels if size is None else resize(pixels, size)
