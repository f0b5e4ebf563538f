"""The demo harness, outside the request path: an HTTP client of the platform, a live server, simulated crowds.

``manage.py demo`` drives every study kind through the real HTTP views with it; tests and benches
reuse the client.
"""
