"""What every node of the pack shares: its category, its naming pattern and the pack's own socket types."""

CATEGORY = "appearance transfer/eye-for-an-eye"
INVERSION = "E4E_INVERSION"  # DDIM Invert Reference -> Semantic Match Patch
MASKS = "E4E_MASKS"  # Load Masks -> Semantic Match Patch


def display_name(name: str) -> str:
    """One pattern for every node, so that a search for "eye-for-an-eye" finds them all."""
    return f"{name} (Eye-for-an-eye)"
