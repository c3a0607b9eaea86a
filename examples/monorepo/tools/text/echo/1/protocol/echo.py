from textkit.normalize import normalize


def run(request):
    return {"text": normalize(request["text"])}
