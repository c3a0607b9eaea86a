from app.main import summarize


def test_summarize():
    assert summarize("a  b c", words=2) == "a b"
