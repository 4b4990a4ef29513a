"""hw3lib.images and one's own datasets: formats, bit depths, palettes, modes, sizes, layouts, advice."""
import errno
import functools
import io
import os
import re
import struct
import tempfile
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hw3lib import data, folders, images
from hw3lib.images import DataError
from conftest import peak_bytes
from datasets import make_root, write_png

# how each stored kind is written: Pillow mode, numpy dtype, file formats that keep it losslessly
KINDS = {"1": ("1", bool, ["PNG", "BMP", "TIFF"]), "L": ("L", np.uint8, ["PNG", "BMP", "TIFF", "GIF"]),
         "LA": ("LA", np.uint8, ["PNG", "TIFF"]), "RGB": ("RGB", np.uint8, ["PNG", "BMP", "TIFF"]),
         "RGBA": ("RGBA", np.uint8, ["PNG", "TIFF"]), "I;16": ("I;16", np.uint16, ["PNG", "TIFF"]),
         "P": ("P", np.uint8, ["PNG", "BMP", "GIF"])}
SUFFIX = {"PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}


def luma(rgb):
    """Pillow's ITU-R 601-2 luma of 8-bit ``rgb (..., 3)``, in [0, 255]."""
    return (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16


@st.composite
def stored_images(draw):
    """``(image, expected)``: a random Pillow image and its values as float RGBA ``(H, W, 4)``
    in [0, 1] (for grey: R = G = B), with ``expected_grey`` the "L" values, and the format."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    mode, dtype, formats = KINDS[kind]
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    channels = {"1": 1, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1, "P": 1}[kind]
    high = {bool: 2, np.uint8: 256, np.uint16: 65536}[dtype]
    if channels in (2, 4) and draw(st.booleans()):  # opaque alpha, or random
        pixels = rng.integers(0, high, (h, w, channels))
        pixels[..., -1] = 255
    else:
        pixels = rng.integers(0, high, (h, w, channels))
    if kind == "P":
        palette = rng.integers(0, 256, (256, 3))
        image = Image.frombytes("P", (w, h), pixels[..., 0].astype(np.uint8).tobytes())
        image.putpalette(palette.astype(np.uint8).ravel().tolist())
        rgb = palette[pixels[..., 0]]
        rgba, grey = np.concatenate([rgb, np.full((h, w, 1), 255)], -1) / 255, luma(rgb) / 255
    elif kind == "1":
        image = Image.fromarray(pixels[..., 0].astype(bool))
        g = pixels[..., 0].astype(float)
        rgba, grey = np.stack([g, g, g, np.ones_like(g)], -1), g
    elif kind == "I;16":
        image = Image.fromarray(pixels[..., 0].astype(np.uint16))
        g = pixels[..., 0] / 65535
        rgba, grey = np.stack([g, g, g, np.ones_like(g)], -1), g
    else:
        image = Image.fromarray(pixels.astype(np.uint8).squeeze(-1) if channels == 1 else
                                pixels.astype(np.uint8), mode)
        rgb = pixels[..., :3] if channels >= 3 else np.repeat(pixels[..., :1], 3, -1)
        alpha = pixels[..., -1:] if channels in (2, 4) else np.full((h, w, 1), 255)
        rgba = np.concatenate([rgb, alpha], -1) / 255
        grey = (luma(rgb) if channels >= 3 else pixels[..., 0]) / 255
    assert image.mode == mode
    return image, rgba, grey, draw(st.sampled_from(formats))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("property")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored_images(), st.sampled_from(list(images.MODES)),
       st.one_of(st.none(), st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_random_sizes_modes_and_bit_depths_load_exactly_or_raise_data_error(scratch, stored, mode, size):
    """Any image written in a random mode, bit depth, size and format either loads as the
    values written (converted to ``mode``; resized values stay within their range) or raises
    a DataError naming the file, and only for transparency that ``mode`` would drop."""
    image, rgba, grey, fmt = stored
    folder = Path(tempfile.mkdtemp(dir=scratch))
    path = folder / "Data_train" / "A" / f"x{SUFFIX[fmt]}"
    path.parent.mkdir(parents=True)
    image.save(path, format=fmt)
    transparent = rgba[..., 3].min() < 1
    try:
        X, y, classes = data.load_split(folder, "train", mode, image_size=size)
    except DataError as err:
        assert transparent and not mode.endswith("A") and "transparent pixels" in str(err)
        assert str(path) in str(err)
        return
    assert not (transparent and not mode.endswith("A"))
    want = {"L": grey[..., None], "LA": np.stack([grey, rgba[..., 3]], -1), "RGB": rgba[..., :3],
            "RGBA": rgba}[mode].transpose(2, 0, 1)
    assert X.dtype == np.float32 and y.tolist() == [0] and classes == ["A"]
    if size is None:
        colour_to_grey = mode in ("L", "LA") and image.mode in ("RGB", "RGBA", "P")
        np.testing.assert_allclose(X[0], want, rtol=0, atol=0.5 / 255 if colour_to_grey else 1e-6)
    else:
        assert X.shape == (1, len(mode), *size)
        lo, hi = want.min(axis=(1, 2)), want.max(axis=(1, 2))
        assert np.all(X[0] >= lo[:, None, None] - 1e-5) and np.all(X[0] <= hi[:, None, None] + 1e-5)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    """The issue's case: 16-bit PNGs, most values above 255, came out as 1.0 everywhere."""
    values = np.linspace(0, 65535, 32 * 32).astype(np.uint16).reshape(32, 32)
    for split in ("train", "test"):
        for name in "AB":
            (tmp_path / split / name).mkdir(parents=True)
            for image in ("x.png", "y.png"):  # two: one to train on, one to validate
                Image.fromarray(values).save(tmp_path / split / name / image)
    ds = data.load_dataset(tmp_path)
    X = np.concatenate([ds.X_train, ds.X_val])
    np.testing.assert_array_equal(X[0, 0], values.astype(np.float32) / 65535)
    assert (X == 1).mean() < 0.01 and len(np.unique(X)) == 1024


def png_bytes(pixels, colour_type, depth=16, transparent=()):
    """A PNG of a kind Pillow writes none of: ``pixels (H, W, C)`` at ``depth`` bits (1 to 16),
    with the grey or colour ``transparent`` (stored values: a PNG tRNS) when given."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    h, w = pixels.shape[:2]
    if depth < 8:  # each value's last `depth` bits, packed from the left of each row
        rows = [np.packbits(np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - depth:])
                for row in pixels.reshape(h, -1)]
    else:
        rows = [row.astype(">u2" if depth == 16 else np.uint8) for row in pixels]
    trns = chunk(b"tRNS", struct.pack(f">{len(transparent)}H", *transparent)) if transparent else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0))
            + trns + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + row.tobytes() for row in rows)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("mode, colour_type, channels", [("LA", 4, 2), ("RGB", 2, 3), ("RGBA", 6, 4)])
def test_16_bit_colour_and_grey_with_alpha_are_scaled_at_8_bit_precision(tmp_path, mode, colour_type,
                                                                          channels):
    """As the module docstring and README say: only 16-bit grey without alpha is read exactly."""
    pixels = np.random.default_rng(0).integers(0, 65536, (5, 7, channels))
    if mode.endswith("A"):
        pixels[..., -1] = 65535
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(pixels, colour_type))
    got = images.read_image(path, mode)
    np.testing.assert_allclose(got, pixels / 65535, rtol=0, atol=1 / 255)
    np.testing.assert_array_equal(got * 255, np.round(got * 255))  # 8-bit steps


def test_jpeg_files_load_by_either_name_and_a_renamed_one_is_named(tmp_path):
    ramp = np.add.outer(np.arange(20) * 4, np.arange(24) * 3)
    pixels = np.stack([ramp, ramp[::-1], 255 - ramp], -1).astype(np.uint8)  # smooth: JPEG keeps it
    make_root(tmp_path)
    for name in ("photo.jpg", "photo2.JPEG"):
        Image.fromarray(pixels).save(tmp_path / "Data_train" / "A" / name, format="JPEG", quality=95,
                                     subsampling=0)
    X, _, _ = data.load_split(tmp_path, mode="RGB", image_size=(20, 24))
    np.testing.assert_allclose(X[3], pixels.transpose(2, 0, 1) / 255, atol=8 / 255)  # lossy; after A_*
    Image.fromarray(pixels).save(tmp_path / "Data_train" / "B" / "B_train_0.png", format="JPEG")
    with pytest.raises(DataError, match=r"B_train_0.png is a JPEG file, but its name says PNG. "
                                        r"Fix: rename it to end in .jpg"):
        data.load_split(tmp_path, image_size=32)


@pytest.mark.parametrize("body, cause", [(b"", "is empty \\(0 bytes\\)"),
                                         (b"hello world", "is not an image file that hw3lib reads"),
                                         (b"\xff\xd8\xff\xe0 cut", "is a truncated or corrupt JPEG file")])
def test_empty_foreign_and_corrupt_files_say_so(tmp_path, body, cause):
    path = make_root(tmp_path) / "Data_train" / "A" / "z.jpg"
    path.write_bytes(body)
    with pytest.raises(DataError, match=f"z.jpg {cause}.* Fix: "):
        data.load_split(tmp_path)


@pytest.mark.parametrize("head, name", [(b"\0\0\0\x18ftypheic\0\0\0\0mif1", "HEIC"),
                                        (b"\0\0\0\x1cftypavif\0\0\0\0", "AVIF"),
                                        (b"P6\n8 8\n255\n", "Netpbm \\(PBM/PGM/PPM\\)"),
                                        (b"8BPS\0\x01", "Photoshop \\(PSD\\)")],
                         ids=["HEIC", "AVIF", "PPM", "PSD"])
def test_an_image_of_a_format_not_read_is_named_as_one_to_convert(tmp_path, head, name):
    """An iPhone's HEIC photo (named .jpg by some exports) was "not an image file", to "replace
    with the image"; in a class folder, under its own name, "convert it ... if it is an image"."""
    root = make_root(tmp_path)
    (root / "Data_train" / "A" / "IMG_1.jpg").write_bytes(head + bytes(64))
    with pytest.raises(DataError, match=f"IMG_1.jpg is an image in the {name} format, which hw3lib "
                                        "does not read .*Fix: convert it to PNG or JPEG, or remove it"):
        data.load_split(root)
    (root / "Data_train" / "A" / "IMG_1.jpg").rename(root / "Data_train" / "A" / "IMG_1.HEIC")
    with pytest.raises(DataError, match=f"IMG_1.HEIC.*Fix: it is an image in the {name} format, "
                                        "which hw3lib does not read: convert it to PNG or JPEG"):
        data.load_split(root)


def test_a_lab_colour_tiff_is_read_in_every_mode(tmp_path):
    """Pillow converts Lab only to RGB: in mode L such a TIFF was refused as a mode "Pillow cannot
    convert", in its words "conversion from LAB to RGB not supported". Its "A" band is no alpha:
    never called transparent."""
    path = tmp_path / "lab.tif"
    rgb = Image.fromarray(np.array([[[255, 0, 0], [0, 128, 255]]], np.uint8))  # its Lab "A": 81, 9
    rgb.convert("LAB").save(path)
    seen = Image.open(path).convert("RGB")
    for mode in images.MODES:
        np.testing.assert_array_equal(images.read_image(path, mode)[..., :3] * 255,
                                      np.asarray(seen.convert(mode), np.float32).reshape(1, 2, -1)[..., :3])


def test_a_file_pillow_cannot_identify_may_be_a_kind_it_lacks_not_only_corrupt(tmp_path):
    path = make_root(tmp_path) / "Data_train" / "A" / "half.tif"
    Image.fromarray(np.zeros((32, 32), np.uint16)).save(path, tiffinfo={339: 3})  # 16-bit floats
    with pytest.raises(DataError, match="half.tif is a truncated or corrupt TIFF file, or a kind of "
                                        "TIFF that Pillow does not read .*Fix: replace") as err:
        data.load_split(tmp_path)
    assert "BytesIO" not in str(err.value)


def test_an_image_over_pillows_pixel_limit_is_too_large_not_corrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32x32 = 1,024 pixels, over twice 100
    make_root(tmp_path)
    with pytest.raises(DataError, match=r"A_train_0.png is too large: 1,024 pixels, over the 200 that "
                                        r"Pillow reads .*Fix: downscale it"):
        data.load_split(tmp_path)


def test_an_image_under_twice_pillows_limit_loads_without_its_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 32x32 = 1,024 pixels, under twice 1,000
    monkeypatch.setattr(data, "MIN_THREADED_BYTES", 0)  # its small files on threads too
    make_root(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning, naming no file
        for threads in (1, 2):
            assert data.load_split(tmp_path, threads=threads)[0].shape == (6, 1, 32, 32)


def write_bad_exif(path: Path) -> None:
    """A 32x32 JPEG whose EXIF data Pillow warns about ("Corrupt EXIF data")."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    Image.new("L", (32, 32), 9).save(path, format="JPEG", exif=exif)
    body = bytearray(path.read_bytes())
    at = body.find(b"Exif\0\0") + 6
    body[at:at + 8] = b"II*\x00\xff\xff\xff\x7f"  # the first IFD far past the end of the file
    path.write_bytes(bytes(body))


def test_pillows_warnings_name_the_file_once_per_kind_for_a_folder(tmp_path):
    root = make_root(tmp_path)
    paths = [root / "Data_train" / c / "bad_exif.jpg" for c in "AB"]
    for path in paths:
        write_bad_exif(path)
    with pytest.warns(UserWarning) as caught:  # one line for the folder, not one per photo
        assert data.load_split(tmp_path)[0].shape == (8, 1, 32, 32)
    assert len(caught) == 1
    assert str(caught[0].message).startswith(f"{paths[0]} and 1 other file(s): Corrupt EXIF data")
    with pytest.warns(UserWarning) as caught:  # a file read alone: named at once
        images.read_image(paths[1], "L")
    assert len(caught) == 1 and str(caught[0].message).startswith(f"{paths[1]}: Corrupt EXIF data")


def test_pillows_warnings_on_threads_are_gathered_once_naming_the_first_file(tmp_path, monkeypatch):
    """Read on several threads at once, the warnings are caught by the thread that raised them
    (``warnings.catch_warnings`` is not thread-safe) and gathered in file order."""
    monkeypatch.setattr(data, "MIN_THREADED_BYTES", 0)
    root = make_root(tmp_path, n=30)
    for c in "AB":
        for i in range(0, 30, 3):
            write_bad_exif(root / "Data_train" / c / f"{c}_train_{i}.jpg")
            (root / "Data_train" / c / f"{c}_train_{i}.png").unlink()
    filters, show = list(warnings.filters), warnings.showwarning
    for threads in (1, *[2, 5] * 5):  # several times: which thread warns when varies
        with pytest.warns(UserWarning) as caught:
            assert data.load_split(tmp_path, threads=threads)[0].shape == (60, 1, 32, 32)
        assert len(caught) == 1, [str(w.message) for w in caught]
        assert str(caught[0].message).startswith(f"{root / 'Data_train/A/A_train_0.jpg'} and 19 other "
                                                 "file(s): Corrupt EXIF data")
    assert warnings.filters == filters and warnings.showwarning is show  # as they were
    with warnings.catch_warnings(record=True) as outside:  # warnings outside reading are shown
        warnings.simplefilter("always")
        with images.warnings_on_threads():
            warnings.warn("not Pillow's")
    assert [str(w.message) for w in outside] == ["not Pillow's"]


def test_overlapping_reads_on_two_threads_leave_the_warnings_filters_as_they_were():
    """Each read swapped the process's filters with its own catch_warnings: entered by two
    threads and left in the order entered, the second put back the first's ("always" and its
    router) for good."""
    filters, show = list(warnings.filters), warnings.showwarning
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with images.warnings_on_threads():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with images.warnings_on_threads():
            second_in.set()
            first_out.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert warnings.filters == filters and warnings.showwarning is show


def test_a_read_on_threads_honours_the_callers_warnings_filters_as_one_thread_does(tmp_path, monkeypatch):
    """While images were read on threads every warning passed the filters on every thread: a
    warning raised while reading, outside Pillow's decoding, that the caller ignored was shown,
    and one they made an error was only shown. Each filter gives what it gives on one thread."""
    monkeypatch.setattr(data, "MIN_THREADED_BYTES", 0)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's DecompressionBombWarning: dropped
    root = make_root(tmp_path, n=10)
    for i in range(0, 10, 3):
        write_bad_exif(root / "Data_train" / "A" / f"A_train_{i}.jpg")
        (root / "Data_train" / "A" / f"A_train_{i}.png").unlink()
    to_pixels = images.to_pixels

    def warning_to_pixels(im, mode, path):  # numpy's overflow, say, on the reading thread
        if path.name == "B_train_5.png":
            warnings.warn("while reading", RuntimeWarning)
        return to_pixels(im, mode, path)

    monkeypatch.setattr(images, "to_pixels", warning_to_pixels)

    def outcome(action, category, threads):
        """What the load gives and the warnings shown, Pillow's cause cut after its kind."""
        cut = functools.partial(re.sub, r"(EXIF data).*", r"\1")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter(action, category)
            try:
                data.load_split(tmp_path, threads=threads)
                result = "loaded"
            except Warning as err:
                result = cut(f"raised {type(err).__name__}: {err}")
        return result, [cut(str(w.message)) for w in caught]

    exif = f"{root / 'Data_train/A/A_train_0.jpg'} and 3 other file(s): Corrupt EXIF data"
    for action, category, expected in [
            ("ignore", RuntimeWarning, ("loaded", [exif])),
            ("error", RuntimeWarning, ("raised RuntimeWarning: while reading", [])),
            ("ignore", UserWarning, ("loaded", ["while reading"])),
            ("error", UserWarning, (f"raised UserWarning: {exif}", ["while reading"])),
            ("error", Image.DecompressionBombWarning, ("loaded", ["while reading", exif]))]:
        for threads in (1, 2, 5):
            assert outcome(action, category, threads) == expected, (action, category, threads)


def test_another_threads_warning_while_an_image_decodes_is_not_the_images(tmp_path, monkeypatch):
    """A training thread's warning (numpy's overflow, say) raised while the kernel's thread
    decoded an image was caught with the image's and issued naming its file."""
    path = tmp_path / "a.png"
    write_png(path)
    pillow_open = Image.open

    def open_while_another_warns(*args, **kwargs):
        other = threading.Thread(target=warnings.warn, args=("the training thread's",))
        other.start()
        other.join()
        return pillow_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", open_while_another_warns)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images.read_image(path, "L")
    assert [str(w.message) for w in caught] == ["the training thread's"]


def test_a_broken_symbolic_link_says_so(tmp_path):
    link = make_root(tmp_path) / "Data_train" / "A" / "gone.png"
    link.symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(DataError, match=r"gone.png is a broken symbolic link \(to .*elsewhere.png\)"):
        data.load_split(tmp_path)


def test_a_missing_file_says_to_check_the_path_not_its_permissions(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"^no file .*missing.png: check the path") as err:
        images.read_bytes(tmp_path / "missing.png")
    assert "cannot read" not in str(err.value) and "permissions" not in str(err.value)
    # a file that goes away between the folder's listing and its reading
    gone = make_root(tmp_path / "data") / "Data_train" / "A" / "A_train_2.png"
    os_open = images.os.open

    def vanishing(path, *args):
        if Path(path) == gone:
            gone.unlink()
        return os_open(path, *args)

    monkeypatch.setattr(images.os, "open", vanishing)
    with pytest.raises(DataError, match=r"no file .*A_train_2.png: check the path.*moved or deleted"):
        data.load_split(tmp_path / "data")


def test_a_named_pipe_or_device_is_refused_not_waited_on_or_read_without_end(tmp_path):
    """A FIFO named img.png (no writer: reading it would wait for ever), one without an image's
    name (sniffed for the advice), and /dev/zero linked as an image (read without end)."""
    root = make_root(tmp_path)
    os.mkfifo(root / "Data_train" / "A" / "img.png")
    with pytest.raises(DataError, match=r"img.png is a named pipe \(FIFO\), not an image file"):
        data.load_split(root)
    (root / "Data_train" / "A" / "img.png").unlink()
    os.mkfifo(root / "Data_train" / "A" / "img")
    with pytest.raises(DataError, match=r"unexpected file .*img: .*Fix: move it out"):
        data.load_split(root)
    (root / "Data_train" / "A" / "img").unlink()
    (root / "Data_train" / "A" / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(DataError, match=r"zero.png is a character device, not an image file"):
        data.load_split(root)


def test_a_huge_file_that_is_not_an_image_is_refused_from_its_first_bytes_not_read_whole(
        tmp_path, monkeypatch):
    """A disk image or video named .png (here 1 GiB of holes): refused from its first bytes,
    not read whole into memory first (gigabytes, or MemoryError, for a file larger than it)."""
    root = make_root(tmp_path)
    huge = root / "Data_train" / "A" / "huge.png"
    with open(huge, "wb") as f:
        f.truncate(2**30)
    read = []
    open_file = images.open_file

    def counted(path):
        f = open_file(path)
        real_read = f.read
        f.read = lambda size=-1: read.append(len(chunk := real_read(size))) or chunk
        return f

    monkeypatch.setattr(images, "open_file", counted)
    with pytest.raises(DataError, match=r"huge.png is not an image file that hw3lib reads"):
        images.read_image(huge, "L")
    assert sum(read) <= 16


def test_a_read_error_inside_an_image_is_named_as_one_not_as_corrupt_data(tmp_path, monkeypatch):
    path = tmp_path / "disk.png"
    Image.new("L", (16, 16)).save(path)

    class FailingDisk(io.BufferedReader):  # the first bytes read, then the disk fails
        def read(self, size=-1):
            if self.tell() >= 16:
                raise OSError(errno.EIO, "Input/output error")
            return super().read(size)

    monkeypatch.setattr(images, "open_file", lambda p: FailingDisk(io.FileIO(p)))
    with pytest.raises(DataError, match=r"cannot read .*disk.png: Input/output error\. Fix: make the file readable"):
        images.read_image(path, "L")


def test_junk_after_an_image_is_not_read(tmp_path):
    """An image followed by a GiB of anything (a file glued to another) was read whole first."""
    path = tmp_path / "glued.png"
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(path)
    with open(path, "ab") as f:
        f.truncate(path.stat().st_size + 2**30)
    pixels, peak = peak_bytes(lambda: images.read_image(path, "L"))
    np.testing.assert_array_equal(pixels[..., 0] * 255, np.arange(256).reshape(16, 16))
    assert peak < 2**20


def test_the_course_data_gets_course_advice_and_own_data_its_own(tmp_path):
    """A corrupt file listed in the manifest: restore or download. The same in one's own data:
    replace it, no download."""
    course, own = tmp_path / "course", tmp_path / "own"
    make_root(course, classes=("Carambula", "Lychee", "Pear"))
    bad = course / "Data_train" / "Carambula" / "Carambula_train_1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match="restore the original file.*python -m hw3lib download"):
        data.load_split(course)
    bad = make_root(own) / "Data_train" / "A" / "A_train_1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match="Fix: replace it with an intact copy, save it as an 8-bit "
                                        "PNG, or remove it.$"):
        data.load_split(own)
    assert folders.is_course_data(course) and not folders.is_course_data(own)


def test_other_image_names_are_read_and_other_files_refused(tmp_path):
    root = make_root(tmp_path)
    Image.new("RGB", (32, 32), (9, 9, 9)).save(root / "Data_train" / "A" / "w.webp", lossless=True)
    Image.new("L", (32, 32), 9).save(root / "Data_train" / "A" / "t.TIFF")
    X, _, _ = data.load_split(root)
    assert X.shape == (8, 1, 32, 32) and np.all(X[[3, 4], 0] == 9 / 255)  # after A_train_*: t, w
    (root / "Data_train" / "B" / "IMG_1.HEIC").write_bytes(b"\0")
    with pytest.raises(DataError, match="unexpected file .*IMG_1.HEIC.*convert it to PNG or JPEG"):
        data.load_split(root)
    (root / "Data_train" / "B" / "IMG_1.HEIC").unlink()
    Image.new("RGB", (32, 32)).save(root / "Data_train" / "B" / "photo.jfif", "JPEG")
    with pytest.raises(DataError, match="photo.jfif.*it is a JPEG image: rename it to end in .jpg"):
        data.load_split(root)
    (root / "Data_train" / "B" / "photo.jfif").rename(root / "Data_train" / "B" / "scan")
    Image.new("RGB", (32, 32)).save(root / "Data_train" / "B" / "scan", "WEBP")
    with pytest.raises(DataError, match="scan.*it is a WEBP image: rename it to end in .webp"):
        data.load_split(root)


def test_a_link_that_leads_nowhere_is_named_as_one_wherever_it_lies(tmp_path):
    root = make_root(tmp_path)
    scan = root / "Data_train" / "B" / "scan"
    scan.symlink_to(tmp_path / "gone")  # a dangling link, not named as an image
    with pytest.raises(DataError, match=f"{scan} is a broken symbolic link \\(to {tmp_path / 'gone'}\\). "
                                        "Fix: point it at an existing file or remove it"):
        data.load_split(root)
    scan.unlink()
    (root / "Data_train" / "C").symlink_to(root / "Data_train" / "C")  # a class folder in a loop
    with pytest.raises(DataError, match="Data_train/C is a symbolic link in a loop .*Fix: point it "
                                        "at an existing folder or remove it"):
        data.load_split(root)
    (root / "Data_train" / "C").unlink()
    (root / "Data_train" / "A" / "x.png").symlink_to("y.png")
    (root / "Data_train" / "A" / "y.png").symlink_to("x.png")
    with pytest.raises(DataError) as err:
        data.load_split(root)
    for name, target in (("x.png", "y.png"), ("y.png", "x.png")):
        assert (f"{root / 'Data_train' / 'A' / name} is a symbolic link in a loop (to {target}, which "
                "leads back to it). Fix: point it at an existing file or remove it.") in str(err.value)
    assert "broken" not in str(err.value)


def test_a_large_jpeg_to_be_resized_is_decoded_at_a_reduced_scale_with_its_orientation(tmp_path):
    """A phone's photo resized to 64x64 loaded 10 times slower when decoded whole first."""
    y, x = np.mgrid[0:480, 0:640]
    pixels = np.stack([x * 255 // 640, y * 255 // 480, (x + y) % 256], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to view: 480 wide, 640 high
    for fmt in ("JPEG", "PNG"):
        path = tmp_path / f"photo.{fmt.lower()}"
        Image.fromarray(pixels).save(path, fmt, exif=exif, quality=95)
        whole = images.decode_image(path)
        assert whole.size == (480, 640)
        # JPEG: 1/4 of each side keeps both at least 2 x 40: 120 x 160, turned; PNG, turned, then
        # whole factors that divide 480 and 640 keeping them 5 times 40 and 20: 2 and 5
        assert images.decode_image(path, size=(20, 40)).size == ((120, 160) if fmt == "JPEG" else (240, 128))
        assert images.decode_image(path, size=(100, 20)).size == ((240, 320) if fmt == "JPEG" else (120, 640))
        for mode in ("L", "RGB"):
            x = images.read_image(path, mode, (20, 40))
            full = images.resize(images.to_pixels(whole, mode, path), (20, 40))
            assert x.shape == (20, 40, len(mode)) and np.abs(x - full).max() < 3 / 255


def photo_like(height, width, seed=0):
    """uint8 RGB ``(height, width, 3)`` like a photo: smooth gradients, hard-edged shapes a
    pixel or two wide at the rim, and sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    pixels = np.stack([120 + 60 * np.sin(a * 6 * x + p) * np.cos(b * 6 * y) for a, b, p in rng.uniform(-1, 1, (3, 3))], -1)
    for _ in range(12):  # rectangles of a flat colour
        (y0, y1), (x0, x1) = np.sort(rng.integers(0, height, 2)), np.sort(rng.integers(0, width, 2))
        pixels[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    pixels = (pixels + np.roll(pixels, 1, 0) + np.roll(pixels, 1, 1)) / 3  # edges 2 pixels wide
    return np.clip(pixels + rng.normal(0, 4, pixels.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt, size, reduced", [("PNG", (28, 28), (10, 6)), ("BMP", (30, 20), (14, 6)),
                                                ("TIFF", (9, 13), (20, 20))])  # (across, down)
def test_a_large_image_of_another_format_is_shrunk_by_whole_factors_first_within_3_of_255(
        tmp_path, fmt, size, reduced):
    """A 12-megapixel PNG resized to 64x64 took a second: its float32 pixels, all of them, resized."""
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(photo_like(900, 1400)).save(path, fmt)
    whole = images.decode_image(path)
    assert images.decode_image(path, size=size).size == (1400 // reduced[0], 900 // reduced[1])
    for mode in ("L", "RGB"):
        full = images.resize(images.to_pixels(whole, mode, path), size)
        assert np.abs(images.read_image(path, mode, size) - full).max() < 3 / 255


@pytest.mark.parametrize("mode, size", [("RGB", (100, 100)), ("RGBA", (20, 20)), ("P", (20, 20))])
def test_a_small_image_or_one_of_other_modes_is_not_shrunk_first(tmp_path, mode, size):
    path = tmp_path / "image.png"
    Image.fromarray(photo_like(450, 500)).convert(mode).save(path)  # under 2 x 5 times 100
    whole = images.decode_image(path)
    assert images.decode_image(path, size=size).size == whole.size == (500, 450)
    channels = "RGBA" if mode == "RGBA" else "RGB"
    assert np.array_equal(images.read_image(path, channels, size),
                          images.resize(images.to_pixels(whole, channels, path), size))


def test_exif_orientation_is_applied(tmp_path):
    root = make_root(tmp_path)
    pixels = np.zeros((32, 32), np.uint8)
    pixels[0, :] = 255  # top row white; orientation 6 (rotate 90 clockwise to view)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(root / "Data_train" / "A" / "p.jpg", exif=exif, quality=100)
    X, _, _ = data.load_split(root)
    assert X[3, 0, :, -1].mean() > 0.9 and X[3, 0, 0, :].mean() < 0.6  # now the right column


@pytest.mark.parametrize("array, tags, kind", [
    (np.full((8, 8), 70000, np.int32), {}, "signed or 32-bit integer"),
    (np.full((8, 8), 5, np.uint16), {339: 2}, "signed or 32-bit integer"),  # int16: not called 32-bit
    (np.full((8, 8), 251, np.uint8), {339: 2}, "signed or 32-bit integer"),  # int8 -5: Pillow read 251
    (np.full((8, 8), 0.5, np.float32), {}, "32-bit floating-point")])
def test_signed_and_32_bit_images_are_refused(tmp_path, array, tags, kind):
    path = make_root(tmp_path) / "Data_train" / "A" / "deep.tif"
    Image.fromarray(array).save(path, tiffinfo=tags)
    with pytest.raises(DataError, match=f"deep.tif holds {kind} pixels.*8 or 16 bits"):
        data.load_split(tmp_path, image_size=32)


def test_a_16_bit_white_is_zero_tiff_is_read_as_its_grey_not_its_negative(tmp_path):
    """TIFF's photometric 0 (WhiteIsZero: 0 is white), which Pillow undoes for 8-bit grey but
    leaves as stored for 16-bit: a scan read as its photographic negative."""
    stored = np.array([[0, 1000, 65535]], np.uint16)
    path = tmp_path / "scan.tif"
    Image.fromarray(stored).save(path, tiffinfo={262: 0})
    # shown turned a quarter clockwise (EXIF orientation 6): the orientation is still applied
    Image.fromarray(stored).save(tmp_path / "turned.tif", tiffinfo={262: 0, 0x0112: 6})
    np.testing.assert_allclose(images.read_image(path, "L")[..., 0], 1 - stored / 65535, rtol=0, atol=1e-7)
    np.testing.assert_allclose(images.read_image(tmp_path / "turned.tif", "L")[..., 0],
                               1 - stored.T / 65535, rtol=0, atol=1e-7)


def test_transparency_is_kept_or_refused_never_dropped(tmp_path):
    path = make_root(tmp_path) / "Data_train" / "A" / "icon.png"
    Image.new("RGBA", (32, 32), (200, 0, 0, 0)).save(path)
    with pytest.raises(DataError, match=r"icon.png has transparent pixels .* TrainConfig\(mode='RGBA'\)"):
        data.load_split(tmp_path, mode="RGB")
    X, _, _ = data.load_split(tmp_path, mode="RGBA")
    assert np.all(X[3, 3] == 0) and np.all(X[[0, 1, 2, 4, 5, 6], 3] == 1)


def test_a_transparent_colour_counts_as_transparency(tmp_path):
    grey = Image.new("L", (32, 32), 7)
    grey.info["transparency"] = 7  # PNG tRNS: grey 7 is transparent
    grey.save(make_root(tmp_path) / "Data_train" / "A" / "key.png")
    with pytest.raises(DataError, match="key.png has transparent pixels"):
        data.load_split(tmp_path)
    X = data.load_split(tmp_path, mode="LA")[0]
    np.testing.assert_allclose(X[3], np.broadcast_to([[[7 / 255]], [[0]]], (2, 32, 32)), rtol=1e-6)


@pytest.mark.parametrize("depth, colour_type, key, others", [
    (2, 0, [1], [[0], [2], [3]]), (4, 0, [9], [[0], [8], [15]]),  # Pillow spreads these over 0-255
    (16, 2, [40000, 1000, 65535], [[0, 1000, 65535], [40000, 0, 0]])])  # and these to 8 bits, not tRNS
def test_a_transparent_colour_of_a_low_bit_grey_or_16_bit_colour_png_counts_as_transparency(
        tmp_path, depth, colour_type, key, others):
    """Their PNG tRNS value is stored at the pixels' depth, which Pillow's decoder rescales
    but leaves their transparent value as stored: the transparent pixels came out opaque, and
    were read in mode L without the refusal that any other transparent image gets."""
    step = 1 + len(others)  # every step-th pixel of a row is the key
    pixels = np.array([key, *others] * 4)[None].repeat(3, axis=0).reshape(3, 4 * step, -1)
    path = tmp_path / "key.png"
    path.write_bytes(png_bytes(pixels, colour_type, depth, transparent=key))
    with pytest.raises(DataError, match="key.png has transparent pixels"):
        images.read_image(path, "L")
    alpha = images.read_image(path, "RGBA")[..., 3]
    np.testing.assert_array_equal(alpha[:, ::step], 0)
    assert (alpha == 0).sum() == alpha[:, ::step].size  # and no other pixel


def test_read_image_takes_a_path_as_a_string_and_checks_its_mode_and_size_before_the_file(tmp_path):
    """A bad mode or size was blamed on the file ("stored in mode RGB, which Pillow cannot
    convert to rgb"; size=16: "a truncated or corrupt PNG file"), a str path failed inside."""
    path = tmp_path / "x.png"
    Image.new("RGB", (4, 6), (10, 20, 30)).save(path)
    assert images.read_image(str(path), "L").shape == (6, 4, 1)
    assert images.read_image(path, "RGB", 16).shape == images.read_image(path, "RGB", "16x16").shape == (16, 16, 3)
    with pytest.raises(ValueError, match=r"mode must be one of \['L', 'LA', 'RGB', 'RGBA'\], got 'rgb'"):
        images.read_image(path, "rgb")
    with pytest.raises(ValueError, match="image_size must be an integer S"):
        images.read_image(path, "L", 0)


@pytest.mark.parametrize("value, size", [(28, (28, 28)), ("64", (64, 64)), ("28x32", (28, 32)),
                                         ("28X32", (28, 32)), ([28, 32], (28, 32)), (None, None)])
def test_parse_image_size(value, size):
    assert images.parse_image_size(value) == size


@pytest.mark.parametrize("value", [0, -3, "0x4", "28x", "axb", "1x2x3", True, 2.5, (28, True), [1]])
def test_parse_image_size_refuses(value):
    with pytest.raises(ValueError, match="image_size must be"):
        images.parse_image_size(value)


def test_train_and_test_folders_any_size_and_many_classes(tmp_path):
    """The layout train/ and test/, 10 classes of 28x20 colour images, loaded as they are and
    resized."""
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for digit in range(10):
            for i in range(4):
                path = tmp_path / split / str(digit) / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (28, 20, 3), dtype=np.uint8)).save(path)
    ds = data.load_dataset(tmp_path, mode="RGB", val_fraction=0.25)
    assert ds.classes == [str(d) for d in range(10)] and ds.image_size == (28, 20)
    assert ds.X_train.shape == (30, 3, 28, 20) and ds.X_test.shape == (40, 3, 28, 20)
    assert data.load_dataset(tmp_path, image_size=16).X_test.shape == (40, 1, 16, 16)


def test_split_folder_errors_name_the_layout(tmp_path):
    make_root(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="holds both Data_train/ and train/"):
        data.load_split(tmp_path)
    own = tmp_path / "own"
    for name in ("cats", "dogs"):
        write_png(own / "train" / name / "0.png")
    with pytest.raises(DataError, match=r"no test split in .*own: neither .*Data_test/ nor .*test/ "
                                        r"exists \(it holds train\). Fix: .*one in five"):
        data.load_dataset(own)
    for name in ("cats", "dogs"):  # torchvision's ImageFolder layout: told where to move them
        write_png(tmp_path / "flat" / name / "0.png")
    (tmp_path / "flat" / "cats" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(DataError, match=r"no train split in \S+flat: it holds class folders of images "
                                        r"\(cats, dogs\) directly. Fix: move them into \S+flat/train/, "
                                        r"then move about one image in five of each class into "
                                        r"\S+flat/test/<class>/"):
        data.load_split(tmp_path / "flat")
    (tmp_path / "flat" / "Documents").mkdir()  # a home folder with some images is not taken for one
    with pytest.raises(DataError, match=r"neither .* exists \(it holds Documents, cats, dogs\)"):
        data.load_split(tmp_path / "flat")
    with pytest.raises(DataError, match=r"it is itself a split folder. Fix: give the folder that holds "
                                        r"it, .*own, as the dataset"):
        data.load_split(own / "train")


def test_a_split_folder_named_in_other_case_is_named_with_the_rename(tmp_path):
    for split in ("Train", "Test"):  # as many downloaded datasets name them
        for name in ("cats", "dogs"):
            write_png(tmp_path / "own" / split / name / "0.png")
    with pytest.raises(DataError, match=r"no train split in \S+own: it holds Train/, but the name must "
                                        r"be train/ \(folder names are case-sensitive\). Fix: rename "
                                        r"\S+own/Train to \S+own/train\."):
        data.load_dataset(tmp_path / "own")
    (tmp_path / "own" / "Train").rename(tmp_path / "own" / "train")
    (tmp_path / "own" / "Test").rename(tmp_path / "own" / "DATA_TEST")
    with pytest.raises(DataError, match=r"it holds DATA_TEST/, but the name must be Data_test/"):
        data.load_dataset(tmp_path / "own")


@pytest.mark.parametrize("name", ["val", "Validation", "Data_val"])
def test_a_validation_folder_beside_the_splits_is_refused_not_left_out(tmp_path, name):
    make_root(tmp_path)
    write_png(tmp_path / name / "A" / "0.png")
    with pytest.raises(DataError, match=rf"\S+/{name} would be left out: hw3lib reads only the train "
                                        r"and test splits.* Fix: move its images into \S+/Data_train's "
                                        r"class folders"):
        data.load_dataset(tmp_path)
    (tmp_path / name).rename(tmp_path / "notes")  # another folder: not a split, left alone
    assert data.load_dataset(tmp_path).classes == ["A", "B"]


def test_train_and_test_sizes_must_agree(tmp_path):
    make_root(tmp_path)
    for name in "AB":
        for i in range(3):
            write_png(tmp_path / "Data_test" / name / f"{name}_test_{i}.png", size=(28, 28))
    with pytest.raises(DataError, match=r"6 of 32x32 \(e.g. \S+/Data_train/A/A_train_0.png\), 6 of 28x28 "
                                        r"\(e.g. \S+/Data_test/A/A_test_0.png\). Fix: .*TrainConfig\(image_size='32x32'\)"):
        data.load_dataset(tmp_path)
    assert data.load_dataset(tmp_path, image_size=28).image_size == (28, 28)


def test_a_split_too_large_for_memory_asks_for_image_size(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_BYTES", 6 * 32 * 32 * 4 - 1)
    with pytest.raises(DataError, match=r"6 images of 32x32 pixels .* TrainConfig\(image_size=64\)"):
        data.load_split(make_root(tmp_path))
    assert data.load_split(tmp_path, image_size=8)[0].shape == (6, 1, 8, 8)
    read = []
    read_image = data.read_image  # what one reading thread calls
    monkeypatch.setattr(data, "read_image", lambda *a: read.append(a[0]) or read_image(*a))
    with pytest.raises(DataError, match=r"^6 images of 32x32 pixels"):  # its fix is the test split's too
        data.load_dataset(tmp_path, threads=1)
    assert read and all("Data_train" in str(path) for path in read)  # the test split not read for nothing


def test_a_transparent_grey_in_a_16_bit_image_is_kept_or_refused(tmp_path):
    raw = np.full((32, 32), 40 * 257, np.uint16)
    raw[:4] = 7
    path = make_root(tmp_path) / "Data_train" / "A" / "deep_key.png"
    image = Image.fromarray(raw)
    image.save(path, transparency=7)  # PNG tRNS of a 16-bit grey image: grey 7 is transparent
    assert Image.open(path).mode == "I;16" and Image.open(path).info["transparency"] == 7
    for mode in ("L", "RGB"):
        with pytest.raises(DataError, match=rf"deep_key.png has transparent pixels .* TrainConfig\(mode='{mode}A'\)"):
            data.load_split(tmp_path, mode=mode)
    X = data.load_split(tmp_path, mode="RGBA")[0][3]
    np.testing.assert_allclose(X[:3, :4], 7 / 65535, rtol=1e-6)
    np.testing.assert_allclose(X[:3, 4:], 40 / 255, rtol=1e-6)
    np.testing.assert_array_equal(X[3, :4], 0)
    np.testing.assert_array_equal(X[3, 4:], 1)


def test_a_folder_of_many_folders_given_as_the_dataset_is_named_in_one_short_line(tmp_path):
    """--data ~ (or /tmp) listed every folder it holds, a hundred names in one error line."""
    for i in range(100):
        (tmp_path / f"folder{i:03d}").mkdir()
    with pytest.raises(DataError) as err:
        data.load_split(tmp_path)
    assert "(it holds folder000, folder001, folder002, folder003, folder004 and 95 other folders)" \
        in str(err.value)
    assert len(str(err.value)) < 500


def test_an_image_is_held_once_as_float32_while_it_is_read(tmp_path):
    """A 12-megapixel photo took 144 MB as float32 RGB, and its scaling to [0, 1] as much again."""
    path = tmp_path / "photo.png"
    rgb = np.random.default_rng(0).integers(0, 256, (500, 400, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    pixels, peak = peak_bytes(lambda: images.read_image(path, "RGB"))
    assert peak < 1.5 * pixels.nbytes, f"read_image held {peak / pixels.nbytes:.1f} times the image"
    assert np.array_equal(pixels, rgb.astype(np.float32) / 255)
    _, peak = peak_bytes(lambda: images.read_image(path, "RGB", (8, 8)))
    assert peak < 1.5 * pixels.nbytes, f"read_image held {peak / pixels.nbytes:.1f} times the image"


def test_the_course_data_with_a_split_folder_in_other_case_is_named_with_the_rename(tmp_path):
    """The course's data said "folder .../Data_train does not exist. Fix: set HW3_DATA ...", of a
    copy holding its images as Data_Train/: a download beside it, not the rename."""
    write_png(tmp_path / "fruits" / "Data_Train" / "Pear" / "Pear_train_0.png")
    write_png(tmp_path / "fruits" / "Data_test" / "Pear" / "Pear_test_0.png")
    with pytest.raises(DataError, match=r"no train split in \S+fruits: it holds Data_Train/, but the name "
                                        r"must be Data_train/ \(folder names are case-sensitive\)"):
        data.load_dataset(tmp_path / "fruits")
