"""The headless runner's parts (scripts/e4e_run.py is its command line).

settings: the authors' settings and the node titles the runner fills; errors: the one-line errors;
images: reading images and masks; workflow_fill: loading and filling API workflows; client: ComfyUI's HTTP
API and its progress websocket (websocket-client, optional); jobs: transfers and the pairs file; batch:
spreading jobs over servers, with retries, and the report; inprocess: the workflow's graph run on the pack's
nodes in this process.
"""
