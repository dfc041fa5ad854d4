"""The offline Segmind emulator (see server.py)."""

from backdrop.emulator.models import EmulatorSettings, RecordedRequest, Reply, Stream
from backdrop.emulator.server import Emulator

__all__ = ["Emulator", "EmulatorSettings", "RecordedRequest", "Reply", "Stream"]
