"""Orientation, colour and personal metadata told by an image's first bytes, and a copy of it
without that metadata whose pixels are the same bytes: the tests search the copies' bytes."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageCms

from backdrop_fn import images
from backdrop_fn.errors import InvalidImage
from backdrop_fn.image_metadata import (
    CleanImage,
    InputCondition,
    input_condition,
    metadata_free,
    srgb_profile,
)
from tests.unit.function import imagefixtures as fx


def head(data: bytes) -> bytes:
    return data[: images.HEAD_BYTES]


class BoundedSource(io.BytesIO):
    """An original that may only be read in pieces: the copy never holds the whole file."""

    largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None, "read() of the whole original"
        assert 0 <= size <= 256 * 1024, f"read({size})"
        BoundedSource.largest_read = max(BoundedSource.largest_read, size)
        return super().read(size)


def cleaned(data: bytes, *, tag_srgb: bool = True) -> CleanImage | None:
    return metadata_free(lambda: BoundedSource(data), len(data), tag_srgb=tag_srgb)


def cleaned_bytes(data: bytes, *, tag_srgb: bool = True) -> bytes:
    clean = cleaned(data, tag_srgb=tag_srgb)
    assert clean is not None
    with clean.open() as stream:
        copy = stream.read()
    assert len(copy) == clean.size
    return copy


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def jpeg_with_exif(tiff: bytes) -> bytes:
    plain = fx.encode(fx.picture(), "JPEG")
    return plain[:2] + b"\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\x00\x00" + tiff + plain[2:]


# --- What the first bytes say -------------------------------------------------------------------


def test_a_sideways_phone_photo_is_rotated_in_display_p3_with_gps_and_serials():
    condition = input_condition(head(fx.sideways_phone_photo()))

    assert condition.orientation == 6
    assert condition.colour_profile == "Display P3"
    assert set(condition.personal_metadata) >= {
        "GPS",
        "camera serial",
        "lens serial",
        "owner name",
        "maker note",
        "XMP",
        "comment",
    }
    assert condition.needs_decoding
    assert condition.needs_cleaning
    assert condition.reasons()[:3] == ["EXIF orientation 6", "ICC profile 'Display P3'", "comment"]


def test_a_clean_srgb_jpeg_needs_nothing():
    condition = input_condition(head(fx.clean_srgb_jpeg()))

    assert condition == InputCondition(orientation=1, colour_profile="srgb", personal_metadata=())
    assert not condition.needs_decoding
    assert not condition.needs_cleaning
    assert condition.reasons() == []


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_image_without_metadata_needs_nothing(fmt: str):
    condition = input_condition(head(fx.encode(fx.picture(), fmt)))

    assert condition == InputCondition(1, "none", ())


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("big_endian", [False, True])
def test_every_exif_orientation_is_read_in_either_byte_order(orientation: int, big_endian: bool):
    data = fx.encode(fx.picture(), "JPEG", exif=fx.phone_exif(orientation, big_endian=big_endian))

    condition = input_condition(head(data))

    assert condition.orientation == orientation
    assert condition.needs_decoding is (orientation != 1)
    assert {"GPS", "camera serial", "lens serial"} <= set(condition.personal_metadata)


def test_an_orientation_out_of_range_is_taken_as_upright():
    exif = Image.Exif()
    exif[0x0112] = 9

    assert input_condition(head(fx.encode(fx.picture(), "JPEG", exif=exif))).orientation == 1


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (srgb_profile, "srgb"),  # ICC v2, its description a 'desc'
        (fx.littlecms_srgb_profile, "srgb"),  # ICC v4, a 'mluc' saying "sRGB built-in"
        (fx.display_p3_profile, "Display P3"),
        (lambda: ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(), "Lab identity built-in"),
    ],
)
def test_a_profile_counts_as_srgb_when_its_description_says_so(profile, expected: str):
    data = fx.encode(fx.picture(), "JPEG", icc_profile=profile())

    condition = input_condition(head(data))

    assert condition.colour_profile == expected
    assert condition.needs_decoding is (expected != "srgb")


def test_a_profile_cut_into_several_jpeg_segments_is_put_back_together():
    big = fx.display_p3_profile() + b"\x00" * 150_000  # ICC tags may be followed by padding

    condition = input_condition(head(fx.encode(fx.picture(), "JPEG", icc_profile=big)))

    assert condition.colour_profile == "Display P3"


def test_png_exif_xmp_and_text_are_found():
    condition = input_condition(head(fx.png_with_exif_and_xmp()))

    assert {"GPS", "camera serial", "lens serial", "XMP", "text"} <= set(condition.personal_metadata)
    assert condition.needs_cleaning
    assert not condition.needs_decoding


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"icc_profile": fx.display_p3_profile()}, "Display P3"),  # a compressed iCCP chunk
        ({"icc_profile": srgb_profile()}, "srgb"),
    ],
)
def test_a_png_profile_is_inflated_and_read(options: dict, expected: str):
    assert input_condition(head(fx.encode(fx.picture(), "PNG", **options))).colour_profile == expected


def test_a_png_srgb_chunk_says_srgb():
    plain = fx.encode(fx.picture(), "PNG")

    tagged = plain[:33] + chunk(b"sRGB", b"\x00") + plain[33:]

    assert input_condition(tagged).colour_profile == "srgb"


@pytest.mark.parametrize(
    ("code_points", "expected"), [(b"\x01\x0d\x00\x01", "srgb"), (b"\x0c\x0d\x00\x01", "cICP 12/13")]
)
def test_png_colour_code_points_say_whether_it_is_srgb(code_points: bytes, expected: str):
    plain = fx.encode(fx.picture(), "PNG")

    tagged = plain[:33] + chunk(b"cICP", code_points) + plain[33:]

    assert input_condition(tagged).colour_profile == expected
    assert cleaned(tagged) is None  # already tagged: nothing to add


def test_a_png_chunk_claiming_more_than_two_gigabytes_is_unreadable_and_refused():
    plain = fx.encode(fx.picture(), "PNG")
    data = plain[:33] + struct.pack(">I", 0x80000000) + b"tEXt" + plain[33:]

    assert input_condition(data).personal_metadata == ("unreadable structure",)
    with pytest.raises(InvalidImage, match="damaged PNG"):
        cleaned(data)


@pytest.mark.parametrize("lossless", [False, True])
def test_webp_exif_and_xmp_chunks_are_read(lossless: bool):
    condition = input_condition(head(fx.webp_with_exif(lossless=lossless)))

    assert {"GPS", "camera serial", "XMP"} <= set(condition.personal_metadata)


def test_webp_exif_beyond_the_first_bytes_is_known_from_its_flags():
    data = fx.webp_with_exif(size=(400, 400), noisy=True, lossless=True)
    assert len(data) > images.HEAD_BYTES

    condition = input_condition(head(data))

    assert set(condition.personal_metadata) == {"EXIF (end of file)", "XMP"}
    assert condition.orientation == 1
    assert condition.needs_cleaning


def test_a_webp_profile_is_read():
    data = fx.encode(fx.picture(), "WEBP", icc_profile=fx.display_p3_profile())

    assert input_condition(head(data)).colour_profile == "Display P3"


def test_jpeg_segments_beyond_the_first_bytes_are_taken_as_personal_metadata():
    data = fx.sideways_phone_photo()

    condition = input_condition(data[:600])  # ends inside the EXIF segment

    assert "unread segments" in condition.personal_metadata


# --- Hostile bytes ----------------------------------------------------------------------------------


def test_an_exif_ifd_pointing_at_itself_is_read_once():
    # IFD0 at 8: one entry, the Exif IFD pointer, pointing at IFD0 again.
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<HHHII", 1, 0x8769, 4, 1, 8) + b"\x00" * 4

    condition = input_condition(jpeg_with_exif(tiff))

    assert condition.orientation == 1
    assert not condition.needs_decoding


def test_an_exif_ifd_claiming_65535_entries_reads_only_those_there():
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, 8, 0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 0xFFFF) + entry

    assert input_condition(jpeg_with_exif(tiff)).orientation == 8


@pytest.mark.parametrize(
    "tiff",
    [
        b"XX*\x00\x00\x00\x00\x08",  # no byte order
        b"II*\x00\xff\xff\xff\x7f",  # IFD0 far beyond the segment
        b"II*\x00" + struct.pack("<IHHHII", 8, 1, 0x8769, 4, 1, 0x7FFFFFFF),  # Exif IFD beyond it
    ],
)
def test_a_malformed_exif_is_reported_and_so_cleaned_away(tiff: bytes):
    data = jpeg_with_exif(tiff)

    condition = input_condition(data)

    assert condition.personal_metadata == ("unreadable EXIF",)
    assert b"Exif" not in cleaned_bytes(data, tag_srgb=False)


def test_a_png_profile_that_inflates_without_end_stops_at_its_bound():
    bomb = zlib.compress(b"\x00" * 200_000_000, 9)
    plain = fx.encode(fx.picture(), "PNG")

    data = plain[:33] + chunk(b"iCCP", b"bomb\x00\x00" + bomb) + plain[33:]

    assert input_condition(head(data)).colour_profile == "unreadable"


def test_a_profile_whose_description_points_outside_it_is_unreadable():
    profile = bytearray(srgb_profile())
    profile[132 + 4 : 132 + 8] = struct.pack(">I", 0x7FFFFFF0)  # the first tag's (desc) offset

    data = fx.encode(fx.picture(), "JPEG", icc_profile=bytes(profile))

    assert input_condition(data).colour_profile == "unreadable"


def test_a_jpeg_segment_longer_than_the_file_is_taken_as_unread():
    data = b"\xff\xd8\xff\xe1\xff\xff" + b"Exif\x00\x00" + b"\x00" * 100

    assert input_condition(data).personal_metadata == ("unread segments",)


FIXTURES = [
    fx.sideways_phone_photo(),
    fx.clean_srgb_jpeg(),
    fx.png_with_exif_and_xmp(),
    fx.webp_with_exif(),
    fx.webp_with_exif(lossless=True),
]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def damaged(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    damaged = bytearray(data[: max(3, len(data) - cut)])
    for position, value in flips:
        damaged[position % len(damaged)] = value
    return bytes(damaged)


@FUZZ
@given(
    st.sampled_from(FIXTURES),
    st.integers(0, 4000),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)
def test_damaged_images_never_make_the_reader_or_the_copy_raise_anything_else(
    data: bytes, cut: int, flips: list[tuple[int, int]]
):
    broken = damaged(data, cut, flips)

    assert isinstance(input_condition(broken), InputCondition)
    try:
        clean = metadata_free(lambda: io.BytesIO(broken), len(broken), tag_srgb=True)
    except InvalidImage:
        return
    if clean is not None:
        with clean.open() as stream:
            assert len(stream.read()) == clean.size


# --- The copy without metadata --------------------------------------------------------------------

WITH_METADATA = {
    "sideways phone photo": fx.sideways_phone_photo(),
    "big-endian EXIF": fx.encode(fx.picture(), "JPEG", exif=fx.phone_exif(1, big_endian=True)),
    "progressive JPEG with restarts": fx.with_comment(
        fx.encode(fx.picture((300, 200)), "JPEG", progressive=True, restart_marker_blocks=4)
    ),
    "PNG": fx.png_with_exif_and_xmp(),
    "WebP": fx.webp_with_exif(),
    "lossless WebP": fx.webp_with_exif(lossless=True),
    "WebP larger than the first bytes": fx.webp_with_exif(size=(400, 400), noisy=True, lossless=True),
}


@pytest.mark.parametrize("name", WITH_METADATA)
def test_no_gps_serial_or_xmp_survives_in_the_copy(name: str):
    original = WITH_METADATA[name]

    copy = cleaned_bytes(original)

    assert not [secret for secret in fx.SECRETS if secret in copy]
    exif = fx.decoded(copy).getexif()
    assert set(exif) <= {0x0112}  # an orientation at most
    assert not exif.get_ifd(0x8825)
    assert not exif.get_ifd(0x8769)
    assert "xmp" not in fx.decoded(copy).info
    assert not input_condition(head(copy)).needs_cleaning


@pytest.mark.parametrize("name", WITH_METADATA)
def test_the_copy_has_the_same_pixels_and_is_a_valid_file(name: str):
    original = WITH_METADATA[name]

    copy = cleaned_bytes(original)

    Image.open(io.BytesIO(copy)).verify()
    before, after = fx.decoded(original), fx.decoded(copy)
    assert (after.format, after.mode, after.size) == (before.format, before.mode, before.size)
    assert after.tobytes() == before.tobytes()
    assert ImageChops.difference(after.convert("RGB"), before.convert("RGB")).getbbox() is None


def test_the_copy_streams_the_same_bytes_each_time_and_never_reads_the_whole_original():
    original = fx.webp_with_exif(size=(400, 400), noisy=True, lossless=True)
    BoundedSource.largest_read = 0
    clean = cleaned(original)
    assert clean is not None

    with clean.open() as first, clean.open() as second:
        one = first.read()
        other = b"".join(iter(lambda: second.read(7), b""))

    assert one == other
    assert len(one) == clean.size
    assert 0 < BoundedSource.largest_read <= 256 * 1024


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_image_without_a_profile_is_tagged_srgb_when_asked(fmt: str):
    original = fx.encode(fx.picture(), fmt)

    copy = cleaned_bytes(original)

    assert input_condition(head(copy)).colour_profile == "srgb"
    info = fx.decoded(copy).info
    assert info.get("icc_profile") == srgb_profile() or "srgb" in info
    assert fx.decoded(copy).tobytes() == fx.decoded(original).tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_image_without_metadata_or_need_of_a_tag_is_left_as_it_is(fmt: str):
    assert cleaned(fx.encode(fx.picture(), fmt), tag_srgb=False) is None


def test_an_image_already_in_srgb_is_left_as_it_is():
    assert cleaned(fx.clean_srgb_jpeg()) is None


def test_the_copy_keeps_the_colour_profile_it_had():
    copy = cleaned_bytes(fx.sideways_phone_photo())

    assert fx.decoded(copy).info["icc_profile"] == fx.display_p3_profile()
    assert input_condition(head(copy)).colour_profile == "Display P3"


@pytest.mark.parametrize(
    ("mode", "lossless", "layout"),
    [("RGB", False, b"VP8 "), ("RGBA", True, b"VP8L"), ("RGBA", False, b"VP8X")],
)
def test_a_webp_is_given_the_extended_layout_to_carry_its_profile(mode: str, lossless: bool, layout: bytes):
    image = fx.picture()
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    original = fx.encode(image, "WEBP", lossless=lossless)
    assert original[12:16] == layout

    copy = cleaned_bytes(original)

    assert copy[12:16] == b"VP8X"
    assert copy[30:34] == b"ICCP"
    assert struct.unpack("<I", copy[4:8])[0] == len(copy) - 8
    assert bool(copy[20] & 0x10) is (mode == "RGBA")  # the alpha flag
    assert fx.decoded(copy).mode == fx.decoded(original).mode == mode
    assert fx.decoded(copy).tobytes() == fx.decoded(original).tobytes()


def test_webp_flags_and_riff_size_match_what_is_left_when_upright():
    copy = cleaned_bytes(fx.webp_with_exif(), tag_srgb=False)

    assert copy[20] & 0x0C == 0  # neither the EXIF nor the XMP flag
    assert struct.unpack("<I", copy[4:8])[0] == len(copy) - 8
    assert b"EXIF" not in copy
    assert b"XMP " not in copy


@pytest.mark.parametrize(
    ("original", "orientation"),
    [
        (fx.sideways_phone_photo(), 6),
        (fx.encode(fx.picture(), "JPEG", exif=fx.phone_exif(8, big_endian=True)), 8),
        (fx.png_with_exif_and_xmp(orientation=5), 5),
        (fx.webp_with_exif(3), 3),
        (fx.webp_with_exif(6, size=(400, 400), noisy=True, lossless=True), 6),
    ],
)
def test_the_copy_keeps_the_orientation_and_nothing_else_of_the_exif(original: bytes, orientation: int):
    clean = cleaned(original, tag_srgb=False)
    assert clean is not None
    copy = cleaned_bytes(original, tag_srgb=False)

    assert clean.orientation == orientation
    Image.open(io.BytesIO(copy)).verify()
    assert dict(fx.decoded(copy).getexif()) == {0x0112: orientation}
    assert not [secret for secret in fx.SECRETS if secret in copy]
    assert fx.decoded(copy).tobytes() == fx.decoded(original).tobytes()


def test_a_copy_of_an_upright_webp_has_no_exif_flag():
    clean = cleaned(fx.webp_with_exif(1), tag_srgb=False)
    assert clean is not None
    assert clean.orientation == 1
    copy = cleaned_bytes(fx.webp_with_exif(1), tag_srgb=False)

    assert copy[20] & 0x08 == 0
    assert b"EXIF" not in copy


def test_an_original_larger_than_its_size_says_is_refused():
    data = fx.png_with_exif_and_xmp()

    with pytest.raises(InvalidImage, match="changed"):
        metadata_free(lambda: io.BytesIO(data), len(data) - 100, tag_srgb=True)


def test_whatever_follows_a_jpeg_end_is_dropped():
    original = fx.clean_srgb_jpeg() + b"\xff\xd8\xff\xe1" + fx.GPS_DATUM.encode() * 10

    copy = cleaned_bytes(original)

    assert copy == fx.clean_srgb_jpeg()


def test_png_text_after_the_image_data_is_dropped():
    plain = fx.encode(fx.picture(), "PNG", icc_profile=srgb_profile())
    end = plain.rindex(b"IEND") - 4
    original = plain[:end] + chunk(b"tEXt", b"Comment\x00" + fx.COMMENT) + plain[end:]

    copy = cleaned_bytes(original)

    assert copy == plain


def test_a_grayscale_jpeg_is_not_tagged_with_an_rgb_profile():
    original = fx.with_comment(fx.encode(fx.picture().convert("L"), "JPEG"))

    copy = cleaned_bytes(original)

    assert b"ICC_PROFILE" not in copy
    assert fx.COMMENT not in copy


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_truncated_image_is_refused(fmt: str):
    data = fx.encode(fx.picture(), fmt, exif=fx.phone_exif())[:-20]

    with pytest.raises(InvalidImage, match="damaged"):
        cleaned(data)


def test_the_srgb_profile_is_one_littlecms_takes_for_srgb():
    ours = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
    theirs = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    image = Image.radial_gradient("L").resize((64, 64)).convert("RGB")
    image = Image.merge("RGB", (image.getchannel(0), image.getchannel(1).rotate(90), image.getchannel(2)))

    converted = ImageCms.profileToProfile(image, theirs, ours)

    assert ImageCms.getProfileDescription(ours).strip() == "sRGB (compact)"
    assert len(srgb_profile()) < 1024
    assert max(high for _, high in ImageChops.difference(converted, image).getextrema()) <= 1


def test_reading_and_cleaning_images_never_imports_pillow():
    script = (
        "import io, sys\n"
        "from backdrop_fn.image_metadata import input_condition, metadata_free\n"
        f"data = {fx.sideways_phone_photo()!r}\n"
        "input_condition(data)\n"
        "metadata_free(lambda: io.BytesIO(data), len(data), tag_srgb=True).open().read()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'PIL'))\n"
    )
    source = Path(__file__).parents[3] / "functions" / "replace_background"

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=source, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
