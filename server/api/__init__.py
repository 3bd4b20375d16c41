"""quantserve."""
