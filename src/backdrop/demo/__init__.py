"""The `backdrop demo` command: sample photos through the local pipeline, and its contact sheet."""
