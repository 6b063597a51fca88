"""The transfer inside a sampling run: the plan (patch time), the run, the call, the hooks."""
