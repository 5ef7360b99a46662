"""``study verify``: the audit hash chain, a replay of the log against the data, and
coordinator operations started but never completed — all on one database snapshot."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ._common import ANSWER_FIELDS, annotation_digest, text_digest
from ._coordinator_store import Snapshot
from ._db import GENESIS, _encode_str

__all__ = ["VerifyResult", "verify_snapshot"]

#: Coordinator operations logged as intent (``<event>_started``) and completion.
PUBLISHED = ("export", "unblind")


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`~napari_m1.session.Study.verify`.

    Attributes
    ----------
    ok : bool
        No problem found (warnings do not make it False).
    n_entries : int
    problems : tuple of str
        Evidence of tampering or damage (``TAMPERED`` on the command line).
    integrity : str
        SQLite's ``integrity_check``.
    last_hash : str
        Hash of the newest entry (write it down to pin the log's length).
    warnings : tuple of str
        Honest entries that need a look, e.g. an unblinding started whose completion
        was never recorded (a crash: the file may exist).
    read_only : bool
        The database was verified as a read-only file.
    """

    ok: bool
    n_entries: int
    problems: tuple[str, ...]
    integrity: str
    last_hash: str = ""
    warnings: tuple[str, ...] = ()
    read_only: bool = False


def verify_snapshot(snap: Snapshot, *, read_only: bool = False) -> VerifyResult:
    """Verify one :class:`~._coordinator_store.Snapshot` (pure: no database access)."""
    rows = snap.audit
    problems = _check_chain(rows)
    if not rows:  # study init always writes entry 1; an empty log was emptied
        problems.append("audit log is empty (every entry is missing, even study_init)")
    warnings: list[str] = []
    if not problems:
        replay, warnings = _replay(rows, snap)
        problems.extend(replay)
    if snap.integrity != "ok":
        problems.append(f"database integrity check: {snap.integrity}")
    last = rows[-1][7] if rows else GENESIS
    return VerifyResult(
        not problems, len(rows), tuple(problems), snap.integrity, last, tuple(warnings), read_only
    )


def _check_chain(rows: list[tuple[Any, ...]]) -> list[str]:
    """Sequence numbers, previous-hash links and each entry's hash over its stored text.

    The same bytes as :func:`~._db.audit_hash` hashes (a test holds them equal), built
    inline: the stored strings are hashed as stored, nothing is parsed or re-encoded
    but the JSON string quoting of each field (cached for the few distinct actors,
    events and pseudonyms).
    """
    sha256 = hashlib.sha256
    enc = _encode_str
    quoted: dict[str, str] = {}

    def q(text: str) -> str:
        hit = quoted.get(text)
        if hit is None:
            hit = quoted[text] = enc(text)
        return hit

    problems = []
    prev = GENESIS
    for i, (seq, at, actor, event, pseudonym, details, prev_hash, hash_) in enumerate(
        rows, start=1
    ):
        if seq != i:
            problems.append(f"entry {i}: sequence number {seq} (entries missing?)")
        if prev_hash != prev:
            problems.append(f"entry {seq}: previous-hash link broken")
        payload = (
            f"[{enc(prev_hash)},{int(seq)},{enc(at)},{q(actor)},{q(event)},"
            f"{q(pseudonym or '')},{enc(details)}]"
        )
        if sha256(payload.encode("utf-8")).hexdigest() != hash_:
            problems.append(f"entry {seq} ({event}): content does not match its hash (edited)")
        prev = hash_
    return problems


def _replay(audit: list[tuple[Any, ...]], snap: Snapshot) -> tuple[list[str], list[str]]:
    """Replay the log and compare with the stored answers, locks and annotations: a value
    changed in the database behind napari-m1's back shows up here. Also lists
    coordinator operations whose completion is missing."""
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    locked: dict[tuple[str, str], bool] = {}
    anns: dict[tuple[str, str], dict[str, str]] = {}
    started: dict[str, dict[str, Any]] = {}
    for seq, _at, actor, ev, pseudonym, details, _prev, _hash in audit:
        if ev in ("open", "refused"):
            continue  # change nothing that is stored
        key = (actor, pseudonym)
        if ev == "submit":
            locked[key] = True
            continue
        d = _loads(details or "{}")
        if ev == "answer":
            answers.setdefault(key, {})[d["field"]] = d["value"]
        elif ev == "unlock":
            locked[(d["reader"], pseudonym)] = False
        elif ev == "annotation":
            slots = anns.setdefault(key, {})
            if d.get("deleted"):
                slots.pop(d["slot"], None)
            else:
                slots[d["slot"]] = d.get("digest", "")
        elif ev.endswith("_started") and ev[: -len("_started")] in PUBLISHED:
            started[d.get("op", "")] = {**d, "event": ev[: -len("_started")], "seq": seq}
        elif (ev in PUBLISHED or ev.endswith("_failed")) and "op" in d:
            started.pop(d["op"], None)
    problems = []
    for r in snap.reads:
        key = (r["reader"], r["pseudonym"])
        who = f"read {r['pseudonym']} of {r['reader']}"
        logged = answers.get(key, {})
        for f in (*ANSWER_FIELDS, "comment"):
            want = logged.get(f, "" if f == "comment" else None)
            have = r[f] if f != "comment" else (r[f] or "")
            if have != want:
                problems.append(
                    f"{who}: {f} in the database differs from the audit log "
                    "(changed outside napari-m1)"
                )
        if bool(r["locked"]) != locked.get(key, False):
            problems.append(f"{who}: lock state differs from the audit log")
    stored: dict[tuple[str, str], dict[str, str]] = {}
    for a in snap.annotations:
        stored.setdefault((a["reader"], a["pseudonym"]), {})[a["slot"]] = a["data"]
    for key in set(stored) | set(anns):
        texts, want = stored.get(key, {}), anns.get(key, {})
        same = set(texts) == set(want) and all(_digest(texts[slot], want[slot]) for slot in texts)
        if not same:
            problems.append(
                f"read {key[1]} of {key[0]}: annotations differ from the audit "
                "log (changed outside napari-m1)"
            )
    warnings = [
        f"{s['event']} started (entry {s['seq']}, file {s.get('file', '?')}), no completion "
        "recorded: it was interrupted, and the file may exist"
        for s in started.values()
    ]
    return problems, warnings


_scan_once = json.JSONDecoder().scan_once  # the C scanner behind json.loads


def _loads(text: str) -> Any:
    """``json.loads`` of an audit entry's details (whose hash verify has just checked),
    without its per-call wrapper: a third of the replay's time on a long log."""
    try:
        obj, end = _scan_once(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):  # leading/trailing space, or not JSON: the full parser decides
        return json.loads(text)
    return obj


def _digest(text: str, logged: str) -> bool:
    """Does a stored annotation text match its logged digest?

    Texts are stored as canonical JSON, so hashing the text as it is suffices; only a
    mismatch (or a row written by an older version in another key order) is parsed
    and re-serialised.
    """
    if text_digest(text) == logged:
        return True
    try:
        return annotation_digest(json.loads(text)) == logged
    except ValueError:
        return False
