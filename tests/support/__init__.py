"""Real components the tests start on loopback (Learn simulator, SMTP, S3) and shared helpers."""
