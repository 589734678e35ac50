from messagedb_agent.store import MessageStore


def test_written_message_reads_back(store: MessageStore, stream: str) -> None:
    position = store.write_message(None, stream, "Greeted", {"name": "Ada"})
    assert position == 0
    [message] = store.read_stream(stream)
    assert message.type == "Greeted"
    assert message.data == {"name": "Ada"}
