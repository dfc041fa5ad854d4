"""What an image's own bytes say about its orientation, colour and personal metadata, and a copy of
it without that metadata, made without decoding a pixel.

Why from the bytes: decoding a photo needs Pillow (slow to import, megabytes of memory per image),
and almost every image needs nothing. So ``input_condition`` reads only the first bytes the
function already holds (``images.HEAD_BYTES``): the EXIF orientation, the ICC profile's
description, and whether GPS, serial numbers or other personal metadata are there. Only an image
that ``needs_decoding`` (rotated, or in another colour space than sRGB) is handed to Pillow; one
that only ``needs_cleaning`` gets a lossless copy; every other image goes exactly as before.

Why a lossless rewrite: metadata lives in segments (JPEG) and chunks (PNG, WebP) of its own,
beside the compressed pixels. ``metadata_free`` walks them once to plan the copy and once more to
stream it, keeping what draws the picture (and its colour profile) and dropping the rest: the
pixels are the same bytes, memory stays at one segment, and the size is known before the upload.
An EXIF orientation other than 1 is written back in an EXIF of its own, so the copy is shown the
way the original was (a WebP's EXIF is at its end, where the first bytes do not reach).

What counts as personal metadata: whatever can say where a photo was taken or with which camera,
or carry free text that may: EXIF GPS, camera and lens serial numbers, the owner's name, maker
notes (vendors hide serials there), XMP, IPTC (Photoshop APP13), comments and PNG text chunks,
and JPEG multi-picture data (other images, with their own EXIF, appended after the first).
The copy drops all of EXIF and every segment or chunk not needed to draw the image: what is not
kept cannot leak.

Hostile bytes: every length is checked against what is there, IFDs are read to a fixed depth,
entry counts and inflated ICC profiles are bounded. ``input_condition`` never raises: what it
cannot read it reports conservatively (a malformed EXIF is "unreadable EXIF", so it is cleaned
away). ``metadata_free`` raises ``InvalidImage`` for a file whose structure it cannot walk.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from backdrop_fn import images
from backdrop_fn.errors import InvalidImage

SRGB = "srgb"
NO_PROFILE = "none"
UNREADABLE_PROFILE = "unreadable"
# An inflated PNG profile is read this far at most: its header, tag table and description are at
# the start of any real profile, and a "zip bomb" stops here.
_PROFILE_LIMIT = 1024 * 1024
# More IFD entries than any camera writes: a lying count stops here.
_IFD_ENTRY_LIMIT = 512
_READ_PIECE = 64 * 1024
# A chunk's data is read this far at most (what is beyond it is skipped): a lying length stops here.
_DATA_LIMIT = images.HEAD_BYTES

# EXIF tags (TIFF 6.0 and EXIF 2.3).
_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_PERSONAL_EXIF_TAGS = {
    0xC62F: "camera serial",  # CameraSerialNumber (DNG, IFD0)
    0xA431: "camera serial",  # BodySerialNumber
    0xA435: "lens serial",
    0xA430: "owner name",
    0x927C: "maker note",
}

_JFIF = b"JFIF\x00"
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
_ICC = b"ICC_PROFILE\x00"
_MPF = b"MPF\x00"
_ADOBE = b"Adobe"
_PHOTOSHOP = b"Photoshop 3.0\x00"
_APP0, _APP1, _APP2, _APP13, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xEF
_SOS, _EOI, _COM = 0xDA, 0xD9, 0xFE
# A JPEG segment holds at most 65,533 bytes, so an ICC profile is cut into pieces of this size.
_ICC_PIECE = 65_519

# PNG chunks that draw the picture or say how (colour, transparency, animation). Critical chunks
# (upper-case first letter) are always kept; any other ancillary chunk goes.
_PNG_DRAWING = frozenset(
    b"tRNS gAMA cHRM sRGB iCCP cICP mDCV cLLI mDCv cLLi sBIT bKGD pHYs hIST sPLT sCAL acTL fcTL fdAT".split()
)
_PNG_COLOUR = frozenset((b"sRGB", b"iCCP", b"cICP"))
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_KEYWORD = b"XML:com.adobe.xmp\x00"

# WebP chunks that draw the picture; EXIF, XMP and unknown chunks go.
_WEBP_DRAWING = frozenset((b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"))
_VP8X_ICC, _VP8X_ALPHA, _VP8X_EXIF, _VP8X_XMP = 0x20, 0x10, 0x08, 0x04


@dataclass(frozen=True)
class InputCondition:
    """What an image's first bytes say about it. Built by ``input_condition``."""

    orientation: int = 1  # EXIF orientation 1..8; 1 when absent or unreadable
    colour_profile: str = NO_PROFILE  # "none", "srgb", "unreadable" or the profile's description
    personal_metadata: tuple[str, ...] = ()  # what was found: "GPS", "camera serial", "XMP", ...

    @property
    def needs_decoding(self) -> bool:
        """Rotated, or in a colour space other than sRGB: only decoding the pixels can fix it."""
        return self.orientation != 1 or self.colour_profile not in (NO_PROFILE, SRGB)

    @property
    def needs_cleaning(self) -> bool:
        """Personal metadata is there: a lossless copy without it (``metadata_free``) suffices."""
        return bool(self.personal_metadata)

    def reasons(self) -> list[str]:
        """Why the image is decoded or cleaned, for a log line."""
        found = [f"EXIF orientation {self.orientation}"] if self.orientation != 1 else []
        if self.colour_profile not in (NO_PROFILE, SRGB):
            found.append(f"ICC profile {self.colour_profile!r}")
        return found + list(self.personal_metadata)


@dataclass(frozen=True)
class CleanImage:
    """An image without its personal metadata, streamed from the original on each ``open``.

    ``orientation`` is the EXIF orientation the copy keeps: the only way to learn a WebP's, whose
    EXIF is beyond the first bytes. One other than 1 means the image still needs decoding.
    """

    size: int
    open: Callable[[], BinaryIO] = field(repr=False)
    orientation: int = 1


class _Truncated(Exception):
    """The bytes end inside a structure."""


@dataclass
class _Findings:
    orientation: int = 1
    colour_profile: str = NO_PROFILE
    personal: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if what not in self.personal:
            self.personal.append(what)

    def condition(self) -> InputCondition:
        return InputCondition(self.orientation, self.colour_profile, tuple(self.personal))


# Whatever malformed bytes make these readers raise: each is caught where the reading stops.
_MALFORMED = (_Truncated, struct.error, IndexError, ValueError, zlib.error)


def input_condition(head: bytes) -> InputCondition:
    """Orientation, colour profile and personal metadata of a JPEG, PNG or WebP from its first bytes
    (``images.HEAD_BYTES`` of them). Never raises: what cannot be read is reported conservatively."""
    image_type = images.sniff(head)
    readers = {images.JPEG: _jpeg_condition, images.PNG: _png_condition, images.WEBP: _webp_condition}
    found = _Findings()
    if image_type is None:
        return found.condition()
    try:
        readers[image_type](_Reader(io.BytesIO(head)), found)
    except _Truncated:
        # PNG and WebP chunks go on past the first bytes, with the image data; but a JPEG whose
        # segments do may hold metadata in those not read.
        if image_type is images.JPEG:
            found.note("unread segments")
    except _MALFORMED:
        found.note("unreadable structure")
    return found.condition()


# --- Sequential reading ----------------------------------------------------------------------------


class _Reader:
    """Reads a stream front to back, knowing where it is; holds one piece at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buffer = b""
        self._at = 0  # the next unread byte of the buffer
        self.position = 0  # of that byte in the stream

    def _fill(self, wanted: int) -> int:
        """Make ``wanted`` unread bytes available if the stream has them; returns how many are."""
        while len(self._buffer) - self._at < wanted:
            piece = self._stream.read(max(_READ_PIECE, wanted))
            if not piece:
                break
            self._buffer = self._buffer[self._at :] + piece
            self._at = 0
        return len(self._buffer) - self._at

    def read(self, count: int) -> bytes:
        """Exactly ``count`` bytes, or ``_Truncated``."""
        if self._fill(count) < count:
            raise _Truncated
        data = self._buffer[self._at : self._at + count]
        self._at += count
        self.position += count
        return data

    def skip(self, count: int) -> None:
        while count > 0:
            available = self._fill(1)
            if available == 0:
                raise _Truncated
            step = min(count, available)
            self._at += step
            self.position += step
            count -= step

    def peek(self, count: int) -> bytes:
        """Up to ``count`` bytes, left unread."""
        self._fill(count)
        return self._buffer[self._at : self._at + count]

    def at_end(self) -> bool:
        return self._fill(1) == 0

    def skip_entropy_coded_data(self) -> None:
        """Move to the next marker after a JPEG scan: an FF there is followed by 00 (a stuffed
        byte) or a restart marker, and FF FF is a fill byte before a marker."""
        while True:
            found = self._buffer.find(b"\xff", self._at)
            if found < 0:
                self.position += len(self._buffer) - self._at
                self._at = len(self._buffer)
                if self._fill(1) == 0:
                    raise _Truncated
                continue
            self.position += found - self._at
            self._at = found
            if self._fill(2) < 2:
                raise _Truncated
            following = self._buffer[self._at + 1]
            if following != 0xFF and following != 0x00 and not 0xD0 <= following <= 0xD7:
                return
            self.skip(1 if following == 0xFF else 2)


# --- JPEG ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    marker: int  # 0 for a scan's entropy-coded data
    start: int
    end: int
    payload: bytes  # of a marker segment; empty for the others


def _jpeg_segments(reader: _Reader) -> Iterator[_Segment]:
    """Every segment from SOI to EOI, the entropy-coded data after each SOS as marker 0."""
    if reader.read(2) != b"\xff\xd8":
        raise ValueError("no SOI")
    yield _Segment(0xD8, 0, 2, b"")
    while True:
        start = reader.position
        if reader.read(1) != b"\xff":
            raise ValueError("not a marker")
        marker = reader.read(1)[0]
        while marker == 0xFF:  # fill bytes
            marker = reader.read(1)[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # no length field
            yield _Segment(marker, start, reader.position, b"")
            if marker == _EOI:
                return
            continue
        (length,) = struct.unpack(">H", reader.read(2))
        if length < 2:
            raise ValueError("segment length")
        yield _Segment(marker, start, reader.position + length - 2, reader.read(length - 2))
        if marker == _SOS:
            scan_start = reader.position
            reader.skip_entropy_coded_data()
            yield _Segment(0, scan_start, reader.position, b"")


def _jpeg_condition(reader: _Reader, found: _Findings) -> None:
    icc_pieces: dict[int, bytes] = {}
    for segment in _jpeg_segments(reader):
        if segment.marker == _SOS:
            break
        payload = segment.payload
        if segment.marker == _APP1 and payload.startswith(_EXIF):
            _read_exif(payload[len(_EXIF) :], found)
        elif segment.marker == _APP2 and payload.startswith(_ICC) and len(payload) > len(_ICC) + 2:
            icc_pieces[payload[len(_ICC)]] = payload[len(_ICC) + 2 :]
        elif personal := _personal_segment(segment):
            found.note(personal)
    if icc_pieces:
        found.colour_profile = _profile_name(b"".join(icc_pieces[n] for n in sorted(icc_pieces)))


def _personal_segment(segment: _Segment) -> str:
    """What personal metadata a JPEG segment (other than EXIF) may hold, or ""."""
    payload = segment.payload
    if segment.marker == _APP1 and payload.startswith((_XMP, _XMP_EXTENSION)):
        return "XMP"
    if segment.marker == _APP13 and payload.startswith(_PHOTOSHOP):
        return "IPTC"
    if segment.marker == _APP2 and payload.startswith(_MPF):
        return "more images (MPF)"
    return "comment" if segment.marker == _COM else ""


def _jpeg_keeps(segment: _Segment) -> bool:
    """Whether a segment is needed to draw the picture: every APPn and COM goes, but the JFIF
    header, the ICC profile, and Adobe's (which says whether the channels are YCbCr)."""
    if segment.marker == _COM or (segment.marker == _APP1 and segment.payload.startswith(_EXIF)):
        return False
    kept_application = {_APP0: _JFIF, _APP2: _ICC, _APP14: _ADOBE}
    if _APP0 <= segment.marker <= _APP15:
        signature = kept_application.get(segment.marker)
        return signature is not None and segment.payload.startswith(signature)
    return True


def _jpeg_plan(reader: _Reader, tag_srgb: bool) -> _Plan:
    plan = _Plan()
    has_profile, components, after_jfif, orientation = False, 0, 2, 1
    for segment in _jpeg_segments(reader):
        if not _jpeg_keeps(segment):
            plan.changed = True
            if orientation == 1 and segment.marker == _APP1 and segment.payload.startswith(_EXIF):
                orientation = _orientation_in(segment.payload)
            continue
        plan.copy(segment.start, segment.end)
        has_profile = has_profile or segment.marker == _APP2
        if 0xC0 <= segment.marker <= 0xCF and segment.marker not in (0xC4, 0xC8, 0xCC):
            components = segment.payload[5] if len(segment.payload) > 5 else 0
        if segment.marker == _APP0 and segment.start == 2:
            after_jfif = segment.end  # JFIF must stay the first segment
    if not reader.at_end():
        plan.changed = True  # a trailer after EOI: appended images or video, with their metadata
    plan.orientation = orientation
    if orientation != 1:
        plan.insert(after_jfif, _jpeg_segment(_APP1, _EXIF + _orientation_exif(orientation)))
    if tag_srgb and not has_profile and components == 3:
        plan.insert(after_jfif, _jpeg_icc_segments(srgb_profile()))
    return plan


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_icc_segments(profile: bytes) -> bytes:
    pieces = [profile[at : at + _ICC_PIECE] for at in range(0, len(profile), _ICC_PIECE)]
    return b"".join(
        _jpeg_segment(_APP2, _ICC + bytes((number, len(pieces))) + piece)
        for number, piece in enumerate(pieces, start=1)
    )


# --- PNG -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    kind: bytes
    start: int
    end: int
    data: bytes  # only of the chunks asked for


def _png_chunks(reader: _Reader, wanted: frozenset[bytes]) -> Iterator[_Chunk]:
    if reader.read(8) != _PNG_SIGNATURE:
        raise ValueError("no PNG signature")
    while True:
        start = reader.position
        length, kind = struct.unpack(">I4s", reader.read(8))
        if length > 0x7FFFFFFF:
            raise ValueError("chunk length")
        data = reader.read(min(length, _DATA_LIMIT)) if kind in wanted else b""
        reader.skip(length - len(data) + 4)
        yield _Chunk(kind, start, reader.position, data)
        if kind == b"IEND":
            return


def _png_condition(reader: _Reader, found: _Findings) -> None:
    for chunk in _png_chunks(reader, frozenset((b"iCCP", b"eXIf", b"iTXt", b"cICP"))):
        if chunk.kind == b"sRGB":
            found.colour_profile = SRGB
        elif chunk.kind == b"iCCP":
            found.colour_profile = _profile_name(_inflated_profile(chunk.data))
        elif chunk.kind == b"cICP":
            found.colour_profile = _cicp_name(chunk.data)
        elif chunk.kind == b"eXIf":
            _read_exif(chunk.data, found)
        elif chunk.kind == b"iTXt" and chunk.data.startswith(_XMP_KEYWORD):
            found.note("XMP")
        elif chunk.kind in (b"tEXt", b"zTXt", b"iTXt"):
            found.note("text")


def _inflated_profile(data: bytes) -> bytes:
    """An iCCP chunk's profile: a name, a NUL, a compression method, then zlib data."""
    name_end = data.index(b"\x00")
    return zlib.decompressobj().decompress(data[name_end + 2 :], _PROFILE_LIMIT)


def _cicp_name(data: bytes) -> str:
    """sRGB (BT.709 primaries, sRGB transfer) or the code points, as ITU-T H.273 numbers them."""
    primaries, transfer = data[0], data[1]
    return SRGB if (primaries, transfer) == (1, 13) else f"cICP {primaries}/{transfer}"


def _png_plan(reader: _Reader, tag_srgb: bool) -> _Plan:
    plan = _Plan()
    has_colour, after_header, orientation = False, 0, 1
    for chunk in _png_chunks(reader, frozenset((b"eXIf",))):
        if chunk.kind[0] & 0x20 and chunk.kind not in _PNG_DRAWING:  # ancillary, not drawing
            plan.changed = True
            orientation = _orientation_in(chunk.data) if chunk.kind == b"eXIf" else orientation
            continue
        if not plan.ranges and chunk.kind != b"IHDR":
            raise ValueError("no IHDR first")
        plan.copy(chunk.start if plan.ranges else 0, chunk.end)  # the signature with IHDR
        has_colour = has_colour or chunk.kind in _PNG_COLOUR
        after_header = after_header or chunk.end
    if not reader.at_end():
        plan.changed = True
    if tag_srgb and not has_colour:
        plan.insert(after_header, _png_chunk(b"sRGB", b"\x00"))  # perceptual intent
    plan.orientation = orientation
    if orientation != 1:
        plan.insert(after_header, _png_chunk(b"eXIf", _orientation_exif(orientation)))
    return plan


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- WebP ------------------------------------------------------------------------------------------


def _riff_chunks(reader: _Reader, wanted: frozenset[bytes]) -> Iterator[_Chunk]:
    """The chunks of a WebP's RIFF container, up to the size it declares for itself; of the chunks
    in ``wanted`` their data, of the image chunks their first 10 bytes (the frame header)."""
    riff, declared, webp = struct.unpack("<4sI4s", reader.read(12))
    if riff != b"RIFF" or webp != b"WEBP":
        raise ValueError("not RIFF WEBP")
    while reader.position < declared + 8:
        start = reader.position
        kind, length = struct.unpack("<4sI", reader.read(8))
        padded = length + (length & 1)
        if kind in wanted:
            data = reader.read(min(length, _DATA_LIMIT))
        else:
            data = reader.read(min(length, 10) if kind in (b"VP8 ", b"VP8L") else 0)
        reader.skip(padded - len(data))
        yield _Chunk(kind, start, reader.position, data)


def _webp_condition(reader: _Reader, found: _Findings) -> None:
    flags = 0
    seen: set[bytes] = set()
    try:
        for chunk in _riff_chunks(reader, frozenset((b"VP8X", b"ICCP", b"EXIF"))):
            seen.add(chunk.kind)
            if chunk.kind == b"VP8X":
                flags = chunk.data[0]
            elif chunk.kind == b"ICCP":
                found.colour_profile = _profile_name(chunk.data)
            elif chunk.kind == b"EXIF":
                _read_exif(chunk.data.removeprefix(_EXIF), found)
            elif chunk.kind == b"XMP ":
                found.note("XMP")
    finally:
        # EXIF and XMP come after the image data, usually beyond the first bytes: the flags say
        # they are there. The orientation in such an EXIF stays unknown here (taken as 1); the
        # cleaned copy, made from the whole file, says it (CleanImage.orientation).
        if flags & _VP8X_EXIF and b"EXIF" not in seen:
            found.note("EXIF (end of file)")
        if flags & _VP8X_XMP and b"XMP " not in seen:
            found.note("XMP")


def _webp_plan(reader: _Reader, tag_srgb: bool) -> _Plan:
    plan = _Plan()
    extended: bytes | None = None  # the VP8X payload
    simple: bytes | None = None  # or the one a simple (VP8 or VP8L) file would have
    has_profile, orientation = False, 1
    for chunk in _riff_chunks(reader, frozenset((b"VP8X", b"EXIF"))):
        if chunk.kind not in _WEBP_DRAWING:
            plan.changed = True
            orientation = _orientation_in(chunk.data) if chunk.kind == b"EXIF" else orientation
        elif chunk.kind == b"VP8X" and not plan.ranges and extended is None:
            extended = chunk.data  # written anew, with flags for what is left
        else:
            if extended is None and simple is None:
                simple = _vp8x_for(chunk)
            has_profile = has_profile or chunk.kind == b"ICCP"
            plan.copy(chunk.start, chunk.end)
    if not reader.at_end():
        plan.changed = True
    if extended is None and simple is None:
        raise ValueError("no image chunk")
    profile = srgb_profile() if tag_srgb and not has_profile else b""
    exif = _orientation_exif(orientation) if orientation != 1 else b""
    if extended is not None or profile or exif:  # else a simple file stays simple
        plan.prefix = _vp8x_chunk(extended or simple or b"", profile=profile, exif=bool(exif))
        plan.changed = plan.changed or plan.prefix[8:18] != extended
    plan.suffix = _riff_chunk(b"EXIF", exif) if exif else b""
    plan.orientation = orientation
    return plan


def _vp8x_chunk(payload: bytes, *, profile: bytes, exif: bool) -> bytes:
    """A VP8X chunk whose flags say what is left, then the profile's chunk when one is added."""
    if len(payload) != 10:
        raise ValueError("VP8X length")
    flags = payload[0] & ~(_VP8X_EXIF | _VP8X_XMP) | (_VP8X_EXIF if exif else 0)
    vp8x = _riff_chunk(b"VP8X", bytes((flags | (_VP8X_ICC if profile else 0),)) + payload[1:])
    return vp8x + _riff_chunk(b"ICCP", profile) if profile else vp8x


def _vp8x_for(chunk: _Chunk) -> bytes:
    """The VP8X payload that describes a simple (VP8 or VP8L) image: alpha, canvas size."""
    data = chunk.data
    if chunk.kind == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        alpha, width, height = 0, width & 0x3FFF, height & 0x3FFF
    elif chunk.kind == b"VP8L" and data[:1] == b"\x2f":
        bits = int.from_bytes(data[1:5], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        alpha = _VP8X_ALPHA if bits >> 28 & 1 else 0
    else:
        raise ValueError("no frame header")
    return bytes((alpha, 0, 0, 0)) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)


# --- EXIF ------------------------------------------------------------------------------------------


def _read_exif(tiff: bytes, found: _Findings) -> None:
    """Orientation and personal tags of a TIFF structure (EXIF's), either byte order."""
    try:
        order = {b"II*\x00": "<", b"MM\x00*": ">"}[tiff[:4]]
        (first,) = struct.unpack(order + "I", tiff[4:8])
        for tag, value in _ifd_entries(tiff, first, order):
            if tag == _ORIENTATION:
                (orientation,) = struct.unpack(order + "H", value[:2])
                found.orientation = orientation if 1 <= orientation <= 8 else 1
            elif tag == _GPS_IFD:
                found.note("GPS")
            elif tag == _EXIF_IFD:
                (exif_ifd,) = struct.unpack(order + "I", value)
                for exif_tag, _ in _ifd_entries(tiff, exif_ifd, order):
                    if exif_tag in _PERSONAL_EXIF_TAGS:
                        found.note(_PERSONAL_EXIF_TAGS[exif_tag])
            if tag in _PERSONAL_EXIF_TAGS:
                found.note(_PERSONAL_EXIF_TAGS[tag])
    except (KeyError, *_MALFORMED):
        found.note("unreadable EXIF")


def _ifd_entries(tiff: bytes, offset: int, order: str) -> Iterator[tuple[int, bytes]]:
    """(tag, 4-byte value field) of each entry of the IFD at ``offset``, as many as are there."""
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    count = min(count, _IFD_ENTRY_LIMIT, (len(tiff) - offset - 2) // 12)
    for index in range(count):
        at = offset + 2 + 12 * index
        (tag,) = struct.unpack(order + "H", tiff[at : at + 2])
        yield tag, tiff[at + 8 : at + 12]


def _orientation_in(tiff: bytes) -> int:
    """The orientation an EXIF block says (a WebP's may start with JPEG's "Exif" header)."""
    found = _Findings()
    _read_exif(tiff.removeprefix(_EXIF), found)
    return found.orientation


def _orientation_exif(orientation: int) -> bytes:
    """EXIF (a TIFF structure) that says nothing but the orientation."""
    return b"II*\x00" + struct.pack("<IHHHIHHI", 8, 1, _ORIENTATION, 3, 1, orientation, 0, 0)


# --- ICC profiles ----------------------------------------------------------------------------------


def _profile_name(profile: bytes) -> str:
    """ "srgb" for a profile whose description says sRGB, else that description (printable and
    short, for a log line), or "unreadable"."""
    try:
        description = _profile_description(profile)
    except (*_MALFORMED, UnicodeDecodeError):
        return UNREADABLE_PROFILE
    if "srgb" in description.lower():
        return SRGB
    printable = "".join(c for c in description if c.isprintable()).strip()[:64]
    return printable or UNREADABLE_PROFILE


def _profile_description(profile: bytes) -> str:
    if profile[36:40] != b"acsp":
        raise ValueError("not an ICC profile")
    (count,) = struct.unpack(">I", profile[128:132])
    for index in range(min(count, (len(profile) - 132) // 12)):
        signature, offset, size = struct.unpack(">4sII", profile[132 + 12 * index : 144 + 12 * index])
        if signature == b"desc":
            return _text_of(profile[offset : offset + size])
    raise ValueError("no description")


def _text_of(tag: bytes) -> str:
    """The text of a v2 ``desc`` (ASCII) or a v4 ``mluc`` (its first record, UTF-16)."""
    if tag[:4] == b"desc":
        (length,) = struct.unpack(">I", tag[8:12])
        return tag[12 : 12 + length].split(b"\x00")[0].decode("latin-1")
    if tag[:4] == b"mluc":
        length, offset = struct.unpack(">II", tag[20:28])
        return tag[offset : offset + length].decode("utf-16-be")
    raise ValueError("not a text tag")


@functools.cache
def srgb_profile() -> bytes:
    """A compact ICC v2 display profile for sRGB (about 900 bytes): D50-adapted sRGB primaries and
    the sRGB tone curve in 256 steps."""
    curve = [_srgb_to_linear(step / 255) for step in range(256)]
    curv = b"curv\x00\x00\x00\x00" + struct.pack(">I256H", 256, *(round(v * 65535) for v in curve))
    tags = [
        (b"desc", _v2_description("sRGB (compact)")),
        (b"cprt", b"text\x00\x00\x00\x00No copyright, use freely\x00"),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(0.4360747, 0.2225045, 0.0139322)),
        (b"gXYZ", _xyz(0.3850649, 0.7168786, 0.0971045)),
        (b"bXYZ", _xyz(0.1430804, 0.0606169, 0.7141733)),
        (b"rTRC", curv),
        (b"gTRC", curv),
        (b"bTRC", curv),
    ]
    return _icc(tags)


def _icc(tags: list[tuple[bytes, bytes]]) -> bytes:
    """A display profile (RGB to XYZ) with these tags; identical tag data is written once."""
    table, data, offsets = b"", b"", dict[bytes, int]()
    start = 128 + 4 + 12 * len(tags)
    for signature, content in tags:
        if content not in offsets:
            offsets[content] = start + len(data)
            data += content + b"\x00" * (-len(content) % 4)
        table += struct.pack(">4sII", signature, offsets[content], len(content))
    size = start + len(data)
    header = struct.pack(
        ">I4sI4s4s4s6H4s",
        size,
        b"\x00\x00\x00\x00",
        0x02100000,
        b"mntr",
        b"RGB ",
        b"XYZ ",
        *(2026, 1, 1, 0, 0, 0),
        b"acsp",
    )
    header += b"\x00" * 28 + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    return header + b"\x00" * (128 - len(header)) + struct.pack(">I", len(tags)) + table + data


def _srgb_to_linear(value: float) -> float:
    return value / 12.92 if value <= 0.04045 else math.pow((value + 0.055) / 1.055, 2.4)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)


def _v2_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\x00"
    # No Unicode or ScriptCode text: their counts are 0, the ScriptCode field a fixed 67 bytes.
    return b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\x00" * 78


# --- The copy --------------------------------------------------------------------------------------


class _Plan:
    """The copy as pieces of the original (ranges) and new bytes inserted between them."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.insertions: dict[int, bytes] = {}  # at an original offset
        self.prefix = b""  # WebP: the VP8X (and ICCP) written after the RIFF header
        self.suffix = b""  # WebP: the EXIF chunk that keeps the orientation
        self.orientation = 1  # the one the original's EXIF said
        self.changed = False

    def copy(self, start: int, end: int) -> None:
        if self.ranges and self.ranges[-1][1] == start:
            self.ranges[-1] = (self.ranges[-1][0], end)
        else:
            self.ranges.append((start, end))

    def insert(self, at: int, data: bytes) -> None:
        self.insertions[at] = self.insertions.get(at, b"") + data
        self.changed = True

    def pieces(self) -> list[bytes | tuple[int, int]]:
        """The copy in order: each range split where bytes are inserted."""
        result: list[bytes | tuple[int, int]] = []
        for start, end in self.ranges:
            cut = start
            for at in sorted(a for a in self.insertions if start <= a <= end):
                result += [(cut, at), self.insertions[at]]
                cut = at
            result.append((cut, end))
        return [piece for piece in result if not isinstance(piece, tuple) or piece[1] > piece[0]]


def metadata_free(open: Callable[[], BinaryIO], size: int, *, tag_srgb: bool) -> CleanImage | None:
    """A copy of the image without EXIF, XMP, comments and text, or any segment or chunk that does
    not draw the picture, wherever it is in the file; with ``tag_srgb``, an image without a colour
    profile is tagged sRGB. The compressed pixels are copied as they are, and an orientation other
    than 1 is kept in an EXIF that says nothing else. None when nothing would change.

    ``open`` is called once to plan the copy, and once more for each ``open`` of the result;
    ``size`` is the original's. Raises InvalidImage when its structure cannot be walked to its end.
    """
    planners = {images.JPEG: _jpeg_plan, images.PNG: _png_plan, images.WEBP: _webp_plan}
    with open() as stream:
        reader = _Reader(stream)
        image_type = images.sniff(reader.peek(images.SNIFF_BYTES))
        if image_type is None:
            raise InvalidImage("not a JPEG, PNG or WebP image: its metadata cannot be removed")
        try:
            plan = planners[image_type](reader, tag_srgb)
        except _MALFORMED as error:
            raise InvalidImage(
                f"a damaged {image_type.name}: its metadata cannot be removed ({error or 'truncated'})"
            ) from error
    if reader.position > size:
        raise InvalidImage(f"the {image_type.name} is larger than its {size:,} bytes: it changed")
    if not plan.changed:
        return None
    pieces = plan.pieces()
    if image_type is images.WEBP:  # a new RIFF header, with the copy's size
        pieces = [plan.prefix, *pieces, plan.suffix]
        pieces.insert(0, b"RIFF" + struct.pack("<I", 4 + _length(pieces)) + b"WEBP")
    return CleanImage(_length(pieces), lambda: io.BufferedReader(_Spliced(open, pieces)), plan.orientation)


def _length(pieces: list[bytes | tuple[int, int]]) -> int:
    return sum(len(piece) if isinstance(piece, bytes) else piece[1] - piece[0] for piece in pieces)


class _Spliced(io.RawIOBase):
    """The planned copy, read from a fresh stream of the original."""

    def __init__(self, open: Callable[[], BinaryIO], pieces: list[bytes | tuple[int, int]]) -> None:
        super().__init__()
        self._source = open()
        self._position = 0  # in the original
        self._pieces = iter(pieces)
        self._current: bytes | tuple[int, int] = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._current or (
            isinstance(self._current, tuple) and self._current[0] >= self._current[1]
        ):
            following = next(self._pieces, None)
            if following is None:
                return 0
            self._current = following
        if isinstance(self._current, bytes):
            data, self._current = self._current[: len(target)], self._current[len(target) :]
        else:
            start, end = self._current
            copied = self._copy_into(memoryview(target)[: end - start], start)
            self._current = (start + copied, end)
            return copied
        target[: len(data)] = data
        return len(data)

    def _copy_into(self, target: memoryview, start: int) -> int:
        """The original's bytes from ``start``, read straight into ``target``: a large read (an
        upload's part) is never held twice."""
        while self._position < start:  # a dropped segment: read past it
            skipped = self._source.read(min(start - self._position, _READ_PIECE))
            if not skipped:
                raise InvalidImage("the image changed while its metadata was removed")
            self._position += len(skipped)
        read_into = getattr(self._source, "readinto", None)
        if read_into is not None:
            copied = read_into(target)
        else:
            data = self._source.read(len(target))
            copied = len(data)
            target[:copied] = data
        if not copied:
            raise InvalidImage("the image changed while its metadata was removed")
        self._position += copied
        return int(copied)

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()
