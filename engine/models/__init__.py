"""What the pack knows about models: the family registry, their blocks, the presets, the variant fingerprint
and the authors' settings."""
