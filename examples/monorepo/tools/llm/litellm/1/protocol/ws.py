from runtime_common.protocol.base import Processor


class LiteLLM(Processor):
    def run(self, request):
        return {"model": request.get("model", "gpt-4o-mini"), "echo": request.get("prompt", "")}
