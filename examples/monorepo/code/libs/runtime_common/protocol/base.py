class Processor:
    """Base class: a processor turns one request into one response."""

    def run(self, request):
        raise NotImplementedError
