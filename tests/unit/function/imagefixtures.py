"""Images with the metadata real cameras and phones write, made with Pillow, for tests that check
what reaches the API and the outputs: orientation, colour profiles, GPS, serial numbers, XMP.

Every secret is a distinctive string, so a test can search a whole output's bytes for it.
"""

from __future__ import annotations

import io
import random
import struct

from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from backdrop_fn.image_metadata import srgb_profile

BODY_SERIAL = "BODY-SN-0047110815"
CAMERA_SERIAL = "CAM-SN-2718281828"
LENS_SERIAL = "LENS-SN-3141592653"
OWNER = "OWNER-Erika-Mustermann"
GPS_IFD = 0x8825
GPS_DATUM = "GPS-DATUM-SECRET-PLACE"
MAKER_NOTE = b"MAKERNOTE-SECRET-SERIAL"
XMP_SECRET = "XMP-SECRET-LOCATION"
COMMENT = b"COMMENT-SECRET-NOTE"
XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    f'exif:GPSLatitude="52,31.2N" exif:GPSAreaInformation="{XMP_SECRET}"/></rdf:RDF></x:xmpmeta>'
).encode()
# Whatever of these is found in an output, personal metadata leaked into it.
SECRETS = (
    BODY_SERIAL.encode(),
    CAMERA_SERIAL.encode(),
    LENS_SERIAL.encode(),
    OWNER.encode(),
    GPS_DATUM.encode(),
    MAKER_NOTE,
    XMP_SECRET.encode(),
    COMMENT,
    b"http://ns.adobe.com/xap/1.0/",
    # The GPS IFD pointer entry (tag 0x8825, LONG, count 1), in either byte order.
    b"\x25\x88\x04\x00\x01\x00\x00\x00",
    b"\x88\x25\x00\x04\x00\x00\x00\x01",
)

# Display P3's primaries, adapted to D50 as ICC profiles hold them.
_P3_PRIMARIES = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
_SRGB_PRIMARIES = (
    (0.4360747, 0.2225045, 0.0139322),
    (0.3850649, 0.7168786, 0.0971045),
    (0.1430804, 0.0606169, 0.7141733),
)


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def display_p3_profile() -> bytes:
    """An RGB display profile with Display P3's primaries and description (sRGB's tone curve,
    as Display P3 has)."""
    profile = srgb_profile().replace(b"sRGB (compact)\x00", b"Display P3\x00\x00\x00\x00\x00")
    for srgb, p3 in zip(_SRGB_PRIMARIES, _P3_PRIMARIES, strict=True):
        profile = profile.replace(_xyz(srgb), _xyz(p3))
    return profile


def littlecms_srgb_profile() -> bytes:
    """littleCMS's own sRGB profile: ICC v4, its description a 'mluc' saying "sRGB built-in"."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def phone_exif(orientation: int = 6, *, big_endian: bool = False) -> Image.Exif:
    """EXIF as a phone writes it: orientation, GPS, serial numbers, owner, maker note."""
    exif = Image.Exif()
    if big_endian:
        exif.endian = ">"
    exif[0x0112] = orientation
    exif[0x010F] = "Phone Maker"
    exif[0xC62F] = CAMERA_SERIAL
    gps = exif.get_ifd(0x8825)
    gps[0x0001] = "N"
    gps[0x0002] = (52.0, 31.0, 12.5)
    gps[0x0012] = GPS_DATUM
    camera = exif.get_ifd(0x8769)
    camera[0xA431] = BODY_SERIAL
    camera[0xA435] = LENS_SERIAL
    camera[0xA430] = OWNER
    camera[0x927C] = MAKER_NOTE
    return exif


def picture(size: tuple[int, int] = (96, 64), *, noisy: bool = False) -> Image.Image:
    """A picture whose orientation shows: a red band along its top, a gradient below. ``noisy``
    makes it compress badly, so that a file holds more than the function's first bytes."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste((220, 20, 30), (0, 0, width, max(1, height // 6)))
    if noisy:
        rng = random.Random(12)
        image = Image.frombytes("RGB", size, rng.randbytes(width * height * 3))
    return image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def with_comment(jpeg: bytes, comment: bytes = COMMENT) -> bytes:
    """A JPEG with a COM segment after SOI."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def sideways_phone_photo(size: tuple[int, int] = (96, 64)) -> bytes:
    """A phone photo held sideways: EXIF orientation 6, GPS, serial numbers, a Display P3
    profile, XMP and a comment."""
    jpeg = encode(picture(size), "JPEG", exif=phone_exif(6), icc_profile=display_p3_profile(), xmp=XMP)
    return with_comment(jpeg)


def clean_srgb_jpeg(size: tuple[int, int] = (96, 64)) -> bytes:
    """A JPEG with nothing to fix: an sRGB profile, no EXIF."""
    return encode(picture(size), "JPEG", icc_profile=littlecms_srgb_profile())


def png_with_exif_and_xmp(orientation: int = 1) -> bytes:
    """A PNG with an eXIf chunk (GPS, serials), XMP in an iTXt chunk and a tEXt comment."""
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add_text("Comment", COMMENT.decode())
    return encode(picture(), "PNG", exif=phone_exif(orientation), pnginfo=info)


def webp_with_exif(
    orientation: int = 1, *, lossless: bool = False, size: tuple[int, int] = (96, 64), noisy: bool = False
) -> bytes:
    """A WebP with EXIF (GPS, serials) and XMP chunks after its image data."""
    exif = phone_exif(orientation)
    return encode(picture(size, noisy=noisy), "WEBP", exif=exif, xmp=XMP, lossless=lossless)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def red_blue_swapped_profile() -> bytes:
    """An RGB profile that is not sRGB: sRGB with its red and blue primaries exchanged.

    Converted to sRGB, a pixel that is red in its numbers becomes blue: whether a conversion
    happened shows in one pixel.
    """
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    tags = {}
    for entry in range(count):
        start = 132 + 12 * entry
        tags[bytes(profile[start : start + 4])] = struct.unpack(">II", profile[start + 4 : start + 12])
    (red_at, size), (blue_at, _) = tags[b"rXYZ"], tags[b"bXYZ"]
    red, blue = profile[red_at : red_at + size], profile[blue_at : blue_at + size]
    profile[red_at : red_at + size], profile[blue_at : blue_at + size] = blue, red
    return bytes(profile)


def is_srgb_tagged(image: Image.Image) -> bool:
    return image.info.get("icc_profile") == srgb_profile()
