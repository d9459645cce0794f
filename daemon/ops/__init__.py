"""Operations: health, metrics, clock state, disk reserve (issue 7)."""
