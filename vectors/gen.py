#!/usr/bin/env python3
"""Generate the coap-proto CoAP (RFC 7252, UDP framing) test vectors.

    python3 vectors/gen.py            # (re)writes vectors/*.json next to this script
    python3 vectors/gen.py --check    # only verifies that the files on disk are up to date

Python 3 standard library only.  Every valid vector is built from a field-level
description (type, code, MID, token, [(option number, value bytes)], payload)
by the small encoder below; every invalid vector is literal hex.  Before
anything is written, each vector is run through an independent reference
parser (parse() below, implementing the error semantics of vectors/README.md):

  * valid vectors must parse back to exactly the described fields, and
    re-encode to exactly the same bytes (canonical framing);
  * invalid vectors must fail with exactly the hand-written error kind and
    offset.

The RFC examples are additionally pinned to the bytes/sizes printed in the RFC
figures (see the assert_* calls).

"tshark_expert" is what tshark 4.0.17 reports for each datagram when the whole
file is decoded in file order by
`python3 /work/shared/interop/tshark-decode.py --check FILE`.  It is predicted
here by tshark_option_experts() (option-number / option-length warnings of
Wireshark's CoAP dissector) plus explicit per-vector entries (the
"Retransmitted" warnings that come from Wireshark's MID/token tracking across
the capture).  The prediction is verified with that --check command; see
README.md.
"""

import json
import os
import sys

TSHARK = "tshark 4.0.17"
CHECKED = "cross-checked with %s (tshark-decode.py --check)" % TSHARK

TYPES = {"CON": 0, "NON": 1, "ACK": 2, "RST": 3}
TYPE_NAMES = {v: k for k, v in TYPES.items()}

# Option numbers (RFC 7252 §5.10 / §12.2, RFC 7641, RFC 7959).
IF_MATCH, URI_HOST, ETAG, IF_NONE_MATCH, OBSERVE, URI_PORT = 1, 3, 4, 5, 6, 7
LOCATION_PATH, URI_PATH, CONTENT_FORMAT, MAX_AGE, URI_QUERY = 8, 11, 12, 14, 15
ACCEPT, LOCATION_QUERY, BLOCK2, BLOCK1, SIZE2 = 17, 20, 23, 27, 28
PROXY_URI, PROXY_SCHEME, SIZE1 = 35, 39, 60


# ---------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------

def uint(n):
    """Minimal-length big-endian uint (RFC 7252 §3.2): 0 -> zero bytes."""
    assert n >= 0
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


SZX = {16: 0, 32: 1, 64: 2, 128: 3, 256: 4, 512: 5, 1024: 6}


def block(num, more, size):
    """Block1/Block2 option value, RFC 7959 §2.2: NUM<<4 | M<<3 | SZX, minimal uint."""
    assert 0 <= num < (1 << 20)
    return uint(num << 4 | (8 if more else 0) | SZX[size])


def code_byte(code):
    c, d = code.split(".")
    c, d = int(c), int(d)
    assert 0 <= c <= 7 and 0 <= d <= 31 and len(code.split(".")[1]) == 2
    return c << 5 | d


def code_str(b):
    return "%d.%02d" % (b >> 5, b & 31)


def ext_form(n):
    """(nibble, extended bytes) for an option delta or length (RFC 7252 §3.1)."""
    if n < 13:
        return n, b""
    if n < 269:
        return 13, bytes([n - 13])
    assert n <= 269 + 0xFFFF
    return 14, (n - 269).to_bytes(2, "big")


def encode(typ, code, mid, token=b"", options=(), payload=b""):
    assert len(token) <= 8 and 0 <= mid <= 0xFFFF
    out = bytearray([0x40 | TYPES[typ] << 4 | len(token), code_byte(code)])
    out += mid.to_bytes(2, "big") + token
    prev = 0
    for num, val in options:
        # descriptions list options in wire order; repeated numbers keep their order
        assert num >= prev, "options must be listed in ascending order"
        dn, de = ext_form(num - prev)
        ln, le = ext_form(len(val))
        out.append(dn << 4 | ln)
        out += de + le + val
        prev = num
    if payload:
        out += b"\xff" + payload
    return bytes(out)


# ---------------------------------------------------------------------------
# Reference parser (the error semantics documented in README.md)
# ---------------------------------------------------------------------------

class ParseError(Exception):
    def __init__(self, kind, offset):
        Exception.__init__(self, "%s at %d" % (kind, offset))
        self.kind, self.offset = kind, offset


def parse(data):
    n = len(data)
    if n < 4:
        raise ParseError("too_short", 0)
    if data[0] >> 6 != 1:
        raise ParseError("unsupported_version", 0)
    tkl = data[0] & 0x0F
    if tkl > 8:
        raise ParseError("invalid_token_length", 0)
    if data[1] == 0 and (tkl != 0 or n > 4):
        raise ParseError("empty_message_not_empty", 4)
    if 4 + tkl > n:
        raise ParseError("token_truncated", 4)
    msg = {"type": TYPE_NAMES[data[0] >> 4 & 3], "code": code_str(data[1]),
           "mid": int.from_bytes(data[2:4], "big"), "token": bytes(data[4:4 + tkl]),
           "options": [], "payload": b""}
    pos, num = 4 + tkl, 0
    while pos < n:
        p = pos
        if data[p] == 0xFF:
            if p + 1 == n:
                raise ParseError("empty_payload", p)
            msg["payload"] = bytes(data[p + 1:])
            break
        dn, ln = data[p] >> 4, data[p] & 0x0F
        if dn == 15:
            raise ParseError("reserved_option_delta", p)
        if ln == 15:
            raise ParseError("reserved_option_length", p)
        q = p + 1
        vals = []
        for nib in (dn, ln):
            if nib == 13:
                if q + 1 > n:
                    raise ParseError("option_header_truncated", p)
                vals.append(13 + data[q])
                q += 1
            elif nib == 14:
                if q + 2 > n:
                    raise ParseError("option_header_truncated", p)
                vals.append(269 + int.from_bytes(data[q:q + 2], "big"))
                q += 2
            else:
                vals.append(nib)
        delta, length = vals
        if num + delta > 0xFFFF:
            raise ParseError("option_number_overflow", p)
        if q + length > n:
            raise ParseError("option_value_truncated", p)
        num += delta
        msg["options"].append((num, bytes(data[q:q + length])))
        pos = q + length
    return msg


# ---------------------------------------------------------------------------
# Model of tshark 4.0.17's option warnings (verified by tshark-decode.py --check)
# ---------------------------------------------------------------------------

# Options Wireshark 4.0.17's CoAP dissector knows, with the value-length range it
# enforces (it prints "Invalid Option Range: LEN (MIN < x < MAX)" outside it;
# the bounds are inclusive despite the "<").  These are RFC 7252 §5.10 /
# RFC 7641 / RFC 7959 lengths, except Uri-Query, where tshark wants 1-255 and
# RFC 7252 says 0-255.
TSHARK_KNOWN = {
    IF_MATCH: (0, 8), URI_HOST: (1, 255), ETAG: (1, 8), IF_NONE_MATCH: (0, 0),
    OBSERVE: (0, 3), URI_PORT: (0, 2), LOCATION_PATH: (0, 255), URI_PATH: (0, 255),
    CONTENT_FORMAT: (0, 2), MAX_AGE: (0, 4), URI_QUERY: (1, 255), ACCEPT: (0, 2),
    LOCATION_QUERY: (0, 255), BLOCK2: (0, 3), BLOCK1: (0, 3), SIZE2: (0, 4),
    PROXY_URI: (1, 1034), PROXY_SCHEME: (1, 255), SIZE1: (0, 4),
}
OPTION_NAMES = {
    0: "(reserved 0)", IF_MATCH: "If-Match", URI_HOST: "Uri-Host", ETAG: "ETag",
    IF_NONE_MATCH: "If-None-Match", OBSERVE: "Observe", URI_PORT: "Uri-Port",
    LOCATION_PATH: "Location-Path", URI_PATH: "Uri-Path",
    CONTENT_FORMAT: "Content-Format", MAX_AGE: "Max-Age", URI_QUERY: "Uri-Query",
    ACCEPT: "Accept", LOCATION_QUERY: "Location-Query", BLOCK2: "Block2",
    BLOCK1: "Block1", SIZE2: "Size2", PROXY_URI: "Proxy-Uri",
    PROXY_SCHEME: "Proxy-Scheme", SIZE1: "Size1",
}


def tshark_option_experts(options):
    """Predicted tshark warnings for the options, and the reasons, in option order."""
    experts, why, unknown = [], [], []
    for num, val in options:
        if num not in TSHARK_KNOWN:
            # Wireshark says "Invalid" below 2048 (the IETF / Specification Required
            # ranges of RFC 7252 §12.2, Table 8) and "Unknown" from 2048 on.
            experts.append("%s Option Number %d" % ("Invalid" if num < 2048 else "Unknown", num))
            if num not in unknown:
                unknown.append(num)
        else:
            lo, hi = TSHARK_KNOWN[num]
            if not lo <= len(val) <= hi:
                experts.append("Invalid Option Range: %d (%d < x < %d)" % (len(val), lo, hi))
                if num == URI_QUERY:
                    w = ("tshark wants a Uri-Query of 1-255 bytes while RFC 7252 §5.10 "
                         "allows 0-255")
                else:
                    src = ("RFC 7641 §2" if num == OBSERVE else "RFC 7959 §2.1/§4"
                           if num in (BLOCK1, BLOCK2, SIZE2) else "RFC 7252 §5.10")
                    w = ("a %d-byte %s is outside its registered length %d-%d (%s), "
                         "which is not a parse error" % (len(val), OPTION_NAMES[num], lo, hi, src))
                if w not in why:
                    why.append(w)
    if unknown:
        ranges = []
        for num in unknown:
            r = ("reserved" if num == 0 else "unassigned, IETF range 0-255" if num < 256 else
                 "unassigned, Specification Required range 256-2047" if num < 2048 else
                 "unassigned, Expert Review range 2048-64999" if num < 65000 else
                 "experimental range 65000-65535")
            ranges.append("%d (%s)" % (num, r))
        why.insert(0, "the dissector does not know option%s %s; it says 'Invalid' below "
                      "2048 and 'Unknown' from 2048 on"
                   % ("s" if len(unknown) > 1 else "", ", ".join(ranges)))
    return experts, why


# ---------------------------------------------------------------------------
# Vector construction
# ---------------------------------------------------------------------------

FILES = {}      # file -> list of vectors
NAMES = set()


def add(fname, vec):
    assert vec["name"] not in NAMES, "duplicate name %s" % vec["name"]
    NAMES.add(vec["name"])
    FILES.setdefault(fname, []).append(vec)


def valid(fname, name, typ, code, mid, token=b"", options=(), payload=b"",
          prov="", retrans_note=""):
    """Add a valid vector.  retrans_note explains an expected tshark "Retransmitted"."""
    options = [(n, bytes(v)) for n, v in options]
    data = encode(typ, code, mid, token, options, payload)
    msg = parse(data)
    assert msg == {"type": typ, "code": code, "mid": mid, "token": bytes(token),
                   "options": options, "payload": bytes(payload)}, name
    again = encode(msg["type"], msg["code"], msg["mid"], msg["token"],
                   msg["options"], msg["payload"])
    assert again == data, name
    experts, why = tshark_option_experts(options)
    add(fname, {
        "name": name, "valid": True, "hex": data.hex(), "type": typ, "code": code,
        "mid": mid, "token": bytes(token).hex(),
        "options": [[n, v.hex()] for n, v in options], "payload": bytes(payload).hex(),
        "tshark_expert": experts, "provenance": prov,
        "_why": why, "_retrans_note": retrans_note,
    })
    return data


def finish_valid(vectors):
    """Second pass over one file in output (name) order.

    Wireshark's CoAP dissector remembers every CON/NON of the capture by (MID,
    token) and flags a later CON/NON with the same pair as "Retransmitted"
    (repeated ACKs and RSTs are not flagged).  tshark-decode.py --check decodes
    a whole file as one capture in file order, so the prediction is made here,
    in that order.  Then the tshark statement is appended to the provenance.
    """
    seen = {}
    for vec in vectors:
        why = vec.pop("_why")
        note = vec.pop("_retrans_note")
        if vec["type"] in ("CON", "NON"):
            key = (vec["mid"], vec["token"])
            if key in seen:
                vec["tshark_expert"] = vec["tshark_expert"] + ["Retransmitted"]
                why = why + ["its request/response tracking saw a %s with the same MID "
                             "0x%04x and token 0x%s earlier in this file (%s)%s"
                             % (seen[key][1], vec["mid"], vec["token"], seen[key][0],
                                note and ": " + note)]
            else:
                seen[key] = (vec["name"], vec["type"])
                assert not note, vec["name"]
        else:
            assert not note, vec["name"]
        if vec["tshark_expert"]:
            check = "%s: agrees on every field; tshark expert %s because %s" % (
                CHECKED, json.dumps(vec["tshark_expert"]), "; ".join(why))
        else:
            check = "%s: agrees, no expert warnings" % CHECKED
        vec["provenance"] = "%s; %s" % (vec["provenance"], check)


def invalid(name, hexstr, kind, offset, prov):
    data = bytes.fromhex(hexstr)
    try:
        parse(data)
    except ParseError as e:
        assert (e.kind, e.offset) == (kind, offset), "%s: reference parser says %s at %d" % (
            name, e.kind, e.offset)
    else:
        raise AssertionError("%s parses" % name)
    header = None
    if len(data) >= 4:
        header = {"type": TYPE_NAMES[data[0] >> 4 & 3], "code": code_str(data[1]),
                  "mid": int.from_bytes(data[2:4], "big")}
    add("invalid.json", {
        "name": name, "valid": False, "hex": data.hex(),
        "error": {"kind": kind, "offset": offset}, "header": header, "provenance": prov,
    })


def body_desc(label):
    return "16-byte ASCII records '%s %s\\n'" % (label, "N" * (14 - len(label)))


def text_body(label, n):
    """Deterministic ASCII body: 16-byte records "<label> <zero-padded k>\\n", cut to n."""
    width = 14 - len(label)
    assert width >= 1
    recs = "".join("%s %0*d\n" % (label, width, k) for k in range(n // 16 + 1))
    return recs.encode()[:n]


# ---------------------------------------------------------------------------
# RFC 7252
# ---------------------------------------------------------------------------

def rfc7252():
    F = "rfc7252.json"
    temp = [(URI_PATH, b"temperature")]
    c223 = b"22.3 C"

    def v(name, *a, **kw):
        return valid(F, "rfc7252-" + name, *a, **kw)

    # Figure 16 (bytes and sizes are printed in the figure)
    f = "RFC 7252 Appendix A, Figure 16"
    a = v("fig16-1-con-get", "CON", "0.01", 0x7d34, b"", temp, prov=f + " (request)")
    b = v("fig16-2-ack-205", "ACK", "2.05", 0x7d34, b"", [], c223,
          prov=f + " (piggybacked response)")
    assert a.hex() == "40017d34bb" + b"temperature".hex() and len(a) == 16
    assert b.hex() == "60457d34ff" + c223.hex() and len(b) == 11

    # Figure 17
    f = "RFC 7252 Appendix A, Figure 17"
    a = v("fig17-1-con-get", "CON", "0.01", 0x7d35, b"\x20", temp, prov=f + " (request)")
    b = v("fig17-2-ack-205", "ACK", "2.05", 0x7d35, b"\x20", [], c223,
          prov=f + " (piggybacked response)")
    assert a.hex().startswith("41017d3520bb") and len(a) == 17
    assert b.hex().startswith("61457d3520ff") and len(b) == 12

    # Figure 18: request lost, retransmitted
    f = "RFC 7252 Appendix A, Figure 18"
    a = v("fig18-1-con-get-lost", "CON", "0.01", 0x7d36, b"\x31", temp,
          prov=f + " (first transmission, lost)")
    b = v("fig18-2-con-get-retransmitted", "CON", "0.01", 0x7d36, b"\x31", temp,
          prov=f + " (retransmission after ACK_TIMEOUT; byte-identical to fig18-1)",
          retrans_note="this is the retransmission drawn in the figure")
    assert a == b
    v("fig18-3-ack-205", "ACK", "2.05", 0x7d36, b"\x31", [], c223,
      prov=f + " (piggybacked response)")

    # Figure 19: ACK lost, request retransmitted, ACK retransmitted
    f = "RFC 7252 Appendix A, Figure 19"
    v("fig19-1-con-get", "CON", "0.01", 0x7d37, b"\x42", temp, prov=f + " (request)")
    v("fig19-2-ack-205-lost", "ACK", "2.05", 0x7d37, b"\x42", [], c223,
      prov=f + " (piggybacked response, lost)")
    v("fig19-3-con-get-retransmitted", "CON", "0.01", 0x7d37, b"\x42", temp,
      prov=f + " (request retransmitted; byte-identical to fig19-1)",
      retrans_note="this is the retransmission drawn in the figure")
    v("fig19-4-ack-205-retransmitted", "ACK", "2.05", 0x7d37, b"\x42", [], c223,
      prov=f + " (response sent again; byte-identical to fig19-2; tshark does not flag "
      "repeated ACKs as retransmissions)")

    # Figure 20: separate response
    f = "RFC 7252 Appendix A, Figure 20"
    v("fig20-1-con-get", "CON", "0.01", 0x7d38, b"\x53", temp, prov=f + " (request)")
    a = v("fig20-2-ack-empty", "ACK", "0.00", 0x7d38, prov=f + " (Empty ACK of the request)")
    v("fig20-3-con-205", "CON", "2.05", 0xad7b, b"\x53", [], c223,
      prov=f + " (separate response)")
    b = v("fig20-4-ack-empty", "ACK", "0.00", 0xad7b,
          prov=f + " (client's Empty ACK of the separate response)")
    assert a.hex() == "60007d38" and b.hex() == "6000ad7b"

    # Figure 21: separate response, client lost state -> RST
    f = "RFC 7252 Appendix A, Figure 21"
    v("fig21-1-con-get", "CON", "0.01", 0x7d39, b"\x64", temp, prov=f + " (request)")
    v("fig21-2-ack-empty", "ACK", "0.00", 0x7d39, prov=f + " (Empty ACK, ignored by the client)")
    v("fig21-3-con-205", "CON", "2.05", 0xad7c, b"\x64", [], c223,
      prov=f + " (unexpected separate response)")
    a = v("fig21-4-rst", "RST", "0.00", 0xad7c, prov=f + " (Reset of the separate response)")
    assert a.hex() == "7000ad7c"

    # Figure 22: NON request, NON response
    f = "RFC 7252 Appendix A, Figure 22"
    v("fig22-1-non-get", "NON", "0.01", 0x7d40, b"\x75", temp, prov=f + " (request)")
    v("fig22-2-non-205", "NON", "2.05", 0xad7d, b"\x75", [], c223, prov=f + " (response)")

    # Figure 23: multicast NON request, three NON responses
    f = "RFC 7252 Appendix A, Figure 23"
    v("fig23-1-non-get-multicast", "NON", "0.01", 0x7d41, b"\x86", temp,
      prov=f + " (request to ff02::1)")
    v("fig23-2-non-205-server-a", "NON", "2.05", 0x60b1, b"\x86", [], c223,
      prov=f + " (response of server A)")
    v("fig23-3-non-205-server-b-lost", "NON", "2.05", 0x01a0, b"\x86", [], b"20.9 C",
      prov=f + " (response of server B, lost)")
    v("fig23-4-non-404-server-c", "NON", "4.04", 0x952a, b"\x86", [],
      prov=f + " (4.04 of server C, no payload)")

    # §4.2 / §4.3 examples (prose, no figure: MIDs chosen)
    v("s4.2-ack-empty", "ACK", "0.00", 0x4242,
      prov="RFC 7252 §4.2 (and §1.2 'Empty Message'): an Empty ACK, 4 bytes; MID 0x4242 chosen")
    v("s4.3-ping-con-empty", "CON", "0.00", 0x4343,
      prov="RFC 7252 §4.3 'CoAP ping': an Empty Confirmable message; MID 0x4343 chosen")
    v("s4.3-ping-rst", "RST", "0.00", 0x4343,
      prov="RFC 7252 §4.3 / §4.2: the Reset answering the ping (same MID 0x4343)")

    # Appendix B: URI examples.  Only the options are given; header chosen.
    f = ("RFC 7252 Appendix B, example %d (options as listed there; header CON GET, "
         "MID 0x%04x and empty token chosen; the destination address/port are not options)")
    v("appb-1-no-options", "CON", "0.01", 0xb001, prov=f % (1, 0xb001) +
      " -> coap://[2001:db8::2:1]/")
    v("appb-2-uri-host", "CON", "0.01", 0xb002, b"", [(URI_HOST, b"example.net")],
      prov=f % (2, 0xb002) + " -> coap://example.net/")
    v("appb-3-host-path", "CON", "0.01", 0xb003, b"",
      [(URI_HOST, b"example.net"), (URI_PATH, b".well-known"), (URI_PATH, b"core")],
      prov=f % (3, 0xb003) + " -> coap://example.net/.well-known/core")
    v("appb-4-utf8-path", "CON", "0.01", 0xb004, b"",
      [(URI_HOST, b"xn--18j4d.example"),
       (URI_PATH, bytes.fromhex("E38193E38293E381ABE381A1E381AF"))],
      prov=f % (4, 0xb004) + " -> coap://xn--18j4d.example/%E3%81%93%E3%82%93%E3%81%AB%E3%81%A1%E3%81%AF")
    v("appb-5-empty-segments", "CON", "0.01", 0xb005, b"",
      [(URI_PATH, b""), (URI_PATH, b"/"), (URI_PATH, b""), (URI_PATH, b""),
       (URI_QUERY, b"//"), (URI_QUERY, b"?&")],
      prov=f % (5, 0xb005) + " -> coap://198.51.100.1:61616//%2F//?%2F%2F&?%26 "
      "(zero-length Uri-Path values, repeated options with delta 0)")


# ---------------------------------------------------------------------------
# RFC 7959
# ---------------------------------------------------------------------------

def rfc7959():
    F = "rfc7959.json"

    def v(name, *a, **kw):
        return valid(F, "rfc7959-" + name, *a, **kw)

    status = [(URI_PATH, b"status")]
    opts_path = [(URI_PATH, b"options")]
    soap = [(URI_PATH, b"soap")]
    STATUS = text_body("/status", 350)      # 2*128 < 350 <= 3*128 and 5*64 < 350 <= 6*64

    def tok(fig, mid):
        return bytes([fig, mid - 1233])

    def chosen(fig, body_desc):
        return ("MIDs as in the figure; the figure shows no token, chosen token = "
                "0x%02x followed by the exchange number (request MID - 1233); %s"
                % (fig, body_desc))

    def b2get(fig, name, mid, b2, path=status, note="", retrans_note=""):
        opts = list(path) + ([(BLOCK2, block(*b2))] if b2 else [])
        return v("fig%02d-%s" % (fig, name), "CON", "0.01", mid, tok(fig, mid), opts,
                 prov="RFC 7959 §3.1, Figure %d: CON [MID=%d], GET, /status%s%s; %s" % (
                     fig, mid, ", 2:%d/%d/%d" % b2 if b2 else "", note,
                     chosen(fig, "no payload"), ), retrans_note=retrans_note)

    def b2ack(fig, name, mid, b2, body, note=""):
        num, more, size = b2
        pl = body[num * size:(num + 1) * size]
        assert (len(pl) == size) if more else (1 <= len(pl) <= size)
        return v("fig%02d-%s" % (fig, name), "ACK", "2.05", mid, tok(fig, mid),
                 [(BLOCK2, block(*b2))], pl,
                 prov="RFC 7959 §3.1, Figure %d: ACK [MID=%d], 2.05 Content, 2:%d/%d/%d%s; %s" % (
                     fig, mid, num, more, size, note,
                     chosen(fig, "payload = bytes %d-%d of a 350-byte /status body "
                                 "(%s)"
                            % (num * size, num * size + len(pl) - 1, body_desc("/status")))),
                 )

    # Figure 2: simple block-wise GET
    b2get(2, "01-con-get", 1234, None)
    b2ack(2, "02-ack-205-b2-0-1-128", 1234, (0, 1, 128), STATUS)
    b2get(2, "03-con-get-b2-1-0-128", 1235, (1, 0, 128))
    b2ack(2, "04-ack-205-b2-1-1-128", 1235, (1, 1, 128), STATUS)
    b2get(2, "05-con-get-b2-2-0-128", 1236, (2, 0, 128))
    b2ack(2, "06-ack-205-b2-2-0-128", 1236, (2, 0, 128), STATUS)

    # Figure 3: early negotiation (the exchanges for MID 1236/1237 are elided in the figure)
    b2get(3, "01-con-get-b2-0-0-64", 1234, (0, 0, 64))
    b2ack(3, "02-ack-205-b2-0-1-64", 1234, (0, 1, 64), STATUS)
    b2get(3, "03-con-get-b2-1-0-64", 1235, (1, 0, 64))
    b2ack(3, "04-ack-205-b2-1-1-64", 1235, (1, 1, 64), STATUS)
    b2get(3, "05-con-get-b2-4-0-64", 1238, (4, 0, 64))
    b2ack(3, "06-ack-205-b2-4-1-64", 1238, (4, 1, 64), STATUS)
    b2get(3, "07-con-get-b2-5-0-64", 1239, (5, 0, 64))
    b2ack(3, "08-ack-205-b2-5-0-64", 1239, (5, 0, 64), STATUS)

    # Figure 4: late negotiation
    b2get(4, "01-con-get", 1234, None)
    b2ack(4, "02-ack-205-b2-0-1-128", 1234, (0, 1, 128), STATUS)
    for i, n in enumerate(range(2, 6)):
        mid = 1235 + i
        more = 1 if n < 5 else 0
        b2get(4, "%02d-con-get-b2-%d-0-64" % (3 + 2 * i, n), mid, (n, 0, 64))
        b2ack(4, "%02d-ack-205-b2-%d-%d-64" % (4 + 2 * i, n, more), mid, (n, more, 64), STATUS)

    # Figure 5: late negotiation, lost CON
    b2get(5, "01-con-get", 1234, None)
    b2ack(5, "02-ack-205-b2-0-1-128", 1234, (0, 1, 128), STATUS)
    b2get(5, "03-con-get-b2-2-0-64-lost", 1235, (2, 0, 64),
          note=" (first transmission, lost; drawn truncated as 'GE////')")
    b2get(5, "04-con-get-b2-2-0-64-retransmitted", 1235, (2, 0, 64),
          note=" (retransmission after timeout; byte-identical to fig05-03)",
          retrans_note="this is the retransmission drawn in the figure")
    b2ack(5, "05-ack-205-b2-2-1-64", 1235, (2, 1, 64), STATUS)
    b2get(5, "06-con-get-b2-5-0-64", 1238, (5, 0, 64))
    b2ack(5, "07-ack-205-b2-5-0-64", 1238, (5, 0, 64), STATUS)

    # Figure 6: late negotiation, lost ACK
    b2get(6, "01-con-get", 1234, None)
    b2ack(6, "02-ack-205-b2-0-1-128", 1234, (0, 1, 128), STATUS)
    b2get(6, "03-con-get-b2-2-0-64", 1235, (2, 0, 64))
    b2ack(6, "04-ack-205-b2-2-1-64-lost", 1235, (2, 1, 64), STATUS,
          note=" (lost; drawn truncated as '////tent, 2:2/1/64')")
    b2get(6, "05-con-get-b2-2-0-64-retransmitted", 1235, (2, 0, 64),
          note=" (retransmission after timeout; byte-identical to fig06-03)",
          retrans_note="this is the retransmission drawn in the figure")
    b2ack(6, "06-ack-205-b2-2-1-64-retransmitted", 1235, (2, 1, 64), STATUS,
          note=" (sent again; byte-identical to fig06-04; tshark does not flag repeated "
               "ACKs as retransmissions)")
    b2get(6, "07-con-get-b2-5-0-64", 1238, (5, 0, 64))
    b2ack(6, "08-ack-205-b2-5-0-64", 1238, (5, 0, 64), STATUS)

    # Block1 examples (§3.2, §3.3)
    def b1req(fig, sec, name, mid, method, path, pname, b1, body, bodydesc, extra=()):
        num, more, size = b1
        pl = body[num * size:(num + 1) * size]
        assert (len(pl) == size) if more else (1 <= len(pl) <= size)
        code = {"PUT": "0.03", "POST": "0.02"}[method]
        opts = list(path) + list(extra) + [(BLOCK1, block(*b1))]
        opts.sort(key=lambda o: o[0])
        shown = "1:%d/%d/%d" % b1
        return v("fig%02d-%s" % (fig, name), "CON", code, mid, tok(fig, mid), opts, pl,
                 prov="RFC 7959 §%s, Figure %d: CON [MID=%d], %s, /%s, %s%s; %s" % (
                     sec, fig, mid, method, pname, shown,
                     ", 2:0/0/64" if extra else "",
                     chosen(fig, "payload = bytes %d-%d of a %d-byte body (%s)"
                            % (num * size, num * size + len(pl) - 1, len(body), bodydesc))))

    def b1rsp(fig, sec, name, mid, code, b1, reqmid=None, note=""):
        cname = {"2.31": "2.31 Continue", "2.04": "2.04 Changed"}[code]
        return v("fig%02d-%s" % (fig, name), "ACK", code, mid, tok(fig, reqmid or mid),
                 [(BLOCK1, block(*b1))],
                 prov="RFC 7959 §%s, Figure %d: ACK [MID=%d], %s, 1:%d/%d/%d%s; %s" % (
                     sec, fig, mid, cname, b1[0], b1[1], b1[2], note,
                     chosen(fig, "no payload")))

    OPTS7 = text_body("options", 300)
    d7 = body_desc("options")
    # Figure 7: simple atomic block-wise PUT
    for i in range(3):
        more = 1 if i < 2 else 0
        b1req(7, "3.2", "%02d-con-put-b1-%d-%d-128" % (2 * i + 1, i, more), 1234 + i, "PUT",
              opts_path, "options", (i, more, 128), OPTS7, d7)
        b1rsp(7, "3.2", "%02d-ack-%s-b1-%d-%d-128" % (2 * i + 2, "231" if more else "204", i, more),
              1234 + i, "2.31" if more else "2.04", (i, more, 128))
    # Figure 8: simple stateless block-wise PUT
    for i in range(3):
        more = 1 if i < 2 else 0
        b1req(8, "3.2", "%02d-con-put-b1-%d-%d-128" % (2 * i + 1, i, more), 1234 + i, "PUT",
              opts_path, "options", (i, more, 128), OPTS7, d7)
        b1rsp(8, "3.2", "%02d-ack-204-b1-%d-0-128" % (2 * i + 2, i), 1234 + i, "2.04",
              (i, 0, 128))
    # Figure 9: atomic block-wise PUT with negotiation down to 32 bytes
    OPTS9 = text_body("options", 200)     # 128 + 2*32 < 200 <= 128 + 3*32
    b1req(9, "3.2", "01-con-put-b1-0-1-128", 1234, "PUT", opts_path, "options",
          (0, 1, 128), OPTS9, d7)
    b1rsp(9, "3.2", "02-ack-231-b1-0-1-32", 1234, "2.31", (0, 1, 32))
    b1req(9, "3.2", "03-con-put-b1-4-1-32", 1235, "PUT", opts_path, "options",
          (4, 1, 32), OPTS9, d7)
    b1rsp(9, "3.2", "04-ack-231-b1-4-1-32", 1235, "2.31", (4, 1, 32))
    b1req(9, "3.2", "05-con-put-b1-5-1-32", 1236, "PUT", opts_path, "options",
          (5, 1, 32), OPTS9, d7)
    def quirk(printed, acked):
        return (" (MID printed as %d although it acknowledges CON [MID=%d]; an ACK must "
                "echo the CON's MID, so this looks like an editorial slip in the figure; "
                "encoded as printed, it is a well-formed datagram either way; the token is "
                "the one of the exchange it answers)" % (printed, acked))
    b1rsp(9, "3.2", "06-ack-231-b1-5-1-32-mid-1235-as-printed", 1235, "2.31", (5, 1, 32),
          reqmid=1236, note=quirk(1235, 1236))
    b1req(9, "3.2", "07-con-put-b1-6-0-32", 1237, "PUT", opts_path, "options",
          (6, 0, 32), OPTS9, d7)
    b1rsp(9, "3.2", "08-ack-204-b1-6-0-32-mid-1236-as-printed", 1236, "2.04", (6, 0, 32),
          reqmid=1237, note=quirk(1236, 1237))

    # Figures 10 and 11: Block1 POST with block-wise response
    for fig, rsize, rbody in ((10, 128, 400), (11, 64, 200)):
        SOAPREQ = text_body("soap-req", 300)
        SOAPRSP = text_body("soap-rsp", rbody)
        dq = body_desc("soap-req")
        b1req(fig, "3.3", "01-con-post-b1-0-1-128", 1234, "POST", soap, "soap",
              (0, 1, 128), SOAPREQ, dq)
        b1rsp(fig, "3.3", "02-ack-231-b1-0-1-128", 1234, "2.31", (0, 1, 128))
        b1req(fig, "3.3", "03-con-post-b1-1-1-128", 1235, "POST", soap, "soap",
              (1, 1, 128), SOAPREQ, dq)
        b1rsp(fig, "3.3", "04-ack-231-b1-1-1-128", 1235, "2.31", (1, 1, 128))
        extra = [(BLOCK2, block(0, 0, 64))] if fig == 11 else []
        b1req(fig, "3.3", "05-con-post-b1-2-0-128" + ("-b2-0-0-64" if extra else ""), 1236,
              "POST", soap, "soap", (2, 0, 128), SOAPREQ, dq, extra=extra)
        rdesc = ("payload = bytes %%d-%%d of a %d-byte response body (16-byte ASCII "
                 "records 'soap-rsp NNNNNN\\n')" % rbody)
        pl = SOAPRSP[:rsize]
        shown = ("2:0/1/%d, 1:2/0/128" % rsize) if fig == 10 else ("1:2/0/128, 2:0/1/%d" % rsize)
        v("fig%02d-06-ack-204-b2-0-1-%d-b1-2-0-128" % (fig, rsize), "ACK", "2.04", 1236,
          tok(fig, 1236), [(BLOCK2, block(0, 1, rsize)), (BLOCK1, block(2, 0, 128))], pl,
          prov="RFC 7959 §3.3, Figure %d: ACK [MID=1236], 2.04 Changed, %s (wire order "
               "Block2 23 before Block1 27); %s" % (fig, shown,
                                                    chosen(fig, rdesc % (0, rsize - 1))))
        nblocks = (rbody + rsize - 1) // rsize
        for k, num in enumerate(range(1, nblocks)):
            mid = 1237 + k
            more = 1 if num < nblocks - 1 else 0
            v("fig%02d-%02d-con-post-b2-%d-0-%d" % (fig, 7 + 2 * k, num, rsize), "CON", "0.02",
              mid, tok(fig, mid), soap + [(BLOCK2, block(num, 0, rsize))],
              prov="RFC 7959 §3.3, Figure %d: CON [MID=%d], POST, /soap, 2:%d/0/%d (no "
                   "payload for requests with Block2 NUM != 0); %s"
                   % (fig, mid, num, rsize, chosen(fig, "no payload")))
            pl = SOAPRSP[num * rsize:(num + 1) * rsize]
            assert (len(pl) == rsize) if more else (1 <= len(pl) <= rsize)
            v("fig%02d-%02d-ack-204-b2-%d-%d-%d" % (fig, 8 + 2 * k, num, more, rsize), "ACK",
              "2.04", mid, tok(fig, mid), [(BLOCK2, block(num, more, rsize))], pl,
              prov="RFC 7959 §3.3, Figure %d: ACK [MID=%d], 2.04 Changed, 2:%d/%d/%d; %s"
                   % (fig, mid, num, more, rsize,
                      chosen(fig, rdesc % (num * rsize, num * rsize + len(pl) - 1))))
        assert nblocks == 4

    # Figures 12 and 13: Observe + Block2.  Headers are printed in hex in the figures.
    ICON_A = text_body("icon-f38e", 309)   # representation with ETag 6f00f38e
    ICON_B = text_body("icon-f392", 309)   # representation with ETag 6f00f392 (128+128+53)
    icon = [(URI_PATH, b"status-icon")]
    etag_a, etag_b = bytes.fromhex("6f00f38e"), bytes.fromhex("6f00f392")
    pdesc = ("payload = bytes %d-%d of a 309-byte status-icon representation (16-byte "
             "ASCII records '%s NNNNN\\n'), chosen: the figure only gives its length")

    def hdr(name, h):
        for vec in FILES[F]:
            if vec["name"] == "rfc7959-" + name:
                assert vec["hex"].startswith(h), (name, h)
                return
        raise AssertionError(name)

    for fig, size in ((12, 128), (13, 64)):
        s = "RFC 7959 §3.4, Figure %d" % fig
        p = "fig%02d-" % fig
        art = ("Figures 12 and 13 print the same MIDs and tokens, so in one capture tshark "
               "takes this Figure 13 message for a retransmission of the Figure 12 one (an "
               "artifact of checking the whole file as one capture)") if fig == 13 else ""
        rq = [(OBSERVE, b"")] + icon + ([(BLOCK2, block(0, 0, 64))] if fig == 13 else [])
        v(p + "01-con-get-observe", "CON", "0.01", 0x1636, b"\xfb", rq,
          prov=s + ": 'GET 0x41011636', Token 0xfb, Uri-Path status-icon, Observe (empty)"
          + (", Block2 0/0/64" if fig == 13 else "") + " (wire order Observe 6, Uri-Path 11"
          + (", Block2 23" if fig == 13 else "") + ")", retrans_note=art)
        hdr(p + "01-con-get-observe", "41011636")
        ro = [(ETAG, etag_a), (OBSERVE, uint(62350))] + \
             ([(MAX_AGE, uint(60))] if fig == 13 else []) + [(BLOCK2, block(0, 1, size))]
        v(p + "02-ack-205-observe-62350", "ACK", "2.05", 0x1636, b"\xfb", ro, ICON_A[:size],
          prov=s + ": '2.05 0x61451636', Token 0xfb, Block2 0/1/%d, Observe 62350, ETag "
          "6f00f38e%s, Payload [%d bytes] (wire order ETag 4, Observe 6%s, Block2 23); %s"
          % (size, ", Max-Age 60" if fig == 13 else "", size,
             ", Max-Age 14" if fig == 13 else "", pdesc % (0, size - 1, "icon-f38e")))
        hdr(p + "02-ack-205-observe-62350", "61451636")
        v(p + "03-con-205-notification-62354", "CON", "2.05", 0xaf9c, b"\xfb",
          [(ETAG, etag_b), (OBSERVE, uint(62354)), (BLOCK2, block(0, 1, size))], ICON_B[:size],
          prov=s + ": notification '2.05 0x4145af9c', Token 0xfb, Block2 0/1/%d, Observe "
          "62354, ETag 6f00f392, Payload [%d bytes]; %s"
          % (size, size, pdesc % (0, size - 1, "icon-f392")), retrans_note=art)
        hdr(p + "03-con-205-notification-62354", "4145af9c")
        v(p + "04-ack-empty", "ACK", "0.00", 0xaf9c,
          prov=s + ": client's Empty ACK 'Header: 0x6000af9c'")
        hdr(p + "04-ack-empty", "6000af9c")
        last = 2 if fig == 12 else 4
        for k, num in enumerate((1, last)):
            mid = 0x1637 + k
            more = 1 if num == 1 else 0
            v(p + "%02d-con-get-b2-%d-0-%d" % (5 + 2 * k, num, size), "CON", "0.01", mid, b"\xfc",
              icon + [(BLOCK2, block(num, 0, size))],
              prov=s + ": 'GET 0x4101%04x', Token 0xfc, Uri-Path status-icon, Block2 %d/0/%d"
              % (mid, num, size), retrans_note=art)
            hdr(p + "%02d-con-get-b2-%d-0-%d" % (5 + 2 * k, num, size), "4101%04x" % mid)
            pl = ICON_B[num * size:(num + 1) * size]
            assert len(pl) == (size if more else 53)
            v(p + "%02d-ack-205-b2-%d-%d-%d" % (6 + 2 * k, num, more, size), "ACK", "2.05", mid,
              b"\xfc", [(ETAG, etag_b), (BLOCK2, block(num, more, size))], pl,
              prov=s + ": '2.05 0x6145%04x', Token 0xfc, Block2 %d/%d/%d, ETag 6f00f392, "
              "Payload [%d bytes]; %s" % (mid, num, more, size, len(pl),
                                         pdesc % (num * size, num * size + len(pl) - 1,
                                                  "icon-f392")))
            hdr(p + "%02d-ack-205-b2-%d-%d-%d" % (6 + 2 * k, num, more, size), "6145%04x" % mid)

    # Prose examples (no figure): 4.08, 4.13, Size2, Size1.  Everything chosen.
    def prose(name, typ, code, mid, token, options, payload, text):
        return v("s" + name, typ, code, mid, token, options, payload,
                 prov="RFC 7959 %s; no figure, so MID 0x%04x, token 0x%s and payload "
                      "are chosen" % (text, mid, token.hex()))

    BIG = text_body("options", 1300)
    prose("2.5-1-con-put-b1-2-0-128-final", "CON", "0.03", 0x2501, b"\xe1",
          opts_path + [(BLOCK1, block(2, 0, 128))], OPTS7[256:300],
          "§2.5/§2.9.2: final Block1 block (bytes 256-299 of the Figure 7 body) that the "
          "server cannot complete")
    prose("2.5-2-ack-408", "ACK", "4.08", 0x2501, b"\xe1", [], b"",
          "§2.5/§2.9.2: 4.08 (Request Entity Incomplete) answering the final block "
          "when earlier blocks are missing")
    prose("2.9.3-1-con-put-no-block1", "CON", "0.03", 0x2931, b"\xe2",
          opts_path + [(CONTENT_FORMAT, uint(0))], OPTS7,
          "§2.9.3: a 300-byte PUT that does not use Block1 (Content-Format 0)")
    prose("2.9.3-2-ack-413-size1", "ACK", "4.13", 0x2931, b"\xe2", [(SIZE1, uint(256))], b"",
          "§2.9.3 and RFC 7252 §5.9.2.9/§5.10.9: 4.13 (Request Entity Too Large) with "
          "Size1 256 (maximum acceptable size), a hint to retry with Block1")
    prose("2.9.3-3-con-put-b1-0-1-1024", "CON", "0.03", 0x2933, b"\xe3",
          opts_path + [(BLOCK1, block(0, 1, 1024))], BIG[:1024],
          "§2.9.3: first block of a 1300-byte Block1 PUT with SZX 6 (1024 bytes)")
    prose("2.9.3-4-ack-413-b1-0-0-256", "ACK", "4.13", 0x2933, b"\xe3",
          [(BLOCK1, block(0, 0, 256))], b"",
          "§2.9.3: 4.13 whose Block1 carries a smaller SZX (0/0/256) than requested, "
          "a hint to try that smaller SZX")
    prose("4-1-con-get-size2-request", "CON", "0.01", 0x4001, b"\xe4",
          status + [(BLOCK2, block(0, 0, 64)), (SIZE2, uint(0))], b"",
          "§4: 'size request' - Size2 with value 0 (sent as a zero-length option, §4 "
          "implementation note) together with Block2 0/0/64")
    prose("4-2-ack-205-size2-350", "ACK", "2.05", 0x4001, b"\xe4",
          [(BLOCK2, block(0, 1, 64)), (SIZE2, uint(350))], STATUS[:64],
          "§4: 'size indication' - Size2 350 with the first 64-byte block (Block2 0/1/64) "
          "of the 350-byte /status body")
    prose("4-3-con-put-b1-size1-300", "CON", "0.03", 0x4003, b"\xe5",
          opts_path + [(BLOCK1, block(0, 1, 128)), (SIZE1, uint(300))], OPTS7[:128],
          "§4: Size1 300 as the client's size indication with the first Block1 block "
          "(0/1/128) of the 300-byte Figure 7 body")
    prose("4-4-ack-231-b1-0-1-128", "ACK", "2.31", 0x4003, b"\xe5",
          [(BLOCK1, block(0, 1, 128))], b"",
          "§2.9.1/§4: 2.31 (Continue) for that block, no payload")


# ---------------------------------------------------------------------------
# Boundaries (derived)
# ---------------------------------------------------------------------------

def boundaries():
    F = "boundaries.json"
    mids = iter(range(0x0c00, 0x10000))   # unique MIDs (no tshark retransmission tracking)

    def v(name, typ="CON", code="0.01", token=b"", options=(), payload=b"", why="", mid=None):
        return valid(F, "bnd-" + name, typ, code, next(mids) if mid is None else mid, token,
                     options, payload, prov="derived: " + why)

    # --- option delta forms (single option after the header: delta = option number)
    v("delta-00000-option-0", options=[(0, b"")],
      why="delta 0 as the first option gives option number 0 (reserved, RFC 7252 §12.2) "
          "- still well-formed; 1-byte option header 0x00")
    v("delta-00012-nibble-max", options=[(CONTENT_FORMAT, b"")],
      why="delta 12, the largest delta held in the nibble (Content-Format, empty = 0)")
    v("delta-00013-ext1-min", options=[(13, b"\x01")],
      why="delta 13: nibble 13 + extended byte 0x00, the smallest 1-byte extended delta")
    v("delta-00014-ext1", options=[(MAX_AGE, uint(60))],
      why="delta 14: nibble 13 + extended byte 0x01 (Max-Age 60)")
    v("delta-00060-ext1", options=[(SIZE1, uint(1024))],
      why="delta 60: nibble 13 + extended byte 0x2f (Size1 1024)")
    v("delta-00268-ext1-max", options=[(268, b"\x01")],
      why="delta 268: nibble 13 + extended byte 0xff, the largest 1-byte extended delta")
    v("delta-00269-ext2-min", options=[(269, b"\x01")],
      why="delta 269: nibble 14 + extended 0x0000, the smallest 2-byte extended delta")
    v("delta-00270-ext2", options=[(270, b"\x01")],
      why="delta 270: nibble 14 + extended 0x0001")
    v("delta-02048-ext2", options=[(2048, b"\x01")],
      why="delta 2048: nibble 14 + extended 0x06f3")
    v("delta-65535-ext2-max-option", options=[(65535, b"\x01")],
      why="delta 65535: nibble 14 + extended 0xfef2, the largest option number reachable "
          "(269 + 0xfef2 = 65535)")
    v("delta-65535-repeated-delta-0", options=[(65535, b""), (65535, b"\x02")],
      why="option 65535 followed by another 65535 (delta 0): 65535 + 0 does not overflow")
    # deltas between options (previous option != 0)
    v("delta-chain-nibble-ext1-ext2", options=[
        (URI_HOST, b"h"), (URI_PATH, b"p"), (BLOCK2, block(1, 0, 64)), (PROXY_SCHEME, b"coap"),
        (2048, b"x"), (65000, b"y"), (65535, b"z")],
      why="deltas between options: 3, 8, 12 (nibble max), 16 (ext1 0x03), 2009 (ext2 0x06cc), "
          "62952 (ext2 0xf4db), 535 (ext2 0x010a) up to option 65535")
    v("delta-13-between-options", options=[(ETAG, b"\x01"), (ACCEPT, uint(50))],
      why="ETag (4) then Accept (17): delta 13, the 1-byte extended form between options")
    v("delta-268-between-options", options=[(URI_PATH, b"a"), (279, b"")],
      why="Uri-Path (11) then option 279: delta 268, ext byte 0xff between options")
    v("delta-269-between-options", options=[(URI_PATH, b"a"), (280, b"")],
      why="Uri-Path (11) then option 280: delta 269, ext 0x0000 between options")

    # --- option length forms
    v("optlen-0000", options=[(URI_PATH, b"")],
      why="option length 0 (empty Uri-Path value)")
    v("optlen-0012-nibble-max", options=[(URI_PATH, b"abcdefghijkl")],
      why="option length 12, the largest length held in the nibble")
    for n, desc in ((13, "nibble 13 + extended byte 0x00 (smallest 1-byte form)"),
                    (14, "nibble 13 + extended byte 0x01"),
                    (268, "nibble 13 + extended byte 0xff (largest 1-byte form)"),
                    (269, "nibble 14 + extended 0x0000 (smallest 2-byte form)"),
                    (270, "nibble 14 + extended 0x0001"),
                    (1034, "nibble 14 + extended 0x02fd; 1034 is Proxy-Uri's registered "
                           "maximum")):
        v("optlen-%04d" % n, options=[(PROXY_URI, text_body("coap://h/", n))],
          why="Proxy-Uri (35, length 1-1034) with a %d-byte value: option length %s"
              % (n, desc))
    v("optlen-ext1-delta-ext2-length", options=[(PROXY_URI, text_body("coap://h/", 270))],
      why="same as optlen-0270: delta 35 needs the 1-byte form (0x16) and length 270 the "
          "2-byte form (0x0001); first byte 0xde, delta extension before length extension")
    v("optlen-ext2-delta-ext1-length", options=[(2048, b"0123456789abcdefghij")],
      why="option 2048 with a 20-byte value: 2-byte extended delta 0x06f3 then 1-byte "
          "extended length 0x07; first byte 0xed")
    v("optlen-ext2-delta-ext2-length", options=[(269, bytes(range(256)) + b"\xff" * 13)],
      why="option 269 with a 269-byte value: both 2-byte forms, header ee 0000 0000; "
          "value bytes 00..ff then ff*13")

    # --- repeated options (delta 0)
    v("repeat-uri-path-x3", options=[(URI_PATH, b"a"), (URI_PATH, b"b"), (URI_PATH, b"c")],
      why="Uri-Path repeated 3 times: delta 0 after the first")
    v("repeat-etag-x2", options=[(ETAG, b"\x01\x02"), (ETAG, b"\xff\xfe\xfd\xfc")],
      why="ETag repeated twice (delta 0), the 2nd value containing 0xff bytes")
    v("repeat-uri-query-x3-empty-path", options=[
        (URI_PATH, b""), (URI_PATH, b""), (URI_QUERY, b"a=1"), (URI_QUERY, b"b=2"),
        (URI_QUERY, b"c")],
      why="two empty Uri-Path options (length 0, delta 0) and three Uri-Query options")
    v("repeat-unknown-65000-x2", options=[(65000, b"\x01"), (65000, b"\x02\x03")],
      why="unknown elective option 65000 twice: 2-byte extended delta then delta 0")

    # --- token lengths 0..8
    for n in range(9):
        v("tkl-%d" % n, token=bytes(0xa0 + i for i in range(n)),
          options=[(URI_PATH, b"t")],
          why="token length %d (RFC 7252 §3: 0-8 bytes) with one Uri-Path option" % n)
    v("tkl-8-all-ff-then-option-and-payload", token=b"\xff" * 8,
      options=[(URI_PATH, b"x")], payload=b"\xff",
      why="8-byte token of 0xff bytes (not payload markers), then an option, then a "
          "1-byte payload that is itself 0xff")

    # --- message types and MID extremes
    v("type-con", "CON", "0.01", options=[(URI_PATH, b"con")], why="type CON (0), GET")
    v("type-non", "NON", "0.01", options=[(URI_PATH, b"non")], why="type NON (1), GET")
    v("type-ack", "ACK", "2.05", payload=b"ack", why="type ACK (2), piggybacked 2.05")
    v("type-rst", "RST", "0.00", why="type RST (3), Empty (RFC 7252 §4.2)")
    v("mid-0-con-ping", "CON", "0.00", mid=0, why="Empty CON (ping) with MID 0")
    v("mid-65535-ack-empty", "ACK", "0.00", mid=65535, why="Empty ACK with MID 65535")
    v("min-4-byte-request", "CON", "0.01",
      why="a 4-byte GET: header only, no token/options/payload")
    v("max-header-non-731-tkl8-mid-ffff", "NON", "7.31", token=b"\xff" * 8, mid=0xFFFF,
      why="all header fields at their maximum for a valid message: NON, TKL 8, code "
          "7.31 (0xff), MID 0xffff")

    # --- codes
    codes = [("0.01", "GET"), ("0.02", "POST"), ("0.03", "PUT"), ("0.04", "DELETE"),
             ("0.05", "FETCH (RFC 8132)"), ("0.06", "PATCH (RFC 8132)"),
             ("0.07", "iPATCH (RFC 8132)"),
             ("2.01", "Created"), ("2.02", "Deleted"), ("2.03", "Valid"), ("2.04", "Changed"),
             ("2.05", "Content"), ("2.31", "Continue (RFC 7959)"),
             ("4.00", "Bad Request"), ("4.01", "Unauthorized"), ("4.02", "Bad Option"),
             ("4.03", "Forbidden"), ("4.04", "Not Found"), ("4.05", "Method Not Allowed"),
             ("4.06", "Not Acceptable"), ("4.08", "Request Entity Incomplete (RFC 7959)"),
             ("4.09", "Conflict (RFC 8132)"), ("4.12", "Precondition Failed"),
             ("4.13", "Request Entity Too Large"), ("4.15", "Unsupported Content-Format"),
             ("4.22", "Unprocessable Entity (RFC 8132)"),
             ("4.29", "Too Many Requests (RFC 8516)"),
             ("5.00", "Internal Server Error"), ("5.01", "Not Implemented"),
             ("5.02", "Bad Gateway"), ("5.03", "Service Unavailable"),
             ("5.04", "Gateway Timeout"), ("5.05", "Proxying Not Supported"),
             ("5.08", "Hop Limit Reached (RFC 8768)")]
    for code, cname in codes:
        req = code.startswith("0.")
        v("code-%s" % code.replace(".", "-"), "CON" if req else "ACK", code,
          options=[(URI_PATH, b"c")] if req else [],
          why="code %s %s as a %s" % (code, cname,
                                       "CON request" if req else "piggybacked ACK response"))
    for code, cname in (("0.31", "unassigned request method"),
                        ("1.00", "reserved class 1"), ("3.00", "unassigned class 3"),
                        ("6.00", "reserved class 6"), ("7.31", "reserved class 7, code byte 0xff")):
        v("code-unknown-%s" % code.replace(".", "-"), "NON", code, token=b"\x7c",
          why="unknown code %s (%s): not a parse error, the parser reports the code as is"
              % (code, cname))

    # --- unknown options
    v("unknown-option-65000-elective", options=[(URI_PATH, b"u"), (65000, b"\x01")],
      why="unknown elective (even) option 65000 after Uri-Path")
    v("unknown-option-65001-critical", options=[(URI_PATH, b"u"), (65001, b"\x01")],
      why="unknown critical (odd) option 65001: rejecting it is an application decision "
          "(4.02), not a parse error")
    v("unknown-option-2048-300-bytes", options=[(2048, text_body("opt2048", 300))],
      why="unknown option 2048 with a 300-byte value (2-byte extended delta and length)")
    v("unknown-option-65000-300-bytes", options=[(URI_PATH, b"u"),
                                                 (65000, text_body("opt65000", 300))],
      why="unknown option 65000 with a 300-byte value after Uri-Path")

    # --- value lengths/encodings that are fine at parse level
    v("uint-leading-zero-content-format", "ACK", "2.05",
      options=[(CONTENT_FORMAT, b"\x00\x32")], payload=b"{}",
      why="Content-Format value 00 32 (50 with a leading zero byte, non-minimal uint); "
          "VALID at parse level, the value bytes are reported as they are")
    v("uint-leading-zero-max-age-4-bytes", "ACK", "2.05",
      options=[(MAX_AGE, b"\x00\x00\x00\x3c")],
      why="Max-Age 00 00 00 3c (60 with leading zeros), within the 0-4 byte range")
    v("overlong-max-age-5-bytes", "ACK", "2.05",
      options=[(MAX_AGE, b"\x00\x00\x00\x00\x3c")],
      why="5-byte Max-Age (registered length 0-4): VALID at parse level")
    v("overlong-etag-9-bytes", "ACK", "2.03",
      options=[(ETAG, bytes(range(1, 10)))],
      why="9-byte ETag (registered length 1-8): VALID at parse level")
    v("empty-etag-0-bytes", "ACK", "2.03", options=[(ETAG, b"")],
      why="0-byte ETag (registered length 1-8): VALID at parse level")
    v("empty-uri-query", options=[(URI_PATH, b"q"), (URI_QUERY, b"")],
      why="empty Uri-Query (RFC 7252 §5.10 allows length 0-255)")
    v("block2-3-byte-num-max", "ACK", "2.05",
      options=[(BLOCK2, block((1 << 20) - 1, 0, 16))], payload=b"z",
      why="Block2 with NUM 1048575 (largest 20-bit NUM), 3-byte value ff ff f0")
    v("block1-value-0-empty", "CON", "0.03",
      options=[(URI_PATH, b"b"), (BLOCK1, block(0, 0, 16))], payload=b"0123456789abcdef",
      why="Block1 0/0/16: value 0 is sent as a zero-length option (RFC 7959 §2.2)")
    v("option-value-ends-with-ff-at-end", options=[(URI_PATH, b"a\xff")],
      why="a 2-byte option value ending in 0xff as the last datagram byte: the 0xff is "
          "value, not a payload marker")
    v("option-value-all-ff", options=[(IF_MATCH, b"\xff" * 8)],
      why="If-Match of eight 0xff bytes")

    # --- payloads
    v("payload-1-byte", "ACK", "2.05", payload=b"!", why="1-byte payload, no options")
    v("payload-1-byte-ff", "ACK", "2.05", payload=b"\xff",
      why="1-byte payload that is 0xff: marker ff followed by payload ff")
    v("payload-1024-bytes", "ACK", "2.05", options=[(CONTENT_FORMAT, uint(0))],
      payload=text_body("payload", 1024),
      why="1024-byte payload (text/plain) after Content-Format 0")
    v("payload-binary-0-255", "ACK", "2.05", options=[(CONTENT_FORMAT, uint(42))],
      payload=bytes(range(256)),
      why="256-byte payload containing every byte value, 0xff included "
          "(Content-Format 42 application/octet-stream)")
    v("options-and-payload", "CON", "0.02", token=b"\x01\x02\x03\x04",
      options=[(URI_HOST, b"example.net"), (URI_PORT, uint(5683)), (URI_PATH, b"sensors"),
               (URI_PATH, b"t1"), (CONTENT_FORMAT, uint(0)), (URI_QUERY, b"x=1"),
               (ACCEPT, uint(0))],
      payload=b"21.5",
      why="POST with token, 7 options (Uri-Host, Uri-Port 5683, Uri-Path x2, "
          "Content-Format, Uri-Query, Accept) and a payload")
    v("options-and-payload-response", "ACK", "2.01", token=b"\x0a",
      options=[(ETAG, b"\x12\x34"), (LOCATION_PATH, b"sensors"), (LOCATION_PATH, b"t2"),
               (CONTENT_FORMAT, uint(0)), (MAX_AGE, uint(300)), (LOCATION_QUERY, b"v=2")],
      payload=b"created",
      why="2.01 with ETag, Location-Path x2, Content-Format, Max-Age 300, Location-Query "
          "and a payload")


# ---------------------------------------------------------------------------
# Invalid
# ---------------------------------------------------------------------------

def invalids():
    S3 = "RFC 7252 §3"
    # 1. too_short
    invalid("invalid-too-short-0-bytes", "", "too_short", 0,
            S3 + ": a datagram needs the 4-byte fixed header; empty datagram")
    invalid("invalid-too-short-1-byte", "40", "too_short", 0, S3 + ": 1 byte")
    invalid("invalid-too-short-2-bytes", "4001", "too_short", 0, S3 + ": 2 bytes")
    invalid("invalid-too-short-3-bytes", "400100", "too_short", 0, S3 + ": 3 bytes")
    invalid("invalid-too-short-3-bytes-bad-version", "c001ff", "too_short", 0,
            S3 + ": 3 bytes with version 3: the length check comes before the version check")

    # 2. unsupported_version
    V = (S3 + ": Ver MUST be set to 1; messages with unknown version numbers MUST be "
         "silently ignored")
    invalid("invalid-version-0", "00010001", "unsupported_version", 0, V + "; version 0")
    invalid("invalid-version-2", "80010001", "unsupported_version", 0, V + "; version 2")
    invalid("invalid-version-3", "c0010001", "unsupported_version", 0, V + "; version 3")
    invalid("invalid-version-2-with-tkl-15", "8f010001", "unsupported_version", 0,
            V + "; version 2 with TKL 15: the version check comes before the TKL check")
    invalid("invalid-version-0-otherwise-valid", "00017d34bb74656d7065726174757265",
            "unsupported_version", 0,
            V + "; the Figure 16 request with the version bits cleared")

    # 3. invalid_token_length
    T = S3 + ": lengths 9-15 are reserved, MUST NOT be sent, MUST be processed as a message format error"
    for tkl in range(9, 16):
        invalid("invalid-tkl-%02d" % tkl, "%02x010001" % (0x40 | tkl), "invalid_token_length", 0,
                T + "; TKL %d, nothing after the header" % tkl)
    invalid("invalid-tkl-09-with-9-token-bytes", "49010001" + "aa" * 9, "invalid_token_length",
            0, T + "; TKL 9 with 9 bytes present, so it is not about truncation")
    invalid("invalid-tkl-15-with-payload", "4f010001" + "11" * 15 + "ff00",
            "invalid_token_length", 0, T + "; TKL 15 with 15 bytes and a payload present")
    invalid("invalid-tkl-09-empty-code", "49000001", "invalid_token_length", 0,
            T + "; TKL 9 on an Empty message: the TKL check comes before the Empty check")

    # 4. empty_message_not_empty
    E = ("RFC 7252 §4.1: an Empty message (code 0.00) MUST NOT be sent with a token "
         "(TKL 0) and MUST NOT contain any bytes after the Message ID, else it is a "
         "message format error")
    invalid("invalid-empty-with-token", "41000001aa", "empty_message_not_empty", 4,
            E + "; CON 0.00 with a 1-byte token")
    invalid("invalid-empty-with-token-8", "68000001" + "01" * 8, "empty_message_not_empty", 4,
            E + "; ACK 0.00 with an 8-byte token")
    invalid("invalid-empty-tkl-1-token-missing", "41000001", "empty_message_not_empty", 4,
            E + "; TKL 1 and no token byte: the Empty check comes before the "
                "token-truncation check")
    invalid("invalid-empty-with-option", "40000001c0", "empty_message_not_empty", 4,
            E + "; CON 0.00 followed by an option (Content-Format, empty)")
    invalid("invalid-empty-with-payload", "70000001ff01", "empty_message_not_empty", 4,
            E + "; RST 0.00 with payload marker and a 1-byte payload")
    invalid("invalid-empty-1-trailing-byte", "6000000100", "empty_message_not_empty", 4,
            E + "; ACK 0.00 with one trailing 0x00 byte")
    invalid("invalid-empty-trailing-ff-only", "40000001ff", "empty_message_not_empty", 4,
            E + "; a lone trailing 0xff: the Empty check comes before the empty-payload check")

    # 5. token_truncated
    K = S3 + ": the Token (TKL bytes) follows the header; datagram ends inside it"
    invalid("invalid-token-truncated-tkl-1-none", "41010001", "token_truncated", 4,
            K + "; TKL 1, no token byte")
    invalid("invalid-token-truncated-tkl-8-have-3", "48010001aabbcc", "token_truncated", 4,
            K + "; TKL 8, 3 token bytes")
    invalid("invalid-token-truncated-tkl-8-have-7", "48010001" + "ff" * 7, "token_truncated", 4,
            K + "; TKL 8, 7 token bytes (one short; 0xff bytes are token, not a marker)")

    # 6a. empty_payload
    P = ("RFC 7252 §3: the presence of a marker followed by a zero-length payload MUST be "
         "processed as a message format error")
    invalid("invalid-empty-payload-after-header", "40010001ff", "empty_payload", 4,
            P + "; 0xff right after the header")
    invalid("invalid-empty-payload-after-token", "42450001a1a2ff", "empty_payload", 6,
            P + "; 0xff right after a 2-byte token (2.05)")
    invalid("invalid-empty-payload-after-options", "40010001b16103626262ff", "empty_payload", 10,
            P + "; 0xff after Uri-Path 'a' and Uri-Path 'bbb'")
    invalid("invalid-empty-payload-after-ext-option", "6145000141d20f015eff",
            "empty_payload", 9,
            P + "; 0xff after a 1-byte token and Size2 350 encoded with a 1-byte extended "
                "delta (d2 0f 01 5e)")

    # 6b. reserved_option_delta (0xF0-0xFE), offsets vary with what precedes it
    D = ("RFC 7252 §3.1: option delta 15 is reserved for the payload marker; if the field is "
         "15 but the whole byte is not 0xff it MUST be processed as a message format error")
    prefixes = [("40010001", 4, "right after the header"),
                ("42010001beef", 6, "after a 2-byte token"),
                ("40010001b161", 6, "after Uri-Path 'a'")]
    for ln in range(15):
        pre, off, where = prefixes[ln % 3]
        tail = "00" * ln if ln % 2 == 0 else ""
        invalid("invalid-reserved-delta-f%x" % ln, pre + "f%x" % ln + tail,
                "reserved_option_delta", off,
                D + "; byte 0xf%x %s%s" % (ln, where,
                                         ", followed by %d value bytes" % ln if tail else ""))

    # 6c. reserved_option_length
    L = ("RFC 7252 §3.1: option length 15 is reserved for future use and MUST be processed "
         "as a message format error")
    invalid("invalid-reserved-length-0f", "400100010f", "reserved_option_length", 4,
            L + "; byte 0x0f right after the header")
    invalid("invalid-reserved-length-bf", "40010001bf" + "61" * 15, "reserved_option_length", 4,
            L + "; byte 0xbf (Uri-Path) followed by 15 bytes")
    invalid("invalid-reserved-length-cf-after-option", "41010001aab161cf",
            "reserved_option_length", 7, L + "; byte 0xcf after a token and Uri-Path 'a'")
    invalid("invalid-reserved-length-df-no-ext", "40010001df", "reserved_option_length", 4,
            L + "; byte 0xdf as the last byte: reported before the missing delta extension")
    invalid("invalid-reserved-length-ef-with-ext", "40010001ef0000", "reserved_option_length",
            4, L + "; byte 0xef with its 2 delta extension bytes present")

    # 6d. option_header_truncated
    H = ("RFC 7252 §3.1: nibble 13 is followed by 1 and nibble 14 by 2 extended bytes "
         "(delta first, then length); datagram ends inside them")
    invalid("invalid-ext-delta-13-no-byte", "40010001d0", "option_header_truncated", 4,
            H + "; delta 13, no extended byte")
    invalid("invalid-ext-delta-14-no-bytes", "40010001e0", "option_header_truncated", 4,
            H + "; delta 14, no extended bytes")
    invalid("invalid-ext-delta-14-one-byte", "40010001e000", "option_header_truncated", 4,
            H + "; delta 14, 1 of 2 extended bytes")
    invalid("invalid-ext-length-13-no-byte", "400100010d", "option_header_truncated", 4,
            H + "; length 13, no extended byte")
    invalid("invalid-ext-length-14-no-bytes", "400100010e", "option_header_truncated", 4,
            H + "; length 14, no extended bytes")
    invalid("invalid-ext-length-14-one-byte", "400100010e01", "option_header_truncated", 4,
            H + "; length 14, 1 of 2 extended bytes")
    invalid("invalid-ext-delta-13-ok-length-13-missing", "40010001dd00",
            "option_header_truncated", 4,
            H + "; delta 13 with its byte, length 13 without its byte")
    invalid("invalid-ext-delta-14-ok-length-14-one-byte", "40010001ee000000",
            "option_header_truncated", 4,
            H + "; delta 14 with 2 bytes, length 14 with only 1")
    invalid("invalid-ext-delta-13-missing-length-14", "40010001de", "option_header_truncated", 4,
            H + "; byte 0xde as the last byte")
    invalid("invalid-ext-delta-13-after-option", "44010001a1a2a3a4b161d0",
            "option_header_truncated", 10,
            H + "; after a 4-byte token and Uri-Path 'a', delta 13 without its byte")
    invalid("invalid-ext-delta-14-after-65535", "40010001e1fef201e0", "option_header_truncated",
            8, H + "; after option 65535, delta 14 without bytes: truncation is reported "
                   "before any overflow could be computed")

    # 6e. option_number_overflow
    O = ("RFC 7252 §3.1 (the Option Number is the sum of the deltas) and §12.2 (option "
         "numbers are 0-65535): the running option number exceeds 65535")
    invalid("invalid-overflow-65535-then-delta-1", "40010001e1fef201" + "11" + "02",
            "option_number_overflow", 8,
            O + "; option 65535 (delta 14 + 0xfef2), then delta 1 -> 65536")
    invalid("invalid-overflow-single-delta-65536", "40010001e1fef301", "option_number_overflow", 4,
            O + "; a single delta 14 + 0xfef3 = 65536 (one past the maximum)")
    invalid("invalid-overflow-single-delta-65804", "40010001e0ffff", "option_number_overflow", 4,
            O + "; a single delta 14 + 0xffff = 65804 (largest encodable delta)")
    invalid("invalid-overflow-65535-then-delta-13-ext", "40010001e0fef2d000",
            "option_number_overflow", 7,
            O + "; option 65535 then delta 13 + 0x00 -> 65548")
    invalid("invalid-overflow-65000-then-delta-536", "40010001e1fcdb01e1010b02",
            "option_number_overflow", 8,
            O + "; option 65000 then delta 14 + 0x010b = 536 -> 65536")
    invalid("invalid-overflow-before-value-truncation", "40010001b161edfef30005",
            "option_number_overflow", 6,
            O + "; after Uri-Path (11), delta 14 + 0xfef3 with length 13 and only 1 value "
                "byte: the overflow is reported, not the truncated value")

    # 6f. option_value_truncated
    T2 = "RFC 7252 §3.1: Option Value is Option Length bytes; datagram ends inside it"
    invalid("invalid-value-truncated-by-1", "40010001b36161", "option_value_truncated", 4,
            T2 + "; Uri-Path length 3 with 2 bytes")
    invalid("invalid-value-truncated-all", "40010001b1", "option_value_truncated", 4,
            T2 + "; Uri-Path length 1 with no byte")
    invalid("invalid-value-truncated-ff-is-value", "40010001b361ff", "option_value_truncated", 4,
            T2 + "; Uri-Path length 3 with bytes 61 ff: the 0xff is value, not a marker")
    invalid("invalid-value-truncated-ext1", "40010001bd00" + "61" * 12, "option_value_truncated",
            4, T2 + "; length 13 (nibble 13 + 0x00) with 12 bytes")
    invalid("invalid-value-truncated-ext2", "40010001de160000" + "62" * 268,
            "option_value_truncated", 4,
            T2 + "; Proxy-Uri length 269 (nibble 14 + 0x0000) with 268 bytes")
    invalid("invalid-value-truncated-second-option", "41010001c6b3616263b4646566",
            "option_value_truncated", 9,
            T2 + "; after a token and Uri-Path 'abc', a 2nd Uri-Path of length 4 with 3 bytes")


# ---------------------------------------------------------------------------

FILE_ORDER = ("rfc7252.json", "rfc7959.json", "boundaries.json", "invalid.json")


def render(vectors):
    vectors = sorted(vectors, key=lambda v: v["name"])
    finish_valid([v for v in vectors if v["valid"]])
    return "[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in vectors) + "\n]\n"


def build():
    rfc7252()
    rfc7959()
    boundaries()
    invalids()
    assert sorted(FILES) == sorted(FILE_ORDER)
    valid_n = sum(len(FILES[f]) for f in FILE_ORDER if f != "invalid.json")
    kinds = {v["error"]["kind"] for v in FILES["invalid.json"]}
    assert kinds == {"too_short", "unsupported_version", "invalid_token_length",
                     "empty_message_not_empty", "token_truncated", "empty_payload",
                     "reserved_option_delta", "reserved_option_length",
                     "option_header_truncated", "option_number_overflow",
                     "option_value_truncated"}, kinds
    assert valid_n >= 60 and len(FILES["invalid.json"]) >= 30
    return {f: render(FILES[f]) for f in FILE_ORDER}


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out = build()
    stale = []
    for fname, text in out.items():
        path = os.path.join(here, fname)
        if "--check" in argv:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(fname)
            except FileNotFoundError:
                stale.append(fname)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    for fname in FILE_ORDER:
        vs = FILES[fname]
        print("%-16s %4d vectors" % (fname, len(vs)))
    if stale:
        print("out of date: %s (run python3 vectors/gen.py)" % ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
