"""Count the words of a text and write the most frequent ones.

A Beam-style word count: it runs on headrace as written, and on Apache Beam
by changing only the ``import headrace as beam`` line to
``import apache_beam as beam``.

    python samples/wordcount.py --output /tmp/wordcount/out
    python samples/wordcount.py --input my.txt --output /tmp/wc/out --runner=direct

Any argument not listed below is a pipeline option (``--runner`` chooses the
runner).
"""

import argparse
import glob
import logging
import os
import re

import headrace as beam

DEFAULT_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "kinglear.txt")
WORD_RE = re.compile(r"[A-Za-z']+")


class ExtractWordsFn(beam.DoFn):
    """Splits a line into lowercase words, dropping leading and trailing apostrophes."""

    def process(self, line):
        for token in WORD_RE.findall(line):
            word = token.strip("'").lower()
            if word:
                yield word


def format_result(word_count):
    word, count = word_count
    return f"{word}: {count}"


def by_count_then_word(word_count):
    # Ties on the count are broken by the word, so the top N is deterministic.
    return (word_count[1], word_count[0])


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=DEFAULT_INPUT, help="Text file(s) to read.")
    parser.add_argument("--output", required=True, help="Output path prefix.")
    parser.add_argument("--top", type=int, default=20, help="How many words to keep.")
    known_args, pipeline_args = parser.parse_known_args(argv)
    options = beam.options.pipeline_options.PipelineOptions(pipeline_args)

    with beam.Pipeline(options=options) as p:
        (
            p
            | "Read" >> beam.io.ReadFromText(known_args.input)
            | "Split" >> beam.ParDo(ExtractWordsFn())
            | "Count" >> beam.combiners.Count.PerElement()
            | "Top" >> beam.combiners.Top.Of(known_args.top, key=by_count_then_word)
            | "Unpack" >> beam.FlatMap(lambda top: top)
            | "Format" >> beam.Map(format_result)
            | "Write" >> beam.io.WriteToText(known_args.output)
        )

    # The pipeline has finished when the `with` block exits: show what it wrote.
    lines = []
    for path in sorted(glob.glob(known_args.output + "*")):
        with open(path, encoding="utf-8") as f:
            lines.extend(line.rstrip("\n") for line in f if line.strip())
    lines.sort(key=lambda s: (-int(s.rsplit(": ", 1)[1]), s))
    print(f"Top {len(lines)} words in {known_args.input}:")
    for line in lines:
        print("  " + line)
    return lines


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    run()
