"""Tests of twisted_uploads (run with ``trial tests``)."""
