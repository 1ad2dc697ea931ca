"""Comparable form of ``_cserver.parse_requests`` results, shared by the parser
and conformance tests."""


def _text(v):
    return v.decode("latin-1") if isinstance(v, (bytes, bytearray)) else v


def normalize(results, keep_reason=False):
    """Each request as a plain dict (str fields, bytes body); a failed request
    as {"error": status} (plus "reason" when ``keep_reason``)."""
    out = []
    for r in results:
        if "error" in r:
            err = {"error": r["error"]}
            if keep_reason:
                err["reason"] = r.get("reason")
            out.append(err)
            continue
        body = r["body"]
        out.append(
            {
                "method": _text(r["method"]),
                "uri": _text(r["uri"]),
                "version": tuple(r["version"]),
                "headers": [(_text(k), _text(v)) for k, v in r["headers"]],
                "body": body.encode("latin-1")
                if isinstance(body, str)
                else bytes(body),
            }
        )
    return out
