"""Measuring tool choice: a versioned set of requests, run through the real engine, scored
locally and, optionally, by Vertex AI's Gen AI evaluation service."""
