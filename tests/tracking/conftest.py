"""The tracking tests share the dashboard test's browser: headless Debian chromium via playwright."""

from tests.results.test_dashboard_browser import browser  # noqa: F401 (a fixture)
