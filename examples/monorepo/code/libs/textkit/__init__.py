"""Text helpers shared by the text processors."""
