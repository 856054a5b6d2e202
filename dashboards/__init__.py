"""The managers' operations dashboards (Dash), served under ``/dashboards`` by the product's own
aiohttp server (``dashboards/mount.py``); see ``docs/dashboards.md``."""
