"""Backdrop's command line and its offline tools: the local stack and the Segmind API emulator."""
