"""Sealtrail: a tamper-evident, privacy-preserving flight recorder for AI-agent tool calls."""
