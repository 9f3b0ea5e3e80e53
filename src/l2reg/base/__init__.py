"""base: what every layer above uses: validation, atomic files, Ctrl-C, the checkpoint format, cache paths."""
