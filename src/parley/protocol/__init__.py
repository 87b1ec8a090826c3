"""The sans-I/O protocol core.

Pure functions and small state machines over bytes and records. Nothing here imports asyncio,
sqlite, httpx or fastapi; time (`now`) and randomness arrive as arguments or through the one
module that owns every libsodium call (`crypto`).
"""
