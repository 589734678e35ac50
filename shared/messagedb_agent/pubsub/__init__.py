"""Pub/Sub at the edges: the publisher, the push envelope, and the step delivery handler."""
