"""Talking to language models: one interface, Vertex AI providers and an offline stand-in."""
