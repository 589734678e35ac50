from tests.pubsub.emulator import pubsub_emulator

__all__ = ["pubsub_emulator"]
