#!/usr/bin/env python3
"""Builds the committed seed corpus for the fuzz targets from vectors/.

    python3 fuzz/seed-corpus.py

parse, roundtrip, encode: every vector's datagram (valid and invalid).
option_values: every distinct option value of the valid vectors.
uri, link_format: small hand-picked seeds listed below.
Re-running is idempotent (files are named by content hash).
"""
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

URIS = [
    "coap://example.com:5683/~sensors/temp.xml",
    "coap://EXAMPLE.com/%7Esensors/temp.xml",
    "coap://[2001:db8::2:1]/",
    "coaps://[::1]:61616/a/./b/../c?x=1&y",
    "coap+tcp://host/.well-known/core?rt=temp*",
    "coaps+tcp://h:0/%C3%A9t%C3%A9/",
    "coap://127.0.0.1/seg1/seg2/seg3?q=%26%3D",
    "coap://h/#frag",
]

LINKS = [
    '</sensors/temp>;if="sensor",</sensors/light>;if="sensor"',
    '</sensors>;ct=40;title="Sensor Index",</sensors/temp>;rt="temperature-c";if="sensor",'
    '</sensors/light>;rt="light-lux";if="sensor",<http://www.example.com/sensors/t123>;'
    'anchor="/sensors/temp";rel="describedby",</t>;anchor="/sensors/temp";rel="alternate"',
    '</link1>;rt="Type1 Type2";if="If1",</link2>;rt="Type2 Type3";if="If2",</link3>;rt="Type1 Type3";if="foo"',
    '</obs>;obs;rt="observe";title="a \\"quoted\\" title, with; separators"',
    "rt=Type1\n</a>;rt=Type1",
]


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    vec_dir = os.path.join(ROOT, "vectors")
    n = 0
    for fn in sorted(os.listdir(vec_dir)):
        if not fn.endswith(".json"):
            continue
        for v in json.load(open(os.path.join(vec_dir, fn))):
            b = bytes.fromhex(v["hex"])
            for t in ("parse", "roundtrip", "encode"):
                put(t, b)
            n += 1
            for _num, val in v.get("options", []):
                put("option_values", bytes.fromhex(val))
    for u in URIS:
        put("uri", u.encode())
    for link in LINKS:
        put("link_format", link.encode())
    print("seeded corpus from %d vectors" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
