"""The headless runner: Eye-for-an-eye appearance transfer without the editor (the ``e4e-run`` command;
``python scripts/e4e_run.py`` in a clone).

cli: the command line; settings: the authors' settings, the shipped files and titles; errors: the one-line
errors; images: reading images and masks (Pillow); workflow_fill: loading API workflows, finding their nodes by
class and links, filling them; progress: the progress lines; client: ComfyUI's HTTP API and its progress
websocket (websocket-client, optional); jobs: transfers and the pairs file; batch: spreading jobs over servers,
retries, Ctrl-C and the report; inprocess: the same workflow through ComfyUI's executor in this process.

Importing it needs only the standard library (no sys.path changes, no ComfyUI, no torch).
"""
