def healthz() -> dict:
    return {"ok": True}
