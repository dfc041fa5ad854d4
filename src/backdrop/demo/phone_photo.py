"""The demo's sideways phone photo, made from ``dropper_bottle.jpg``: run
``python -m backdrop.demo.phone_photo`` to write ``samples/phone_serum.jpg`` again.

A phone held upright stores its sensor's landscape pixels and an EXIF orientation of 6 ("turn
me a quarter clockwise"), in Display P3, with where it was taken (GPS) and its serial number.
The picture here is all of that: its pixels are the bottle turned a quarter anticlockwise, so
that a viewer honouring the orientation shows it upright; its colours are converted to Display P3
and tagged so, so that it looks the same as the original in a colour-managed viewer. The function
must send it upright and in sRGB, and no output may carry its GPS or serial number.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image, ImageCms

SAMPLES = Path(__file__).parent / "samples"
SOURCE = SAMPLES / "dropper_bottle.jpg"
TARGET = SAMPLES / "phone_serum.jpg"

BODY_SERIAL = "DEMO-BODY-SN-4711"
GPS_IFD = 0x8825
# Where it was "taken": the Brandenburg Gate, a public place, so the demo reveals no one's home.
GPS_LATITUDE = (52.0, 30.0, 58.6)
GPS_LONGITUDE = (13.0, 22.0, 39.8)

_ORIENTATION_TAG = 0x0112
_TURN_A_QUARTER_CLOCKWISE = 6
_EXIF_IFD = 0x8769
_BODY_SERIAL_TAG = 0xA431
# Display P3's primaries adapted to D50, as an ICC profile holds them (X, Y, Z of red, green, blue).
_P3_PRIMARIES = {
    b"rXYZ": (0.5151, 0.2412, -0.0011),
    b"gXYZ": (0.2920, 0.6922, 0.0419),
    b"bXYZ": (0.1571, 0.0666, 0.7841),
}
# littleCMS names its sRGB profile "sRGB built-in" in UTF-16; the new name has as many characters.
_SRGB_NAME, _P3_NAME = "sRGB built-in".encode("utf-16-be"), "Display P3 v4".encode("utf-16-be")


def display_p3_profile() -> bytes:
    """littleCMS's sRGB profile with Display P3's primaries and name (both share sRGB's curve)."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    for entry in range(count):
        start = 132 + 12 * entry
        signature = bytes(profile[start : start + 4])
        if signature in _P3_PRIMARIES:
            (offset, _) = struct.unpack(">II", profile[start + 4 : start + 12])
            values = b"".join(struct.pack(">i", round(v * 65536)) for v in _P3_PRIMARIES[signature])
            profile[offset + 8 : offset + 20] = values  # after the 'XYZ ' type and its reserved bytes
    profile[24:36] = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)  # littleCMS stamps the time: fix it
    profile[84:100] = bytes(16)  # the profile ID no longer matches: zero says "not computed"
    return bytes(profile).replace(_SRGB_NAME, _P3_NAME)


def phone_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[_ORIENTATION_TAG] = _TURN_A_QUARTER_CLOCKWISE
    exif[0x010F] = "Demo Phone Co."  # Make
    exif[0x0110] = "Demo Phone 12"  # Model
    exif.get_ifd(_EXIF_IFD)[_BODY_SERIAL_TAG] = BODY_SERIAL
    gps = exif.get_ifd(GPS_IFD)
    gps[0x0001], gps[0x0002] = "N", GPS_LATITUDE
    gps[0x0003], gps[0x0004] = "E", GPS_LONGITUDE
    return exif


def make_phone_photo(source: Path = SOURCE) -> bytes:
    """The JPEG's bytes: the same every time for the same source."""
    with Image.open(source) as upright:
        srgb = upright.convert("RGB")
    p3 = display_p3_profile()
    to_p3 = ImageCms.ImageCmsProfile(io.BytesIO(p3))
    in_p3 = ImageCms.profileToProfile(srgb, ImageCms.createProfile("sRGB"), to_p3)
    assert in_p3 is not None  # profileToProfile returns None only when asked to work in place
    sideways = in_p3.transpose(Image.Transpose.ROTATE_90)
    out = io.BytesIO()
    sideways.save(out, format="JPEG", quality=85, exif=phone_exif(), icc_profile=p3)
    return out.getvalue()


def main() -> None:
    TARGET.write_bytes(make_phone_photo())
    print(f"wrote {TARGET} ({TARGET.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
