"""Trust: epoch key lifecycle, closures, receipt excerpts and read-model replay."""
