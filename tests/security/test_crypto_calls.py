"""One module owns every cryptographic call (issue 16): `protocol/crypto.py`.

Every other module asks it for hashes, signatures, sealing, random tokens, constant-time
comparison, MACs and password hashes, so a reviewer audits one file for how Parley uses
cryptography. This reads every source file's imports (not an exception list): a direct import of
a cryptographic library anywhere else fails here, naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "parley"
OWNER = SRC / "protocol" / "crypto.py"
# Top-level packages that do cryptography. `random` is not here: it is for jitter, never secrets.
CRYPTO = {"hashlib", "hmac", "secrets", "nacl", "argon2", "cryptography", "Crypto", "_hashlib"}


def direct_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [str(node.args[0].value)]
        for name in names:
            if name.split(".")[0] in CRYPTO:
                where = path.relative_to(SRC.parent) if path.is_relative_to(SRC) else path
                found.append(f"{where}:{node.lineno}: {name}")
    return found


def test_only_protocol_crypto_imports_a_cryptographic_library() -> None:
    files = [p for p in sorted(SRC.rglob("*.py")) if p != OWNER]
    assert len(files) > 100  # the whole tree was read
    bad = [use for p in files for use in direct_uses(p)]
    assert not bad, "call these through parley.protocol.crypto instead:\n" + "\n".join(bad)


def test_the_owner_is_where_the_calls_are() -> None:
    # The check above is only meaningful while the owner really holds them.
    owned = {u.rsplit(": ", 1)[1].split(".")[0] for u in direct_uses(OWNER)}
    assert {"hashlib", "hmac", "secrets", "nacl", "argon2"} <= owned


def test_the_check_sees_every_way_of_importing(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import hashlib as h\nfrom secrets import token_hex\nimport importlib\n"
        "x = __import__('hmac')\ny = importlib.import_module('nacl.signing')\n",
        encoding="utf-8",
    )
    found = {u.rsplit(": ", 1)[1] for u in direct_uses(sample)}
    assert found == {"hashlib", "secrets", "hmac", "nacl.signing"}
