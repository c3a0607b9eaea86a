from textkit.normalize import normalize


def summarize(text, words=12):
    return " ".join(normalize(text).split()[:words])
