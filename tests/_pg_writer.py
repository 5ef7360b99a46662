"""Child process of tests/test_postgres.py: one reader writing as fast as it can.

    python _pg_writer.py STUDY_DIR READER N

Alternates answer updates (the comment) and annotation edits (a caliper moved) on the
reader's first read, N changes in all; prints ``OK <n>`` or the first error.
"""

from __future__ import annotations

import sys


def main() -> int:
    from napari_m1.session import ReaderSession

    study, reader, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rs = ReaderSession(study, reader)
    try:
        p = rs.reads()[0].pseudonym
        rs.open_read(p)
        for i in range(n):
            if i % 2 == 0:
                rs.set_answer(p, "comment", f"{reader} change {i}")
            else:
                rs.save_annotation(
                    p,
                    "L_hand_caliper",
                    {
                        "slot": "L_hand_caliper",
                        "kind": "caliper",
                        "points_ras": [[0.0, 0.0, 0.0], [1.0 + i / 1000, 0.0, 0.0]],
                    },
                )
    except Exception as exc:  # surfaced to the test
        print(f"ERROR {type(exc).__name__}: {exc}")
        return 1
    finally:
        rs.close()
    print(f"OK {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
