"""The embedded eyes-open/closed band-power sample (see README.md here for source and licence)."""
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent
SAMPLE_X = SAMPLE_DIR / "X.npy"
SAMPLE_Y = SAMPLE_DIR / "y.npy"
