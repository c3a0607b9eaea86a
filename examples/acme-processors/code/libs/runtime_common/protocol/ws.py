from protocol.base import serve

if __name__ == "__main__":
    serve(lambda message: message, port=8000)
