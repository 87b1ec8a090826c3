"""The transcript feature's public face: checkpoints, transcript files and message proofs.

Nothing is defined here; each concern lives in its own module and the project's own code imports
from that module. This facade keeps one stable import for outside tools and for the shipped
vector test (tests/test_vectors.py), which must keep passing unchanged:

    checkpoint.py   checkpoint and cosignature bodies, origins, members (docs/protocol.md §17.1-2)
    export.py       the transcript file format: writing it, splitting it into lines (§17.3)
    scan.py         the fast, exact reader of canonical envelopes the verifier uses
    verifier.py     checking a transcript file offline (§17.3)
    proof.py        proofs of one message: making and checking them (§17.4)
    report.py       the named checks every offline check reports
    merkle.py       the one RFC 9162 tree
"""

from parley.protocol.checkpoint import (
    CHECKPOINT,
    COSIGN,
    CheckpointBody,
    CosignBody,
    Member,
    check_checkpoint_body,
    check_cosign_body,
    checkpoint_body,
    cosign_body,
    leaves,
    origin,
    parse_origin,
)
from parley.protocol.export import FORMAT, TRANSCRIPT_LABEL, TranscriptWriter, read_lines
from parley.protocol.proof import PROOF_FORMAT, check_proof, make_proof
from parley.protocol.report import Check, Report
from parley.protocol.verifier import verify_transcript

__all__ = [
    "CHECKPOINT",
    "COSIGN",
    "FORMAT",
    "PROOF_FORMAT",
    "TRANSCRIPT_LABEL",
    "Check",
    "CheckpointBody",
    "CosignBody",
    "Member",
    "Report",
    "TranscriptWriter",
    "check_checkpoint_body",
    "check_cosign_body",
    "check_proof",
    "checkpoint_body",
    "cosign_body",
    "leaves",
    "make_proof",
    "origin",
    "parse_origin",
    "read_lines",
    "verify_transcript",
]
