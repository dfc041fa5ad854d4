"""The offline Segmind emulator (see server.py)."""

from backdrop.emulator.server import Emulator, EmulatorSettings, RecordedRequest, Reply

__all__ = ["Emulator", "EmulatorSettings", "RecordedRequest", "Reply"]
