"""The composition root: builds a station, its HTTP app (both APIs and the console) and runs it.

build.py   build_app(station, token): the FastAPI app with the peer API, the operator API
           and the console mounted; nothing below this package imports it.
serve.py   `parley station run`: one process or a supervisor with workers; the duties
           (dispatcher, key rotation, scheduled tick) started and stopped.
"""
