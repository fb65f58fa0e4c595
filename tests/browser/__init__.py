"""Browser tests: static/uploads.js in real Chromium, driven by Playwright (see docs/browser.md)."""
