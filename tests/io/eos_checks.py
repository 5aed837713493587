"""The exactly-once check of the Kafka sink tests, on the read_committed oracle's view."""
import collections

from headrace.testing import read_committed as rc


def committed_once(bootstrap, topic, partitions, expected, ident):
    """Read ``topic`` as read_committed readers see it and check that every ``expected``
    identity (``ident(record)``) is there exactly once and no transaction is left open.
    Returns ``(copies by identity, number of aborted records)``."""
    copies = collections.defaultdict(list)
    aborted = 0
    for partition in range(partitions):
        log = rc.read_partition(bootstrap, topic, partition)
        assert not log.invisible, f"open transactions left in partition {partition}"
        for record in log.committed:
            copies[ident(record)].append(record)
        aborted += len(log.aborted)
    missing = sorted(set(expected) - set(copies))
    assert not missing, f"missing {missing[:20]}"
    assert not set(copies) - set(expected), f"unexpected {sorted(set(copies) - set(expected))}"
    duplicates = sorted(i for i, c in copies.items() if len(c) > 1)
    assert not duplicates, (f"{len(duplicates)} records committed more than once, e.g. "
                            f"{[copies[i] for i in duplicates[:3]]}")
    return copies, aborted
