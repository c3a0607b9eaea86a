"""The litellm processor's websocket entry point (example)."""
from protocol.base import serve


def handle(message: dict) -> dict:
    return {"echo": message}


if __name__ == "__main__":
    serve(handle, port=8000)
