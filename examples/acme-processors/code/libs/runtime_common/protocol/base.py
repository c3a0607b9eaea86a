"""Default protocol implementation; processors override files of this package."""


def serve(handler, port: int) -> None:
    print(f"serving on :{port}")
