"""ComfyUI node classes of the pack (thin: validation, tooltips, progress)."""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
