"""Live replies: a thread's events as Server-Sent Events, and the model's text as it is made."""
