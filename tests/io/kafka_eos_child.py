"""A process that drives WriteToKafka's exactly-once sink (writer and committer) as a
checkpointing CommittingSink operator does, so that tests can SIGKILL it anywhere.

It writes the records ``(f"k{i}", i)`` for ``i < total`` to ``topic``, takes checkpoint N
every ``every`` records (barrier: ``prepare_commit(N)``; the checkpoint, written atomically
to ``state_dir/chk-N``, holds the writer's state, the pending committables and the source
position; "complete" once the file exists), then commits (the notification) once the next
epoch has begun, as in a running job, where records after barrier N do not wait for it. On start it
restores from the newest checkpoint as the runtime would: commit every pending
committable, then ``restore_writer``; the source resumes at the checkpoint's position.

``--crash WINDOW:N`` prints ``WINDOW <name> <N>`` at that point of checkpoint N and then
waits to be killed (``during_commit`` goes on committing, racing the kill). Usage:

    python kafka_eos_child.py BOOTSTRAP TOPIC PREFIX STATE_DIR TOTAL EVERY [--crash W:N]
"""
import argparse
import glob
import os
import pickle
import sys
import time

WINDOWS = ("after_precommit", "after_complete", "during_commit", "after_commit")


def latest_checkpoint(state_dir):
    done = [int(os.path.basename(p)[4:]) for p in glob.glob(os.path.join(state_dir, "chk-*"))
            if not p.endswith(".tmp")]
    if not done:
        return None
    with open(os.path.join(state_dir, f"chk-{max(done)}"), "rb") as f:
        return pickle.load(f)


def save_checkpoint(state_dir, n, snapshot):
    path = os.path.join(state_dir, f"chk-{n}")
    with open(path + ".tmp", "wb") as f:
        pickle.dump(snapshot, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def main(argv):
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "prefix", "state_dir"):
        parser.add_argument(name)
    parser.add_argument("total", type=int)
    parser.add_argument("every", type=int)
    parser.add_argument("--crash", default="")
    args = parser.parse_args(argv)
    crash_window, _, crash_n = args.crash.partition(":")
    crash_at = (crash_window, int(crash_n)) if crash_window else None

    def window(name, n):
        if crash_at == (name, n):
            print(f"WINDOW {name} {n}", flush=True)
            if name != "during_commit":
                time.sleep(600)  # the test kills us here

    from headrace.io.kafka.transactional import KafkaTransactionalSink

    sink = KafkaTransactionalSink(args.bootstrap, args.topic, args.prefix,
                                  {"key_serializer": "str", "value_serializer": "json"},
                                  flush_timeout=10.0)
    committer = sink.create_committer(0, 1)
    restored = latest_checkpoint(args.state_dir)
    if restored is None:
        writer = sink.open_writer(0, 1)
        position, n, pending = 0, 0, {}
    else:
        pending = restored["pending"]
        committer.commit([c for m in sorted(pending) for c in pending[m]])
        pending = {}
        writer = sink.restore_writer(0, 1, [restored["writer"]])
        position, n = restored["position"], restored["checkpoint"]
    print(f"RUNNING {position}", flush=True)

    def write(start, end):
        for first in range(start, end, 7):  # a few batches
            writer.write_batch([(f"k{i}", i) for i in range(first, min(first + 7, end))])

    def notified(n):
        window("during_commit", n)
        for m in sorted(pending):
            committer.commit(pending.pop(m))
        window("after_commit", n)

    while position < args.total:
        end = min(position + args.every, args.total)
        head = min(position + 7, end)
        write(position, head)
        if pending:  # the notification of checkpoint n comes while epoch n + 1 is open
            notified(n)
        write(head, end)
        position = end
        n += 1
        committables = writer.prepare_commit(n)
        if committables:
            pending[n] = committables
        window("after_precommit", n)
        save_checkpoint(args.state_dir, n, {"writer": writer.snapshot_state(n),
                                            "pending": dict(pending), "position": position,
                                            "checkpoint": n})
        window("after_complete", n)
    if pending:
        notified(n)
    writer.close()
    committer.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
